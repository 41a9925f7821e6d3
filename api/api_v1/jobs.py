"""Jobs through the API: sent (a file or JSON cases), listed, followed (with `?wait=`), confirmed, cancelled,
removed, rescored, a row opened as a case, and a row's diagnosis confirmed later."""

from __future__ import annotations

import math
from typing import Any

from flask import abort, current_app, jsonify, request, url_for
from flask.typing import ResponseReturnValue

from api import cancelling, confirmed, job_search, job_views, removal, rescore, results, review, row_case, schemas
from api.access import record, viewer
from api.api_v1 import INLINE_RESULTS, TERMINAL, bp, find_job, job_json
from api.database import db
from api.openapi import errors, responses, spec
from api.registry import UnknownModel
from api.submit import check_cases, submit_cases, submit_upload
from api.uploads import stream_form
from api.waiting import wait_until_finished
from shared.intake import FileRejected
from shared.intake.cases import loads, too_deep
from shared.schema import Job, JobKind, JobStatus


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


@bp.get("/jobs/<job_id>/rows/<int:row>/confirmed-diagnosis")
@spec.validate(resp=responses(HTTP_200=schemas.ConfirmedDiagnosis, **errors(404, 409, 410)), tags=["jobs"])
def get_confirmed_diagnosis(job_id: str, row: int) -> ResponseReturnValue:
    """The diagnosis recorded for a scored row after it was scored (histology, say), beside the model's answer;
    404 if none was recorded."""
    job, session = find_job(job_id), db()
    result = confirmed.scored_result(session, job, row)
    found = confirmed.recorded(session, job, row)
    if found is None:
        abort(404, description=f"row {row} of job {job.id} has no confirmed diagnosis")
    return jsonify(confirmed.as_json(found, result))


@bp.put("/jobs/<job_id>/rows/<int:row>/confirmed-diagnosis")
@spec.validate(
    json=schemas.ConfirmDiagnosis,
    resp=responses(HTTP_200=schemas.ConfirmedDiagnosis, HTTP_422=schemas.Problems, **errors(403, 404, 409, 410)),
    tags=["jobs"],
)
def confirm_diagnosis(job_id: str, row: int) -> ResponseReturnValue:
    """Record the diagnosis a scored row turned out to have (`{"diagnosis": "M" or "B", "basis": "histology",
    "cytology" or "follow-up"}`), or correct the one recorded; audited. The result itself never changes."""
    job = find_job(job_id)
    body = request.get_json(silent=True)
    body = body if isinstance(body, dict) else {}
    wrong = confirmed.problems(body.get("diagnosis"), body.get("basis"))
    if wrong:
        return _refused(wrong)
    found = confirmed.confirm(job, row, body["diagnosis"], body["basis"])
    return jsonify(confirmed.as_json(found, confirmed.scored_result(db(), job, row)))


@bp.post("/jobs/<job_id>/confirmed-diagnoses")
@spec.validate(
    json=schemas.ConfirmDiagnoses,
    resp=responses(HTTP_200=schemas.Recorded, HTTP_422=schemas.Problems, **errors(403, 404, 409, 410)),
    tags=["jobs"],
)
def confirm_diagnoses(job_id: str) -> ResponseReturnValue:
    """Record the confirmed diagnoses of several rows at once (`{"basis": …, "diagnoses": [{"row": n or
    "case_id": id, "diagnosis": "M" or "B"}, …]}`, at most 10,000): all of them, or, when any has a problem, none,
    answering 422 with each problem by its place in the list. Audited as one event."""
    job = find_job(job_id)
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("diagnoses"), list):
        return _refused(['the body must be a JSON object with "basis" and a "diagnoses" list'])
    given: list[Any] = body["diagnoses"]
    entries = [
        confirmed.Entry(f"diagnoses[{i}]", row=item.get("row"), case_id=item.get("case_id"),
                        diagnosis=item.get("diagnosis"))
        if isinstance(item, dict) else confirmed.Entry(f"diagnoses[{i}]")
        for i, item in enumerate(given)
    ]  # fmt: skip
    problems = confirmed.confirm_many(job, entries, body.get("basis"))
    if problems:
        return _refused(problems)
    return jsonify(recorded=len(entries))


@bp.post("/jobs/<job_id>/confirmed-diagnoses/copy")
@spec.validate(
    json=schemas.CopyDiagnoses,
    resp=responses(HTTP_200=schemas.Recorded, HTTP_422=schemas.Problems, **errors(403, 404, 409, 410)),
    tags=["jobs"],
)
def copy_confirmed_diagnoses(job_id: str) -> ResponseReturnValue:
    """Bring the confirmed diagnoses of another job on the same file (`{"source": job id}`: a rescore with
    another model, say) to this job's same rows, each with its basis: all of them, or, when any row has a problem
    here (rejected by this job's model, say), none, answering 422 with each problem. 409 for a job on another
    file. Audited as one event."""
    job = find_job(job_id)
    body = request.get_json(silent=True)
    source = body.get("source") if isinstance(body, dict) else None
    if not isinstance(source, str):
        return _refused(['the body must be a JSON object with "source", the id of a job on the same file'])
    count, problems = confirmed.copy_from(job, find_job(source))
    if problems:
        return _refused(problems)
    return jsonify(recorded=count)


def _refused(problems: list[str]) -> ResponseReturnValue:
    return jsonify(error="refused; nothing was recorded", problems=problems), 422


@bp.delete("/jobs/<job_id>/rows/<int:row>/confirmed-diagnosis")
@spec.validate(resp=responses(HTTP_204=None, **errors(403, 404, 409, 410)), tags=["jobs"])
def withdraw_confirmed_diagnosis(job_id: str, row: int) -> ResponseReturnValue:
    """Withdraw a row's confirmed diagnosis (recorded for the wrong case, say); audited."""
    confirmed.withdraw(find_job(job_id), row)
    return "", 204
