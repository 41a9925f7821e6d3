"""A new job and its input, in the caller's transaction: stored whole as one part, or in parts as it is checked."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.orm import Session, make_transient_to_detached

from shared.intake.plain import Emit, Scanned
from shared.intake.readers import Layout
from shared.jobs.stored import PartWriter, store_whole
from shared.schema import Job, JobInput, JobKind, JobStatus, utcnow

# Built once: statements made per call cost more Python time than their round trip to the database.
_INSERT_JOB, _INSERT_INPUT = insert(Job), insert(JobInput)
_JOB_COLUMNS = tuple(column.key for column in Job.__table__.columns)


def create_job(
    session: Session,
    *,
    kind: JobKind,
    model: dict[str, Any],
    content: bytes,
    media_type: str,
    layout: Layout,
    input_format: str,
    rows_total: int,
    filename: str | None = None,
    delimiter: str | None = None,
    owner_id: int | None = None,
    explain: bool = False,
) -> Job:
    """Add a queued job and its input, stored as one part (in the session's transaction; the caller commits).

    The rows are written at once on the session's connection, with statements built once: for a single case the
    ORM's flush cost more than the database. The Job returned is in the session as if it had been read back.
    """
    sha256 = hashlib.sha256(content).hexdigest()
    job = _new_job(kind, model, filename, input_format, delimiter, rows_total, sha256, owner_id, explain)
    connection = session.connection()
    connection.execute(_INSERT_JOB, {column: getattr(job, column) for column in _JOB_COLUMNS})
    connection.execute(
        _INSERT_INPUT, {"job_id": job.id, "media_type": media_type, "layout": layout.value, "header": None}
    )
    store_whole(session, job.id, content, rows_total)
    make_transient_to_detached(job)  # every column was given, so nothing is left to load
    session.add(job)
    return job


def create_upload(
    session: Session,
    *,
    model: dict[str, Any],
    filename: str | None,
    scan: Callable[[Emit], Scanned],
    owner_id: int | None = None,
    explain: Callable[[int], bool] = lambda rows: False,
) -> Job:
    """Add a queued job for a plain CSV whose input is checked and stored in one pass: `scan` hands each part over
    as it is cut; `explain` decides from the row count whether rows get their contributions. If either raises, the
    caller rolls the transaction back and nothing of the job remains."""
    job = _new_job(JobKind.UPLOAD, model, filename, "csv", None, 0, "", owner_id, explain=False)
    source = JobInput(job_id=job.id, media_type="text/csv", layout=Layout.PLAIN.value)
    session.add(job)
    session.add(source)
    with PartWriter(session, job.id) as writer:
        scanned = scan(writer.write)
    job.rows_total, job.input_sha256 = scanned.summary.rows_total, scanned.sha256
    job.input_delimiter, source.header = scanned.summary.delimiter, scanned.header
    job.explain = explain(job.rows_total)
    return job


_COPY_INPUT = text(
    "INSERT INTO job_inputs (job_id, media_type, layout, header) "
    "SELECT :new, media_type, layout, header FROM job_inputs WHERE job_id = :old"
)
_COPY_PARTS = text(
    "INSERT INTO job_input_parts (job_id, part, first_row, row_count, content) "
    "SELECT :new, part, first_row, row_count, content FROM job_input_parts WHERE job_id = :old"
)


def create_rescore(session: Session, source: Job, *, model: dict[str, Any], owner_id: int | None) -> Job:
    """Add a queued job that scores `source`'s stored input again with another model: its input and parts are
    copied inside PostgreSQL, so nothing is sent again. LookupError if the input has been purged."""
    job = _new_job(JobKind(source.kind), model, source.input_filename, source.input_format, source.input_delimiter,
                   source.rows_total, source.input_sha256, owner_id, explain=False)  # fmt: skip
    connection = session.connection()
    connection.execute(_INSERT_JOB, {column: getattr(job, column) for column in _JOB_COLUMNS})
    if connection.execute(_COPY_INPUT, {"new": job.id, "old": source.id}).rowcount != 1:
        raise LookupError(f"job {source.id} has no stored input")
    connection.execute(_COPY_PARTS, {"new": job.id, "old": source.id})
    make_transient_to_detached(job)
    session.add(job)
    return job


def _new_job(
    kind: JobKind,
    model: dict[str, Any],
    filename: str | None,
    input_format: str,
    delimiter: str | None,
    rows_total: int,
    sha256: str,
    owner_id: int | None,
    explain: bool,
) -> Job:
    now = utcnow()
    return Job(
        id=uuid.uuid4(),
        kind=kind.value,
        status=JobStatus.QUEUED.value,
        model_name=model["name"],
        model_version=model["version"],
        model_sha256=model["sha256"],
        input_filename=filename,
        input_sha256=sha256,
        input_format=input_format,
        input_delimiter=delimiter,
        rows_total=rows_total,
        rows_scored=0,
        rows_rejected=0,
        rows_out_of_range=0,
        attempts=0,
        owner_id=owner_id,
        created_at=now,
        enqueued_at=now,  # about to be sent; `mark_unsent` clears it if the broker refuses
        started_at=None,
        finished_at=None,
        heartbeat_at=None,
        error=None,
        purged_at=None,
        explain=explain,
    )
