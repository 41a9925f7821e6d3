"""The Score page: the single-case form (with a case's values copied back), a case sent from it, and spreadsheets
uploaded from it."""

from __future__ import annotations

from typing import Any

from flask import abort, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from flask_login import current_user

from api import cases, feature_labels, job_views, results
from api.access import record
from api.api_v1 import find_job
from api.database import db
from api.pages import accepted, bp, wants_json
from api.registry import UnknownModel, all_models, model_meta, model_or_404
from api.submit import check_cases, submit_cases, submit_upload
from api.uploads import stream_form
from shared.features import ALIASES
from shared.intake import FileRejected
from shared.intake.pasted import MAX_CHARS, form_values
from shared.modelstore import best_fit
from shared.schema import JobKind, Role


def _home(status: int = 200, chosen: str | None = None, **context: Any) -> ResponseReturnValue:
    chosen = chosen or request.values.get("model") or None
    try:
        model = model_meta(chosen)
    except UnknownModel as exc:
        model = model_meta(None)
        context.setdefault("model_problem", str(exc.args[0]))
    context.setdefault("values", {})
    context.setdefault("field_errors", {})
    user_id = getattr(current_user, "user_id", None)
    context.setdefault("recent", job_views.recent_cases(db(), user_id) if user_id is not None else [])
    return render_template(
        "home.html",
        models=all_models(),
        model=model,
        groups=feature_labels.grouped(model),
        notice=results.NOTICE,
        may_upload=_may_upload(),
        aliases=ALIASES,
        **context,
    ), status


def _may_upload() -> bool:
    may = getattr(current_user, "may", None)  # the signed-in person (api.auth.Principal)
    return bool(may and may(Role.LAB, Role.ADMIN))


@bp.get("/")
def home() -> ResponseReturnValue:
    """The Score page; `?from=<job id>` fills the case form with that single case's values, to change and score
    again as a new case (the first one stays as it was)."""
    if not request.args.get("from"):
        return _home()
    job = find_job(request.args["from"])
    session = db()
    values = cases.form_values(session, job)
    if values is None:
        abort(404, description="only a single case whose values are kept can be copied to the form")
    record("job.view", job, detail="values copied to the Score page's form")
    session.commit()
    return _home(chosen=job.model_name, values=values, copied_from=job)


def _case_refused(problems: list[str], field_errors: dict[str, str], values: dict[str, str]) -> ResponseReturnValue:
    if wants_json():
        return jsonify(error="the case was not scored", field_errors=field_errors, problems=problems), 422
    return _home(422, form_problems=problems, field_errors=field_errors, values=values)


@bp.post("/cases")
def submit_case() -> ResponseReturnValue:
    try:
        model = model_meta(request.form.get("model") or None)
    except UnknownModel as exc:
        return _case_refused([str(exc.args[0])], {}, {})
    case = {"case_id": request.form.get("case_id", "")}
    case.update({f: request.form.get(f, "") for f in model["features"]})
    values = dict(case)
    if not case["case_id"].strip():
        del case["case_id"]  # a single case may go without an id
    try:
        batch = check_cases([case], model["name"])
    except FileRejected as exc:
        return _case_refused(exc.problems, {}, values)
    if not batch.ok.all():
        errors: dict[str, str] = {}
        for p in batch.problems:
            field = "case_id" if p.column == "id" else p.column
            errors[field] = f"{errors[field]}; {p.reason}" if field in errors else p.reason
        return _case_refused([], errors, values)
    return accepted(submit_cases([case], model["name"], JobKind.FORM))


@bp.post("/cases/paste")
def paste_case() -> ResponseReturnValue:
    """Fill the form from a header row and a case's row pasted from a spreadsheet, to check and then score."""
    model = model_or_404(request.form.get("model") or None)
    text = request.form.get("pasted", "")
    try:
        pasted = form_values(text, model["features"])
    except FileRejected as exc:
        return _home(422, chosen=model["name"], paste_problems=exc.problems, pasted=text[:MAX_CHARS])
    better = best_fit(all_models(), pasted.present)  # as an upload's columns choose, but only offered here
    if better is not None and better["metrics"]["roc_auc"] <= model["metrics"]["roc_auc"]:
        better = None
    return _home(chosen=model["name"], values=pasted.values, pasted_into=pasted, better=better, pasted=text)


def _upload_refused(problems: list[str], filename: str | None = None) -> ResponseReturnValue:
    if wants_json():
        return jsonify(error="the file was refused; nothing was created", problems=problems, filename=filename), 422
    return _home(422, upload_problems=problems, upload_name=filename)


@bp.post("/uploads")
def upload() -> ResponseReturnValue:
    form = stream_form()
    if not form.filename:
        return _upload_refused(["choose a CSV or XLSX file to upload"])
    try:
        job = submit_upload(form.body, form.filename, form.fields.get("model") or None,
                            size_hint=request.content_length)  # fmt: skip
    except FileRejected as exc:
        return _upload_refused(exc.problems, form.filename)
    except UnknownModel as exc:
        return _upload_refused([str(exc.args[0])], form.filename)
    return accepted(job)
