"""The JSON API, version 1."""

from __future__ import annotations

import json
import math
import uuid
from datetime import datetime
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask.typing import ResponseReturnValue

from api import (
    cancelling,
    compare,
    downloads,
    job_search,
    job_views,
    removal,
    rescore,
    results,
    review,
    row_case,
    schemas,
    validation,
)
from api.access import may_see, record, viewer
from api.database import db
from api.openapi import CSV, XLSX, document, errors, responses, spec
from api.registry import UnknownModel, all_models, model_meta
from api.submit import check_cases, submit_cases, submit_upload
from api.uploads import stream_form
from api.waiting import wait_until_finished
from shared.intake import FileRejected
from shared.intake.cases import loads, too_deep
from shared.schema import Job, JobInput, JobKind, JobStatus, utcnow
from shared.spreadsheets import neutralise, template_csv, template_xlsx

bp = Blueprint("api_v1", __name__, url_prefix="/api/v1")
TERMINAL = tuple(status.value for status in JobStatus if status.terminal)
# A job this small that has succeeded answers `?wait=` with its results too, so a single case is one request.
INLINE_RESULTS = 100


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


def job_json(job: Job) -> dict[str, Any]:
    """The job as the API shows it."""
    return {
        "id": str(job.id),
        "kind": job.kind,
        "status": job.status,
        "rows_total": job.rows_total,
        "rows_scored": job.rows_scored,
        "rows_rejected": job.rows_rejected,
        "seconds_left": _rounded(job_views.seconds_left(job, utcnow())),
        "jobs_ahead": job_views.jobs_ahead(db(), job),
        "rows_out_of_range": job.rows_out_of_range,
        # Set when the input looked misread: why the job was held (status needs_review) and, once released, by whom.
        "review": job.review,
        "reviewed_at": _iso(job.reviewed_at),
        "reviewed_by": job.reviewed_by,
        "cancelled_by": job.cancelled_by,  # who stopped it (status cancelled); finished_at says when
        "purged_at": _iso(job.purged_at),  # when its file and results were removed
        "purged_by": job.purged_by,  # by whom; null for the retention purge
        "model": {"name": job.model_name, "version": job.model_version, "sha256": job.model_sha256},
        "input": {
            "filename": job.input_filename,
            "sha256": job.input_sha256,
            "format": job.input_format,
            "delimiter": job.input_delimiter,
        },
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "attempts": job.attempts,
        "error": job.error,
        "source": None if job.source_row is None else {"job_id": _id(job.source_job_id), "row": job.source_row},
    }


def _id(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


def find_job(job_id: str) -> Job:
    try:
        parsed = uuid.UUID(job_id)
    except ValueError:
        abort(404, description="no such job")
    job = db().get(Job, parsed)
    if job is None or not may_see(job):
        abort(404, description="no such job")  # someone else's job answers exactly like a missing one
    return job


def _accepted(job: Job) -> ResponseReturnValue:
    """202 with where to look; with `?wait=`, the job as GET shows it, 201 if it finished within the wait."""
    url = url_for("api_v1.get_job", job_id=job.id)
    wait = _wait_asked()
    if not wait:
        return jsonify({"id": str(job.id), "status": job.status, "url": url}), 202, {"Location": url}
    _wait_for(job, wait)
    return jsonify({**_waited(job), "url": url}), 201 if job.status in TERMINAL else 202, {"Location": url}


def _wait_asked() -> float | None:
    """The `?wait=` seconds, if a positive number was given (the waiting caps it at 60); 400 if not a number."""
    wait = schemas.WaitQuery.parse(request.args).wait
    return wait if wait is not None and wait > 0 and math.isfinite(wait) else None


def _waited(job: Job) -> dict[str, Any]:
    """The job as GET shows it; once it has succeeded with at most INLINE_RESULTS rows, its results too (unless
    they have been purged: then `/results` says so)."""
    body = job_json(job)
    if job.status == JobStatus.SUCCEEDED.value and job.rows_total <= INLINE_RESULTS and job.purged_at is None:
        session = db()
        body["results"], body["notice"] = results.few_records(session, job), results.NOTICE
        record("job.download", job, detail=f"results with the finished job, {job.rows_total} rows")
        session.commit()
    return body


def _wait_for(job: Job, seconds: float) -> None:
    """Hold the answer until the job finishes (woken by its NOTIFY) or `seconds` (at most 60) pass; refresh `job`."""
    if job.status in TERMINAL:
        return
    session = db()
    session.commit()  # end the read transaction, so each check sees the newest committed row

    def finished() -> bool:
        session.refresh(job)
        if job.status in TERMINAL:
            return True  # the answer reads the results in this same transaction
        session.commit()  # the connection goes back to the pool while the request waits
        return False

    wait_until_finished(job.id, seconds, finished)  # its last call of finished() left `job` as the row is now


def _rejected(problems: list[str]) -> ResponseReturnValue:
    return jsonify(error="the input was refused; nothing was created", problems=problems), 422


@bp.post("/jobs")
@spec.validate(
    query=schemas.CreateQuery,
    json=schemas.Cases,
    form=schemas.Upload,
    resp=responses(
        HTTP_201=schemas.Waited, HTTP_202=schemas.Accepted, HTTP_422=schemas.Problems, **errors(400, 403, 413)
    ),
    tags=["jobs"],
)
def create_job() -> ResponseReturnValue:
    """Create a job from a CSV/XLSX upload or from JSON cases: 202 with its id, status and url (also `Location`).

    With `?wait=<seconds>` (at most 60) the answer waits for the job to finish, woken the moment it does: `201`
    with the job as `GET /api/v1/jobs/<id>` shows it (status, counts, model name, version and sha256) plus `url`,
    and, for a job of at most 100 rows that succeeded, its `results` (as `/results` gives them, without the
    input) and the `notice`: a single case is one request. Still unfinished when the time is up, `202` with the job.
    The query string is checked first: a bad one answers 400 and creates nothing.
    """
    explain = schemas.CreateQuery.parse(request.args).explain
    try:
        if request.is_json:
            return _create_from_json(_json_body(), explain)
        form = stream_form()
        if form.filename is None:
            abort(400, description="send a CSV or XLSX file in the multipart field `file`, or JSON with `cases`")
        model = form.fields.get("model") or None
        return _accepted(submit_upload(form.body, form.filename, model, explain, size_hint=request.content_length))
    except FileRejected as exc:
        return _rejected(exc.problems)
    except UnknownModel as exc:
        return _rejected([str(exc.args[0])])


# A case is an object of numbers and text; any JSON nesting deeper than this is refused by name before parsing.
_DEPTH_SHOWN = 8


def _json_body() -> Any:
    """The JSON body, read only up to `json_max_bytes` (413 past it); 400 if it is not JSON, 422 naming the case and
    key where it nests too deep to parse (non-finite numbers are refused by the validator, by case and key)."""
    request.max_content_length = current_app.config["CYTOSCORE"].json_max_bytes
    data = request.get_data(cache=True)
    try:
        return loads(data)
    except RecursionError:
        where = too_deep(data.decode("utf-8", "replace"), _DEPTH_SHOWN)
        raise FileRejected([f"{where}: the JSON nests too deep; a case is one object of numbers and text"]) from None
    except ValueError as exc:
        abort(400, description=f"the body is not valid JSON: {exc}")


def _create_from_json(body: Any, explain: str | None) -> ResponseReturnValue:
    if not isinstance(body, dict) or "cases" not in body:
        return _rejected(['the body must be a JSON object with a "cases" list'])
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        return _rejected(['"model" must be a model name'])
    check_cases(body["cases"], model)
    return _accepted(submit_cases(body["cases"], model, JobKind.FORM, explain))


@bp.get("/jobs")
@spec.validate(
    query=schemas.ListQuery, resp=responses(HTTP_200=schemas.JobList, HTTP_400=schemas.Problems), tags=["jobs"]
)
def list_jobs() -> ResponseReturnValue:
    """The jobs the caller may see, newest first, a page at a time: `jobs` and `next` (the next page's URL, or
    null on the last page). Arguments as the jobs page takes them: `q` (a file name contains it, or a row has
    exactly this case id), `status`, `model`, `from` and `to` (days in the site's time zone, CYTOSCORE_TIME_ZONE,
    both included), `owner` (an email; admins only), `limit` (1 to 200, default 50) and `after` (the position
    `next` carries)."""
    who = viewer()
    try:
        wanted = job_search.JobFilter.from_args(request.args, who)
    except job_search.BadFilter as exc:
        return jsonify(error="the list's arguments were refused", problems=exc.problems), 400
    session = db()
    found = job_search.listing(session, wanted, who)
    cases = job_views.single_case_ids(session, [job for job, _ in found.jobs])
    listed = []
    for job, owner in found.jobs:
        shown = job_json(job)
        if job.id in cases:
            shown["case_id"] = cases[job.id]
        if who.is_admin:
            shown["owner"] = owner
        listed.append(shown)
    after = found.next_after
    return jsonify(jobs=listed, next=url_for("api_v1.list_jobs", **wanted.args(after=after)) if after else None)


@bp.get("/jobs/<job_id>")
@spec.validate(query=schemas.WaitQuery, resp=responses(HTTP_200=schemas.Waited, **errors(400, 404)), tags=["jobs"])
def get_job(job_id: str) -> ResponseReturnValue:
    """The job row; with `?wait=<seconds>` (at most 60), answer as soon as it finishes, or when the time is up,
    then with the results too if it succeeded with at most 100 rows (as `POST /jobs?wait=` does)."""
    job = find_job(job_id)
    wait = _wait_asked()
    if wait:
        _wait_for(job, wait)
        return jsonify(_waited(job))
    return jsonify(job_json(job))


@bp.post("/jobs/<job_id>/confirm")
@spec.validate(resp=responses(HTTP_200=schemas.Job, **errors(403, 404, 409)), tags=["jobs"])
def confirm_job(job_id: str) -> ResponseReturnValue:
    """Release the results of a job held for review (`needs_review`): it becomes `succeeded`; audited."""
    job = find_job(job_id)
    review.confirm(job)
    return jsonify(job_json(job))


@bp.post("/jobs/<job_id>/cancel")
@spec.validate(resp=responses(HTTP_200=schemas.Job, **errors(404, 409)), tags=["jobs"])
def cancel_job(job_id: str) -> ResponseReturnValue:
    """Stop a job that is queued or running: it becomes `cancelled` at once, and its worker stops at its next write.
    Its results are never served; its stored input stays, so `rescore` can score it again. 409 once it finished."""
    job = find_job(job_id)
    if not cancelling.cancel(job):
        abort(409, description=cancelling.too_late(job))
    return jsonify(job_json(job))


@bp.post("/jobs/<job_id>/purge")
@spec.validate(resp=responses(HTTP_200=schemas.Job, **errors(404, 409)), tags=["jobs"])
def purge_job(job_id: str) -> ResponseReturnValue:
    """Remove a finished job's stored file and results for good, for anyone who may see it (audited): the job stays,
    with `purged_at` and `purged_by`; its results then answer 410. 409 while it runs (cancel it first)."""
    job = find_job(job_id)
    removal.remove(job)
    return jsonify(job_json(job))


@bp.post("/jobs/<job_id>/rescore")
@spec.validate(
    query=schemas.WaitQuery,
    json=schemas.Rescore,
    resp=responses(
        HTTP_201=schemas.Waited, HTTP_202=schemas.Accepted, HTTP_422=schemas.Problems, **errors(400, 403, 404)
    ),
    tags=["jobs"],
)
def rescore_job(job_id: str) -> ResponseReturnValue:
    """A new job on this job's stored input with another model (`{"model": name}`; without one, the best that the
    input's columns fit), answered as `POST /jobs` answers; 422 listing the columns the input lacks."""
    job = find_job(job_id)
    body = request.get_json(silent=True) if request.is_json else {}
    model = body.get("model") if isinstance(body, dict) else None
    if model is not None and not isinstance(model, str):
        return _rejected(['"model" must be a model name'])
    try:
        return _accepted(rescore.rescore(job, model))
    except FileRejected as exc:
        return _rejected(exc.problems)
    except UnknownModel as exc:
        return _rejected([str(exc.args[0])])


@bp.post("/jobs/<job_id>/rows/<int:row>/case")
@spec.validate(
    query=schemas.WaitQuery,
    resp=responses(HTTP_201=schemas.Waited, HTTP_202=schemas.Accepted, **errors(400, 403, 404, 409)),
    tags=["jobs"],
)
def open_row(job_id: str, row: int) -> ResponseReturnValue:
    """A single case made of one scored row of this job: its values as the file sent them, scored again by the same
    model with its explanation, naming this job and row as its `source`; answered as `POST /jobs` answers. 409 for
    a rejected row, a purged input, or a model changed since the job was scored."""
    return _accepted(row_case.open_row(find_job(job_id), row))


@bp.get("/jobs/<job_id>/validation")
@spec.validate(
    resp=responses(HTTP_200=schemas.Validation, HTTP_409=schemas.Conflict, **errors(404, 410)), tags=["jobs"]
)
def get_validation(job_id: str) -> ResponseReturnValue:
    """The answers against the diagnoses the file supplied (M positive): the 2x2 table, sensitivity, specificity,
    PPV and NPV with 95 % Wilson intervals, ROC AUC with a bootstrap interval and the ROC curve's points, for all
    rows and for the rows that were not training rows of the model; `validation` is null without a diagnosis.
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
    """The rows whose answers differ between two succeeded jobs on the same input, as JSON or CSV."""
    fmt = _format(schemas.CompareQuery)
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
        return _attachment(body, f"cytoscore-{first.id}-vs-{second.id}.csv", "text/csv")
    return jsonify(compared=found.compared, differing=found.differing, rows=list(rows))


def _format(
    query: type[schemas.ResultsQuery | schemas.ErrorsQuery | schemas.TemplateQuery | schemas.CompareQuery],
) -> str:
    """The `?format=` asked for, read with the handler's query model (400 for any other)."""
    return str(query.parse(request.args).format)


def _attachment(body: Any, filename: str, mimetype: str) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"}
    return Response(body, mimetype=mimetype, headers=headers)


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
    record("job.download", job, detail=f"results as {fmt}" + ("" if show == "all" else f", {show} rows"))
    session.commit()
    if fmt == "json":
        records = list(downloads.json_records(session, job, source, show))
        return jsonify(job=job_json(job), notice=results.NOTICE, results=records)
    header, rows = downloads.table(session, job, source, typed=fmt == "xlsx", show=show)
    name = f"cytoscore-{job.id}" + ("" if show == "all" else f"-{show}")
    if fmt == "xlsx":
        return _attachment(downloads.xlsx_bytes(header, rows), f"{name}.xlsx", XLSX)
    body = stream_with_context(downloads.csv_stream(header, rows))
    return _attachment(body, f"{name}.csv", "text/csv")


@bp.get("/jobs/<job_id>/errors")
@spec.validate(
    query=schemas.ErrorsQuery,
    resp=responses(HTTP_200=schemas.ErrorReport, HTTP_409=schemas.Conflict, **errors(400, 404, 410)),
    files={"200": (CSV,)},
    tags=["jobs"],
)
def get_errors(job_id: str) -> ResponseReturnValue:
    """The error report: one line per rejected value, with row, case id, column, value and reason."""
    fmt = _format(schemas.ErrorsQuery)
    job = _finished_job(job_id)
    source = db().get(JobInput, job.id)
    if source is None:
        abort(410, description="the job's input has been removed; its error report can no longer be made")
    record("job.download", job, detail=f"error report as {fmt}")
    db().commit()
    lines = downloads.problems(job, source, model_meta(job.model_name))
    if fmt == "json":
        return jsonify(problems=[dict(zip(downloads.PROBLEM_FIELDS, line, strict=True)) for line in lines])
    body = stream_with_context(downloads.csv_stream(downloads.PROBLEM_FIELDS, lines))
    return _attachment(body, f"cytoscore-{job.id}-errors.csv", "text/csv")


MODEL_KEYS = (
    "name", "version", "sha256", "engine", "features", "metrics", "calibration", "best_params", "sklearn_version",
    "feature_ranges",
)  # fmt: skip


@bp.get("/models")
@spec.validate(resp=responses(HTTP_200=schemas.Models), tags=["models"])
def models() -> ResponseReturnValue:
    """Every model: features, held-out metrics, calibration, sha256, engine, and which is the default."""
    default = current_app.config["CYTOSCORE"].default_model
    listed = [{**{k: m.get(k) for k in MODEL_KEYS}, "default": m["name"] == default} for m in all_models()]
    return jsonify(models=listed, notice=results.NOTICE)


@bp.get("/models/<name>/template")
@spec.validate(
    query=schemas.TemplateQuery, resp=responses(**errors(400, 404)), files={"200": (CSV, XLSX)}, tags=["models"]
)
def template(name: str) -> ResponseReturnValue:
    """A blank spreadsheet with the columns this model needs."""
    fmt = _format(schemas.TemplateQuery)
    try:
        features = model_meta(name)["features"]
    except UnknownModel as exc:
        abort(404, description=str(exc.args[0]))
    if fmt == "xlsx":
        return _attachment(template_xlsx(features), f"cytoscore-{name}-template.xlsx", XLSX)
    return _attachment(template_csv(features), f"cytoscore-{name}-template.csv", "text/csv")


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    """This API's OpenAPI 3.1 document, made from the handlers' own models (no sign-in needed)."""
    return jsonify(document())


@bp.get("/docs")
def docs() -> ResponseReturnValue:
    """The document as a reference page: Swagger UI, vendored under static/vendor/ (no CDN)."""
    return render_template("api_docs.html")
