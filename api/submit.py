"""Turning an upload or a list of cases into a committed, queued job. Used by the API and the pages alike."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from flask import abort, current_app
from flask_login import current_user
from sqlalchemy import bindparam, func, select, text
from sqlalchemy.orm import Session

from api.access import record
from api.auth import require
from api.database import db
from api.queueing import celery
from api.registry import all_models, model_meta
from shared import jobs
from shared.explain import over_the_limit
from shared.intake import (
    Batch,
    FileRejected,
    Layout,
    Limits,
    features_in,
    inspect_upload,
    read_header,
    sniff_format,
    validate_cases,
)
from shared.intake.plain import Emit, NotPlain, Scanned, scan
from shared.intake.source import HEAD, Incoming
from shared.intake.upload import ZIP_MAGIC, check_size
from shared.modelstore import best_fit, feature_ranges
from shared.schema import Job, JobKind, JobStatus, Role
from shared.settings import Settings

log = logging.getLogger(__name__)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# Built once: on every submission, constructing this statement would cost more than running it.
_IN_FLIGHT = (
    select(func.count())
    .select_from(Job)
    .where(
        Job.owner_id == bindparam("owner_id"),
        Job.id.is_distinct_from(bindparam("job_id")),
        Job.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]),
    )
)
# One advisory lock per person (two-key form: this namespace, a hash of the owner id), held to the commit.
_IN_FLIGHT_LOCK = text("SELECT pg_advisory_xact_lock(1668900929, hashtext(CAST(:owner_id AS text)))")


def _settings() -> Settings:
    return current_app.config["CYTOSCORE"]  # type: ignore[no-any-return]


def explain_wanted(asked: str | None, rows: int) -> bool:
    """Whether a job's rows get their contributions: a single case unless `explain=0`, other jobs with `explain=1`,
    up to `explain_max_rows` rows. FileRejected for anything else."""
    if asked not in (None, "", "0", "1"):
        raise FileRejected(["`explain` must be 0 or 1"])
    wanted = asked == "1" or (not asked and rows == 1)
    refused = over_the_limit(rows, _settings().explain_max_rows) if wanted else None
    if refused:
        raise FileRejected([refused])
    return wanted


def submit_upload(
    upload: Incoming, filename: str | None, model_name: str | None, explain: str | None = None,
    *, size_hint: int | None = None,
) -> Job:  # fmt: skip
    """Check the uploaded file as it is read, once and in order (the request's body as it arrives), while storing
    it in parts, then queue it. A large file's job goes on the queue with its first stored parts, so workers score
    them while the rest arrives. A workbook, or a CSV that is not plainly written, is read whole, then checked.

    Raises FileRejected with every whole-file problem; nothing is stored then. `size_hint`: the body's length.
    `explain`: see `explain_wanted`.
    """
    require(Role.LAB, Role.ADMIN)
    settings = _settings()
    limits = Limits(max_bytes=settings.max_upload_bytes, max_rows=settings.max_rows, max_columns=settings.max_columns)
    session = db()
    _check_in_flight(session)
    first = upload.peek(HEAD)
    if first.startswith(ZIP_MAGIC) or not first.strip():  # a workbook's header is in its sheet, anywhere in the zip
        return _submit_whole(session, upload.read(), filename, model_name, limits, explain)
    model = model_meta(model_name) if model_name else model_for(read_header(first, filename))

    # Rows to be explained are few, and their job is decided on its row count: such a file stays one part.
    split_min_bytes = settings.parallel_min_bytes if explain != "1" else limits.max_bytes + 1

    def scan_plain(emit: Emit) -> Scanned:
        return scan(upload, filename, model["features"], emit, limits, part_bytes=settings.part_bytes,
                    split_min_bytes=split_min_bytes, size_hint=size_hint)  # fmt: skip

    try:
        job = jobs.create_upload(session, model=model, filename=filename, scan=scan_plain,
                                 owner_id=current_user.user_id, explain=lambda rows: explain_wanted(explain, rows),
                                 received=lambda job_id: jobs.publish(celery(), job_id))  # fmt: skip
    except NotPlain as exc:
        session.rollback()  # nothing of the first pass stays
        return _submit_whole(session, exc.read + upload.read(), filename, model_name, limits, explain)
    except BaseException:
        session.rollback()
        raise
    return _queue(session, job)


def _submit_whole(
    session: Session, content: bytes, filename: str | None, model_name: str | None, limits: Limits, explain: str | None
) -> Job:
    """Queue a file read whole: a workbook, stored as sent for the worker to read and check (its container is
    checked here), or a CSV checked here record by record."""
    model = model_meta(model_name) if model_name else model_for(read_header(content, filename))
    check_size(content, limits)
    try:
        if sniff_format(content, filename) == "xlsx":
            job = _store_workbook(session, content, filename, model, explain == "1")
        else:
            summary = inspect_upload(content, filename, model["features"], limits)
            job = jobs.create_job(session, kind=JobKind.UPLOAD, model=model, content=content, media_type="text/csv",
                                  layout=Layout.CSV, input_format="csv", rows_total=summary.rows_total,
                                  filename=filename, delimiter=summary.delimiter, owner_id=current_user.user_id,
                                  explain=explain_wanted(explain, summary.rows_total))  # fmt: skip
    except BaseException:
        session.rollback()
        raise
    return _queue(session, job)


def model_for(header: Sequence[str]) -> dict[str, Any]:
    """The model a file named no model for is scored with: the best held-out ROC AUC among the models whose
    features its header has (the upload panel's script pre-selects by the same rule); the default if none fits."""
    return best_fit(all_models(), features_in(header)) or model_meta(None)


def _store_workbook(
    session: Session, content: bytes, filename: str | None, model: dict[str, Any], explain: bool
) -> Job:
    """Store an XLSX file whose container passed its checks, to be read and checked in the worker.

    Reading a sheet takes seconds (calamine: about 3 s for 100,000 rows of 32 cells here), which a web request
    should not hold a thread for; the worker reads it once, checks it whole and counts its rows before scoring.
    """
    return jobs.create_job(session, kind=JobKind.UPLOAD, model=model, content=content, media_type=XLSX,
                           layout=Layout.XLSX, input_format="xlsx", rows_total=0, filename=filename,
                           owner_id=current_user.user_id, explain=explain)  # fmt: skip


def check_cases(cases: object, model_name: str | None) -> Batch:
    """Validate cases without creating anything (the form shows problems beside the fields)."""
    model = model_meta(model_name)
    if not isinstance(cases, Sequence) or isinstance(cases, str | bytes):
        raise FileRejected(["`cases` must be a list of objects"])
    if not cases:
        raise FileRejected(["`cases` is empty: send at least one case"])
    settings = _settings()
    clinician = current_user.may(Role.CLINICIAN)
    limit = min(settings.clinician_max_cases if clinician else settings.json_max_cases, settings.max_rows)
    if len(cases) > limit:
        who = "a clinician may send" if clinician else "one request may carry"
        raise FileRejected([f"{len(cases)} cases: {who} at most {limit} cases as JSON; "
                            "send more as a CSV or XLSX file upload (lab staff), which is streamed"])  # fmt: skip
    return validate_cases(cases, model["features"], feature_ranges(model))


def submit_cases(
    cases: Sequence[Mapping[str, object]],
    model_name: str | None,
    kind: JobKind,
    explain: str | None = None,
    source: tuple[uuid.UUID, int] | None = None,
) -> Job:
    """Store and queue cases that passed `check_cases`'s structural checks (row problems travel with the job).

    `source`: the job and row a single case was opened from (api/row_case.py).
    """
    model = model_meta(model_name)
    explained = explain_wanted(explain, len(cases))
    content = json.dumps({"cases": list(cases)}, separators=(",", ":"), allow_nan=False).encode()
    return _commit_and_queue(
        detail=None if source is None else f"a single case from row {source[1]} of job {source[0]}",
        source=source,
        kind=kind,
        model=model,
        content=content,
        media_type="application/json",
        layout=Layout.JSON,
        input_format="json",
        rows_total=len(cases),
        explain=explained,
    )


def _check_in_flight(session: Session, job: Job | None = None) -> None:
    """429 when this person already has as many unfinished jobs as one may have (besides `job`, being created)."""
    limit = _settings().max_jobs_in_flight
    owner = current_user.user_id
    in_flight = session.connection().scalar(_IN_FLIGHT, {"owner_id": owner, "job_id": job.id if job else None})
    if (in_flight or 0) >= limit:
        abort(429, description=f"you already have {in_flight} jobs queued or running (the limit is {limit}); "
                               "wait for some to finish")  # fmt: skip


def _commit_and_queue(detail: str | None = None, **fields: Any) -> Job:
    session = db()
    return _queue(session, jobs.create_job(session, **fields, owner_id=current_user.user_id), detail)


def _queue(session: Session, job: Job, detail: str | None = None) -> Job:
    """Audit and commit the new job, then put its id on the queue.

    The in-flight cap is checked again under this person's advisory lock, held until the commit: of concurrent
    submissions each counts the jobs the ones before it committed, so exactly the cap gets through (a check
    before the insert alone let 27 of 40 through a cap of 20).
    """
    session.execute(_IN_FLIGHT_LOCK, {"owner_id": str(current_user.user_id)})
    try:
        _check_in_flight(session, job)
    except BaseException:
        session.rollback()
        raise
    record("job.create", job, detail=detail or f"{job.kind}, {job.rows_total} rows, model {job.model_name}")
    session.commit()  # the id goes on the queue only once the row is durable
    if not jobs.publish(celery(), job.id, jobs.queue_for(_settings(), job.rows_total)):
        jobs.mark_unsent(session, job.id)  # never sent: the reconciler sends it on its next round
        session.commit()
    log.info("job %s created: kind=%s rows=%d model=%s", job.id, job.kind, job.rows_total, job.model_name)
    return job


#: For the other ways a job is made (a rescore): the same cap, the same audit, commit and send.
check_in_flight, queue = _check_in_flight, _queue
