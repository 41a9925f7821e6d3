"""What a finished job answered: its results and error report as JSON, CSV or XLSX, its validation against a
supplied diagnosis, and how two jobs on the same input differ."""

from __future__ import annotations

import json
from collections.abc import Iterator

from flask import Response, abort, jsonify, request, stream_with_context
from flask.typing import ResponseReturnValue

from api import compare, downloads, job_views, results, schemas, validation
from api.access import record
from api.api_v1 import attachment, bp, find_job, job_json, wanted_format
from api.database import db
from api.openapi import CSV, XLSX, errors, responses, spec
from api.registry import model_meta
from shared import spreadsheets
from shared.schema import Job, JobInput, JobStatus
from shared.spreadsheets import neutralise


@bp.get("/jobs/<job_id>/validation")
@spec.validate(
    resp=responses(HTTP_200=schemas.Validation, HTTP_409=schemas.Conflict, **errors(404, 410)), tags=["jobs"]
)
def get_validation(job_id: str) -> ResponseReturnValue:
    """The answers against the rows' known diagnoses (M positive): confirmed after scoring where one was recorded,
    else supplied by the file (`reference` says which, `confirmed_rows` how many were confirmed and
    `corrected_rows` how many of those differ from the file's). The 2x2 table, sensitivity, specificity, PPV and
    NPV with 95 % Wilson intervals, ROC AUC with a bootstrap interval and the ROC curve's points, for all rows and
    for the rows that were not training rows of the model; `validation` is null while no row has a diagnosis.
    410 once the job's results have been removed."""
    job = _finished_job(job_id)
    if job.purged_at is not None:
        abort(410, description="the job's results have been removed")
    session = db()
    record("job.view", job, detail="validation figures")
    session.commit()
    return jsonify(job=str(job.id), model=job.model_name, validation=validation.validation(session, job))


@bp.get("/jobs/<job_id>/compare/<other_id>")
@spec.validate(
    query=schemas.CompareQuery,
    resp=responses(HTTP_200=schemas.Comparison, **errors(400, 404, 409)),
    files={"200": (CSV,)},
    tags=["jobs"],
)
def compare_jobs(job_id: str, other_id: str) -> ResponseReturnValue:
    """The rows whose answers differ between two succeeded jobs on the same input, as JSON or CSV. In JSON,
    `against_known` says which job answers rightly the rows whose diagnosis is known (confirmed on either job, else
    supplied; rows whose jobs record different confirmed diagnoses are `conflicting_rows`, left out): each job's
    share right with a 95 % Wilson interval, the rows only one gets right and McNemar's exact test of them, for
    all such rows and for those neither model was trained on; null while no row has a known diagnosis."""
    fmt = wanted_format(schemas.CompareQuery)
    first, second = find_job(job_id), find_job(other_id)
    session = db()
    try:
        found = compare.summary(session, first, second)
    except compare.NotComparable as exc:
        return jsonify(error=str(exc)), 409
    record("job.download", first, detail=f"rows differing from job {second.id}, as {fmt}")
    session.commit()
    rows = compare.differing_rows(session, first, second)
    if fmt == "csv":
        lines = ([neutralise(v) if isinstance(v, str) else v for v in r.values()] for r in rows)
        body = stream_with_context(downloads.csv_stream(compare.FIELDS, lines))
        return attachment(body, f"cytoscore-{first.id}-vs-{second.id}.csv", "text/csv")
    head = {"compared": found.compared, "differing": found.differing,
            "against_known": compare.against_known(session, first, second)}  # fmt: skip
    return _json(downloads.json_stream(head, "rows", rows))


def _json(pieces: Iterator[str]) -> Response:
    """A JSON answer written as it is made (`downloads.json_stream`), with the request's session kept open."""
    return Response(stream_with_context(pieces), mimetype="application/json")


def _finished_job(job_id: str) -> Job:
    job = find_job(job_id)
    if job.status != JobStatus.SUCCEEDED.value:
        message = f"the job is {job.status}; results are served once it has succeeded"
        if job.status == JobStatus.NEEDS_REVIEW.value:
            message = f"the job is held for review: {job.review} Confirm it with POST /api/v1/jobs/{job.id}/confirm"
        abort(Response(json.dumps({"error": message, "status": job.status, "job_error": job.error}), 409,
                       mimetype="application/json"))  # fmt: skip
    return job


@bp.get("/jobs/<job_id>/results")
@spec.validate(
    query=schemas.ResultsQuery,
    resp=responses(HTTP_200=schemas.Results, HTTP_409=schemas.Conflict, **errors(400, 404, 410)),
    files={"200": (CSV, XLSX)},
    tags=["jobs"],
)
def get_results(job_id: str) -> ResponseReturnValue:
    """The results, one row per input row, in input order (JSON, or a CSV or XLSX file); `show` keeps some."""
    asked = schemas.ResultsQuery.parse(request.args)
    fmt, show = asked.format, asked.show
    job = _finished_job(job_id)
    session = db()
    source = session.get(JobInput, job.id)
    if source is None:
        abort(410, description="the job's input has been removed; its results can no longer be exported")
    if fmt == "xlsx" and (wanted := job_views.shown_rows(session, job, show)) > (most := spreadsheets.XLSX_MAX_ROWS):
        return jsonify(error=f"{wanted:,} rows do not fit in one XLSX sheet, which holds {most:,} rows under its "
                             "header: download them as CSV", status=job.status, job_error=None), 409  # fmt: skip
    record("job.download", job, detail=f"results as {fmt}" + ("" if show == "all" else f", {show} rows"))
    session.commit()
    if fmt == "json":
        head = {"job": job_json(job), "notice": results.NOTICE}
        return _json(downloads.json_stream(head, "results", downloads.json_records(session, job, source, show)))
    header, rows = downloads.table(session, job, source, typed=fmt == "xlsx", show=show)
    name = f"cytoscore-{job.id}" + ("" if show == "all" else f"-{show}")
    if fmt == "xlsx":
        size, pieces = downloads.xlsx_pieces(header, rows)
        sent = attachment(pieces, f"{name}.xlsx", XLSX)
        sent.content_length = size
        return sent
    body = stream_with_context(downloads.csv_stream(header, rows))
    return attachment(body, f"{name}.csv", "text/csv")


@bp.get("/jobs/<job_id>/errors")
@spec.validate(
    query=schemas.ErrorsQuery,
    resp=responses(HTTP_200=schemas.ErrorReport, HTTP_409=schemas.Conflict, **errors(400, 404, 410)),
    files={"200": (CSV,)},
    tags=["jobs"],
)
def get_errors(job_id: str) -> ResponseReturnValue:
    """The error report: one line per rejected value, with row, case id, column, value and reason."""
    fmt = wanted_format(schemas.ErrorsQuery)
    job = _finished_job(job_id)
    source = db().get(JobInput, job.id)
    if source is None:
        abort(410, description="the job's input has been removed; its error report can no longer be made")
    record("job.download", job, detail=f"error report as {fmt}")
    db().commit()
    lines = downloads.problems(job, source, model_meta(job.model_name))
    if fmt == "json":
        problems = (dict(zip(downloads.PROBLEM_FIELDS, line, strict=True)) for line in lines)
        return _json(downloads.json_stream({}, "problems", problems))
    body = stream_with_context(downloads.csv_stream(downloads.PROBLEM_FIELDS, lines))
    return attachment(body, f"cytoscore-{job.id}-errors.csv", "text/csv")
