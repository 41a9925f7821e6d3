"""The job lifecycle as SQL: create, claim (fenced by attempt), progress, finish. Callers commit."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, Update, bindparam, func, insert, or_, update
from sqlalchemy.orm import Session, make_transient_to_detached

from shared.inputs import PartWriter, store_whole
from shared.intake.plan import Emit, Scanned
from shared.schema import Job, JobInput, JobKind, JobStatus, utcnow


def create_job(
    session: Session,
    *,
    kind: JobKind,
    model: dict[str, Any],
    content: bytes,
    media_type: str,
    input_format: str,
    rows_total: int,
    filename: str | None = None,
    delimiter: str | None = None,
    owner_id: int | None = None,
) -> Job:
    """Add a queued job and its input, stored as one part (in the session's transaction; the caller commits).

    The rows are written at once on the session's connection, with statements built once: for a single case the
    ORM's flush cost more than the database. The Job returned is in the session as if it had been read back.
    """
    sha256 = hashlib.sha256(content).hexdigest()
    job = _new_job(kind, model, filename, input_format, delimiter, rows_total, sha256, owner_id)
    connection = session.connection()
    connection.execute(_INSERT_JOB, {column: getattr(job, column) for column in _JOB_COLUMNS})
    connection.execute(_INSERT_INPUT, {"job_id": job.id, "media_type": media_type, "header": None})
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
) -> Job:
    """Add a queued upload job whose input is checked and stored in one pass: `scan` hands each part over as it is
    cut. If it raises, the caller rolls the transaction back and nothing of the job remains."""
    job = _new_job(JobKind.UPLOAD, model, filename, "csv", None, 0, "", owner_id)
    source = JobInput(job_id=job.id, media_type="text/csv")
    session.add(job)
    session.add(source)
    with PartWriter(session, job.id) as writer:
        scanned = scan(writer.write)
    job.rows_total, job.input_sha256 = scanned.summary.rows_total, scanned.sha256
    job.input_delimiter, source.header = scanned.summary.delimiter, scanned.header
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
        attempts=0,
        owner_id=owner_id,
        created_at=now,
        enqueued_at=now,  # about to be sent; `mark_unsent` clears it if the broker refuses
        started_at=None,
        finished_at=None,
        heartbeat_at=None,
        error=None,
        purged_at=None,
    )


# Built once: statements made per call cost more Python time than their round trip to the database.
_INSERT_JOB, _INSERT_INPUT = insert(Job), insert(JobInput)
_JOB_COLUMNS = tuple(column.key for column in Job.__table__.columns)
CLAIM = (
    update(Job)
    .where(
        Job.id == bindparam("job_id"),
        Job.attempts < bindparam("max_attempts"),
        or_(
            Job.status == JobStatus.QUEUED.value,
            (Job.status == JobStatus.RUNNING.value) & (Job.heartbeat_at < bindparam("stale_before")),
        ),
    )
    .values(
        status=JobStatus.RUNNING.value,
        attempts=Job.attempts + 1,
        started_at=bindparam("now"),
        heartbeat_at=bindparam("now"),
        error=None,
    )
)
_CLAIM_ATTEMPT = CLAIM.returning(Job.attempts)


def claim(session: Session, job_id: uuid.UUID, *, max_attempts: int, stale_after: float) -> int | None:
    """Take the job for this attempt if it is queued, or running with a stale heartbeat; return the attempt.

    The check and the attempt bump are one statement, so two deliveries of the same job cannot both win.
    """
    params = claim_params(job_id, max_attempts=max_attempts, stale_after=stale_after)
    attempt: int | None = session.connection().execute(_CLAIM_ATTEMPT, params).scalar_one_or_none()
    return attempt


def claim_params(job_id: uuid.UUID, *, max_attempts: int, stale_after: float) -> dict[str, Any]:
    """The values for CLAIM: which job, the attempts cap, and what counts as a stale heartbeat now."""
    now = utcnow()
    return {"job_id": job_id, "max_attempts": max_attempts, "stale_before": now - timedelta(seconds=stale_after),
            "now": now}  # fmt: skip


# Every write of a running job is fenced by its attempt: a newer attempt (or the reconciler) makes it a no-op.
_FENCED = update(Job).where(
    Job.id == bindparam("job_id"), Job.attempts == bindparam("attempt"), Job.status == JobStatus.RUNNING.value
)
_PROGRESS = _FENCED.values(
    rows_scored=bindparam("scored"), rows_rejected=bindparam("rejected"), heartbeat_at=bindparam("now")
)
_HEARTBEAT = _FENCED.values(heartbeat_at=bindparam("now"))
_HAND_BACK = _FENCED.values(status=JobStatus.QUEUED.value, enqueued_at=None, error=bindparam("reason"))
_FINISH = _FENCED.values(
    status=bindparam("status"),
    finished_at=bindparam("now"),
    heartbeat_at=bindparam("now"),
    error=bindparam("error"),
    rows_scored=func.coalesce(bindparam("scored", type_=Integer), Job.rows_scored),
    rows_rejected=func.coalesce(bindparam("rejected", type_=Integer), Job.rows_rejected),
)


def _fenced(session: Session, statement: Update, job_id: uuid.UUID, attempt: int, **values: Any) -> bool:
    """Run a fenced statement; False if this attempt no longer owns the job."""
    params = {"job_id": job_id, "attempt": attempt, "now": utcnow(), **values}
    return bool(session.connection().execute(statement, params).rowcount)


def record_progress(session: Session, job_id: uuid.UUID, attempt: int, *, scored: int, rejected: int) -> bool:
    """Set the running totals and the heartbeat; False if a newer attempt owns the job."""
    return _fenced(session, _PROGRESS, job_id, attempt, scored=scored, rejected=rejected)


def heartbeat(session: Session, job_id: uuid.UUID, attempt: int) -> bool:
    """Say this attempt is alive; False if a newer attempt (or the reconciler) has taken the job."""
    return _fenced(session, _HEARTBEAT, job_id, attempt)


def hand_back(session: Session, job_id: uuid.UUID, attempt: int, *, reason: str) -> bool:
    """Return a running job to the queue (a worker shutting down); the results written so far stay."""
    return _fenced(session, _HAND_BACK, job_id, attempt, reason=reason)


def succeeded_by(session: Session, job_id: uuid.UUID, attempt: int) -> bool:
    """Did this attempt finish the job? (After a commit whose answer was lost with the connection.)"""
    job = session.get(Job, job_id)
    return job is not None and job.attempts == attempt and job.status == JobStatus.SUCCEEDED.value


def finish(
    session: Session,
    job_id: uuid.UUID,
    attempt: int,
    *,
    status: JobStatus,
    error: str | None = None,
    counts: tuple[int, int] | None = None,
) -> bool:
    """Move the job to a terminal status (with its final scored and rejected counts), if this attempt owns it."""
    scored, rejected = counts if counts is not None else (None, None)
    return _fenced(
        session, _FINISH, job_id, attempt, status=status.value, error=error, scored=scored, rejected=rejected
    )


def mark_enqueued(session: Session, job_id: uuid.UUID, when: datetime | None = None) -> None:
    session.execute(update(Job).where(Job.id == job_id).values(enqueued_at=when or utcnow()))


def mark_unsent(session: Session, job_id: uuid.UUID) -> None:
    """The broker did not take the job id: the reconciler sends queued jobs without `enqueued_at` first."""
    session.execute(update(Job).where(Job.id == job_id).values(enqueued_at=None))


def get_job(session: Session, job_id: uuid.UUID) -> Job | None:
    return session.get(Job, job_id)


def job_input(session: Session, job_id: uuid.UUID) -> JobInput | None:
    return session.get(JobInput, job_id)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def job_json(job: Job) -> dict[str, Any]:
    """The job as the API shows it."""
    return {
        "id": str(job.id),
        "kind": job.kind,
        "status": job.status,
        "rows_total": job.rows_total,
        "rows_scored": job.rows_scored,
        "rows_rejected": job.rows_rejected,
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
    }
