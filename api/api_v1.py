"""The JSON API, version 1."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request, stream_with_context, url_for
from flask.typing import ResponseReturnValue

from api import results
from api.database import db
from api.registry import UnknownModel, all_models
from api.submit import check_cases, submit_cases, submit_upload
from shared import jobs
from shared.intake import FileRejected
from shared.schema import Job, JobKind, JobStatus

bp = Blueprint("api_v1", __name__, url_prefix="/api/v1")


def find_job(job_id: str) -> Job:
    try:
        parsed = uuid.UUID(job_id)
    except ValueError:
        abort(404, description="no such job")
    job = jobs.get_job(db(), parsed)
    if job is None:
        abort(404, description="no such job")
    return job


def _accepted(job: Job) -> ResponseReturnValue:
    url = url_for("api_v1.get_job", job_id=job.id)
    body = {"id": str(job.id), "status": job.status, "url": url}
    return jsonify(body), 202, {"Location": url}


def _rejected(problems: list[str]) -> ResponseReturnValue:
    return jsonify(error="the input was refused; nothing was created", problems=problems), 422


@bp.post("/jobs")
def create_job() -> ResponseReturnValue:
    try:
        if request.is_json:
            return _create_from_json(request.get_json(silent=True))
        upload = request.files.get("file")
        if upload is None:
            abort(400, description="send a CSV or XLSX file in the multipart field `file`, or JSON with `cases`")
        return _accepted(submit_upload(upload.read(), upload.filename, request.form.get("model") or None))
    except FileRejected as exc:
        return _rejected(exc.problems)
    except UnknownModel as exc:
        return _rejected([str(exc.args[0])])


def _create_from_json(body: Any) -> ResponseReturnValue:
    if not isinstance(body, dict) or "cases" not in body:
        return _rejected(['the body must be a JSON object with a "cases" list'])
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        return _rejected(['"model" must be a model name'])
    check_cases(body["cases"], model)
    return _accepted(submit_cases(body["cases"], model, JobKind.FORM))


@bp.get("/jobs/<job_id>")
def get_job(job_id: str) -> ResponseReturnValue:
    return jsonify(jobs.job_json(find_job(job_id)))


@bp.get("/jobs/<job_id>/results")
def get_results(job_id: str) -> ResponseReturnValue:
    job = find_job(job_id)
    fmt = request.args.get("format", "json")
    if fmt not in ("json", "csv"):
        abort(400, description="format must be csv or json")
    if job.status != JobStatus.SUCCEEDED.value:
        message = f"the job is {job.status}; results are served once it has succeeded"
        return jsonify(error=message, status=job.status, job_error=job.error), 409
    session = db()
    if fmt == "csv":
        headers = {"Content-Disposition": f'attachment; filename="cytoscore-{job.id}.csv"'}
        body = stream_with_context(results.csv_stream(session, job))
        return Response(body, mimetype="text/csv", headers=headers)
    return jsonify(job=jobs.job_json(job), notice=results.NOTICE, results=list(results.records(session, job)))


@bp.get("/models")
def models() -> ResponseReturnValue:
    keys = (
        "name",
        "version",
        "sha256",
        "features",
        "metrics",
        "best_params",
        "sklearn_version",
        "feature_ranges",
    )
    return jsonify(models=[{k: m.get(k) for k in keys} for m in all_models()], notice=results.NOTICE)
