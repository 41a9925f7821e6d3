"""The pages: a single-case form, a spreadsheet upload, the job page and the list of jobs."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from api import results
from api.api_v1 import find_job
from api.database import db
from api.registry import UnknownModel, all_models, model_meta
from api.submit import check_cases, submit_cases, submit_upload
from shared import jobs
from shared.intake import FileRejected
from shared.schema import JobKind

bp = Blueprint("pages", __name__)
PAGE_SIZE = 50


def _home(status: int = 200, **context: Any) -> ResponseReturnValue:
    try:
        model = model_meta(request.values.get("model") or None)
    except UnknownModel:
        model = model_meta(None)
    context.setdefault("values", {})
    context.setdefault("field_errors", {})
    return render_template("home.html", models=all_models(), model=model, **context), status


@bp.get("/")
def home() -> ResponseReturnValue:
    return _home()


@bp.post("/cases")
def submit_case() -> ResponseReturnValue:
    model_name = request.form.get("model") or None
    try:
        model = model_meta(model_name)
    except UnknownModel as exc:
        return _home(422, form_problems=[str(exc.args[0])])
    case = {"case_id": request.form.get("case_id", "")}
    case.update({f: request.form.get(f, "") for f in model["features"]})
    values = dict(case)
    if not case["case_id"].strip():
        del case["case_id"]  # a single case may go without an id
    try:
        batch = check_cases([case], model["name"])
    except FileRejected as exc:
        return _home(422, form_problems=exc.problems, values=values)
    if not batch.ok.all():
        errors = {p.column: p.reason for p in batch.problems}
        return _home(422, field_errors=errors, values=values)
    job = submit_cases([case], model["name"], JobKind.FORM)
    return redirect(url_for("pages.job_page", job_id=job.id), 303)


@bp.post("/uploads")
def upload() -> ResponseReturnValue:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _home(422, upload_problems=["choose a CSV or XLSX file to upload"])
    try:
        job = submit_upload(upload.read(), upload.filename, request.form.get("model") or None)
    except FileRejected as exc:
        return _home(422, upload_problems=exc.problems, upload_name=upload.filename)
    except UnknownModel as exc:
        return _home(422, upload_problems=[str(exc.args[0])])
    return redirect(url_for("pages.job_page", job_id=job.id), 303)


@bp.get("/jobs")
def job_list() -> ResponseReturnValue:
    return render_template("jobs.html", jobs=jobs.recent_jobs(db()))


@bp.get("/jobs/<job_id>")
def job_page(job_id: str) -> ResponseReturnValue:
    job = find_job(job_id)
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    session = db()
    rows = list(results.records(session, job, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE))
    return render_template(
        "job.html",
        job=job,
        rows=rows,
        page=page,
        pages=max(1, -(-job.rows_total // PAGE_SIZE)),
        counts=results.counts(session, job),
        notice=results.NOTICE,
    )
