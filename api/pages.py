"""The pages: a single-case form, a spreadsheet upload, the job page, the list of jobs and the model cards.

Every page works without JavaScript; the scripts in static/ only make it quicker. The form and upload routes
answer JSON instead of a page or a redirect when the request asks for it (`Accept: application/json`).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session

from api import (
    cancelling,
    cases,
    charts,
    compare,
    feature_labels,
    job_search,
    job_views,
    removal,
    reports,
    rescore,
    results,
    review,
    row_case,
    validation,
)
from api.access import may_see, record, viewer
from api.api_v1 import find_job
from api.database import db
from api.registry import UnknownModel, all_models, model_meta
from api.submit import check_cases, submit_cases, submit_upload
from api.uploads import stream_form
from shared.features import ALIASES
from shared.intake import FileRejected
from shared.schema import Job, JobKind, JobStatus, Role, User

bp = Blueprint("pages", __name__)
COMPARE_ROWS = 500


def _wants_json() -> bool:
    return request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json"


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


def _accepted(job: Job) -> ResponseReturnValue:
    page = url_for("pages.job_page", job_id=job.id)
    if not _wants_json():
        return redirect(page, 303)
    body = {
        "job": page,
        "status_url": url_for("api_v1.get_job", job_id=job.id),
        "results_url": url_for("api_v1.get_results", job_id=job.id, format="json"),
    }
    return jsonify(body), 202, {"Location": page}


def _case_refused(problems: list[str], field_errors: dict[str, str], values: dict[str, str]) -> ResponseReturnValue:
    if _wants_json():
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
    return _accepted(submit_cases([case], model["name"], JobKind.FORM))


def _upload_refused(problems: list[str], filename: str | None = None) -> ResponseReturnValue:
    if _wants_json():
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
    return _accepted(job)


@bp.get("/jobs")
def job_list() -> ResponseReturnValue:
    """The jobs the person may see, newest first, searched and filtered, a page at a time (api.job_search)."""
    who, session = viewer(), db()
    context: dict[str, Any] = {
        "models": [m["name"] for m in all_models()],
        "statuses": job_search.STATUSES,
        "owners": list(session.scalars(select(User.email).order_by(User.email))) if who.is_admin else [],
    }
    try:
        wanted = job_search.JobFilter.from_args(request.args, who)
    except job_search.BadFilter as exc:
        refused = job_search.JobFilter()
        return render_template("jobs.html", wanted=refused, problems=exc.problems, jobs=[], **context), 400
    found = job_search.listing(session, wanted, who)
    listed = [job for job, _ in found.jobs]
    return render_template(
        "jobs.html",
        wanted=wanted,
        jobs=listed,
        owner_of={job.id: email for job, email in found.jobs},
        next_after=found.next_after,
        counts=job_views.diagnosis_counts(session, [j.id for j in listed]),
        cases=job_views.single_case_ids(session, listed),
        sources=job_views.source_names(session, listed),
        **context,
    )


@bp.get("/jobs/<job_id>")
def job_page(job_id: str) -> ResponseReturnValue:
    job = find_job(job_id)
    session = db()
    record("job.view", job)
    session.commit()
    query = job_views.TableQuery.from_args(request.args)
    context: dict[str, Any] = {}
    case = cases.view(session, job, model_meta(job.model_name))
    if case is not None:
        context.update(case=case, single_case_id=case.case_id)
    elif job.status == JobStatus.SUCCEEDED.value and job.purged_at is None:
        rows, matching = job_views.table_page(session, job, query)
        pages = max(1, -(-matching // job_views.PAGE_SIZE))
        if query.page > pages:  # a page past the end shows the last one
            query = replace(query, page=pages)
            rows, matching = job_views.table_page(session, job, query)
        context.update(
            rows=rows,
            matching=matching,
            pages=pages,
            chart=charts.histogram(job_views.probability_bins(session, job)),
            better=rescore.better_models(session, job),
            model_auc=model_meta(job.model_name)["metrics"]["roc_auc"],
            same_input=compare.same_input_jobs(session, job, may_see),
            **_figures(session, job),
        )
    left = job_views.seconds_left(job, datetime.now(UTC))
    lab = current_user.may(Role.LAB, Role.ADMIN)
    return render_template(
        "job.html",
        job=job,
        source=session.get(Job, job.source_job_id) if job.source_job_id else None,
        owner=job_views.owner_email(session, job),
        query=query,
        page_size=job_views.PAGE_SIZE,
        time_left=job_views.time_left_sentence(left),
        waiting=job_views.waiting_sentence(job_views.jobs_ahead(session, job)),
        notice=results.NOTICE,
        may_confirm=lab,
        may_rescore=lab and job.kind == JobKind.UPLOAD.value and job.purged_at is None,
        fits=rescore.fitting_models(session, job) if job.status == JobStatus.CANCELLED.value else [],
        opened=job_views.opened_cases(session, job) if job.kind == JobKind.UPLOAD.value and not job.purged_at else 0,
        **context,
    )


@bp.post("/jobs/<job_id>/confirm")
def confirm_job(job_id: str) -> ResponseReturnValue:
    """The job page's button: release a held job's results, then show them."""
    review.confirm(find_job(job_id))
    return redirect(url_for("pages.job_page", job_id=job_id), 303)


@bp.post("/jobs/<job_id>/cancel")
def cancel_job(job_id: str) -> ResponseReturnValue:
    """The job page's button: stop a job that is queued or running, then show it (one that finished first, saying
    so: the page's button was pressed as the job ended)."""
    job = find_job(job_id)
    if not cancelling.cancel(job):
        flash(cancelling.too_late(job).capitalize() + ".")
    return redirect(url_for("pages.job_page", job_id=job_id), 303)


@bp.post("/jobs/<job_id>/purge")
def purge_job(job_id: str) -> ResponseReturnValue:
    """The job page's removal form, whose box must be ticked: remove the file and results, then show the job."""
    job = find_job(job_id)
    if request.form.get("understood") != "yes":
        abort(422, description="tick the box to say you understand that the file and results cannot be recovered")
    removal.remove(job)
    return redirect(url_for("pages.job_page", job_id=job_id), 303)


def _figures(session: Session, job: Job) -> dict[str, Any]:
    """What a succeeded job's page and its PDF report both show: the counts, and the figures against a supplied
    diagnosis (`v`, drawn with `roc_chart`, beside the model's held-out `model_metrics`)."""
    return {
        "counts": results.counts(session, job),
        "flags": job_views.flag_counts(session, job),
        "v": validation.validation(session, job),
        "roc_chart": _roc_chart,
        "model_metrics": model_meta(job.model_name)["metrics"],
    }


def _roc_chart(figures: dict[str, Any]) -> charts.RocCurve:
    auc = figures["roc_auc"]
    return charts.roc(figures["roc_curve"], auc["value"], auc["ci_low"], auc["ci_high"], figures["rows"])


@bp.post("/jobs/<job_id>/rescore", endpoint="rescore")
def rescore_job(job_id: str) -> ResponseReturnValue:
    """One click on the job page: score the same stored input with another model, then show the new job."""
    job = find_job(job_id)
    try:
        new = rescore.rescore(job, request.form.get("model") or None)
    except (FileRejected, UnknownModel) as exc:
        problems = exc.problems if isinstance(exc, FileRejected) else [str(exc.args[0])]
        abort(422, description="; ".join(problems))
    return _accepted(new)


@bp.get("/jobs/<job_id>/compare/<other_id>")
def compare_page(job_id: str, other_id: str) -> ResponseReturnValue:
    """The rows whose answers differ between two jobs on the same input (the first COMPARE_ROWS; all in the CSV)."""
    first, second = find_job(job_id), find_job(other_id)
    session = db()
    try:
        found = compare.summary(session, first, second)
    except compare.NotComparable as exc:
        abort(409, description=str(exc))
    record("job.view", first, detail=f"compared with job {second.id}")
    session.commit()
    rows = list(compare.differing_rows(session, first, second, limit=COMPARE_ROWS))
    return render_template("compare.html", found=found, rows=rows, shown=COMPARE_ROWS, notice=results.NOTICE)


@bp.post("/jobs/<job_id>/rows/<int:row>/case", endpoint="open_row")
def open_row(job_id: str, row: int) -> ResponseReturnValue:
    """The rows table's button: score one row again as a single case, with its reasons, then show it."""
    return _accepted(row_case.open_row(find_job(job_id), row))


def _single_case(job_id: str) -> cases.Case:
    """The finished single case of this job, or 404 (a job of several rows, or not finished)."""
    job = find_job(job_id)
    case = cases.view(db(), job, model_meta(job.model_name))
    if case is None:
        abort(404, description="this job is not a single case that has been scored")
    return case


@bp.get("/jobs/<job_id>/case")
def case_card(job_id: str) -> ResponseReturnValue:
    """The answer card of a single case, as a fragment of HTML (the form's script shows it under the form)."""
    case = _single_case(job_id)
    record("job.view", case.job, detail="answer card")
    db().commit()
    return render_template("_case.html", case=case, notice=results.NOTICE)


@bp.get("/jobs/<job_id>/report.pdf")
def case_report(job_id: str) -> ResponseReturnValue:
    """The job's report as a PDF: a single case's is its page's card; a file's, what was scored, by which model,
    what came of it and how it compares with a supplied diagnosis. 404 until the job has succeeded."""
    job = find_job(job_id)
    session = db()
    case = cases.view(session, job, model_meta(job.model_name))
    if case is None and not (job.status == JobStatus.SUCCEEDED.value and job.purged_at is None):
        abort(404, description="a report is made once the job has succeeded, while its results are kept")
    record("job.download", job, detail="report as PDF")
    session.commit()
    if case is not None:
        html, name = render_template("report.html", case=case, notice=results.NOTICE), f"cytoscore-case-{job.id}.pdf"
    else:
        html = render_template(
            "job_report.html",
            job=job,
            owner=job_views.owner_email(session, job),
            notice=results.NOTICE,
            **_figures(session, job),
        )
        name = f"cytoscore-job-{job.id}.pdf"
    headers = {"Content-Type": "application/pdf", "Content-Disposition": f'attachment; filename="{name}"'}
    return reports.pdf(html), 200, headers


@bp.get("/models")
def model_list() -> ResponseReturnValue:
    return render_template("models.html", models=all_models(), default=model_meta(None)["name"])


@bp.get("/models/<name>")
def model_page(name: str) -> ResponseReturnValue:
    try:
        model = model_meta(name)
    except UnknownModel as exc:
        abort(404, description=str(exc.args[0]))
    calibration = model.get("calibration")
    return render_template(
        "model.html",
        model=model,
        reliability=charts.reliability(calibration["bins"], calibration["brier"]) if calibration else None,
        fields=feature_labels.fields(model),
        default=model_meta(None)["name"],
        notice=results.NOTICE,
    )


@bp.app_template_filter("thousands")
def _thousands(value: int | None) -> str:
    return f"{value or 0:,}"


@bp.app_template_filter("percent")
def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "–"


@bp.app_template_filter("plural")
def _plural(n: int, word: str, many: str | None = None) -> str:
    """ "1 row", "2 rows", "1,000 cases" (`many` for an irregular plural)."""
    return f"{n:,} {word if n == 1 else many or word + 's'}"


@bp.app_template_filter("probability")
def _probability(p: float | None) -> str:
    """P(malignant) as shown to people: never a certain 0.000 or 1.000 from a model."""
    if p is None:
        return "–"
    if p < 0.01:
        return "< 0.01"
    if p > 0.99:
        return "> 0.99"
    return f"{p:.3f}"
