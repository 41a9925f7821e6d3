"""Attempts: claiming a job with the fence, joining a running attempt, and every other write of a running job.

A job is claimed for a new attempt by one statement that both checks and takes it: it must be queued, or running
with a stale heartbeat, and have attempts left; the attempt count goes up in the same statement, so two deliveries
of one job cannot both win. Every later write of the attempt is fenced by it (same `attempts`, still `running`): a
newer attempt, a hand-back or the reconciler turns it into a no-op.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, Update, bindparam, case, func, or_, select, update
from sqlalchemy.orm import Session

from shared.schema import Job, JobInput, JobInputPart, JobStatus, utcnow

GAVE_UP = "gave up after"
#: An input part at most this large comes back with the claim, saving a round trip (a single case, a small file).
INLINE_BYTES = 1 << 20


class Superseded(Exception):
    """A newer attempt owns the job (or it was handed back, cancelled or finished): this attempt stops without
    writing."""


@dataclass(frozen=True)
class Attempt:
    """One try at a job, as a worker holds it: what it needs to plan and read the job's units of work."""

    job_id: uuid.UUID
    number: int
    model_name: str
    model_sha256: str
    filename: str | None
    layout: str
    header: bytes | None  # a plain CSV in several parts: its header line, which later parts are read with
    parts: int
    explain: bool  # each scored row carries its per-feature contributions
    lead: bool  # claimed the job; False for a worker that joined the running attempt to score parts
    content: bytes | None  # the only part's bytes, when the job has one part of at most INLINE_BYTES
    receiving: bool = False  # the web was storing the input's parts when this attempt began (or its claim waited)


_CLAIMED = (
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
    .returning(
        Job.id, Job.attempts, Job.model_name, Job.model_sha256, Job.input_filename, Job.explain, Job.receiving_at
    )
    .cte("claimed")
)
_PART_COUNT = select(func.count()).where(JobInputPart.job_id == _CLAIMED.c.id).scalar_subquery()
# The parts are counted in the statement's snapshot, but the claimed row is the newest: when the claim waited for the
# web's last transaction of a received upload (its last part, `receiving_at` cleared), the row says the receiving
# ended while the count lacks that transaction's part. The job's row as the snapshot holds it still says receiving.
_SEEN_RECEIVING = select(Job.receiving_at.is_not(None)).where(Job.id == _CLAIMED.c.id).scalar_subquery()
_INLINE = (
    select(case((func.octet_length(JobInputPart.content) <= INLINE_BYTES, JobInputPart.content)))
    .where(JobInputPart.job_id == _CLAIMED.c.id, JobInputPart.part == 0)
    .scalar_subquery()
)
# Built once: on a single case, constructing these statements would cost more than running them.
CLAIM = select(
    _CLAIMED.c.attempts,
    _CLAIMED.c.model_name,
    _CLAIMED.c.model_sha256,
    _CLAIMED.c.input_filename,
    _CLAIMED.c.explain,
    _CLAIMED.c.receiving_at,
    _SEEN_RECEIVING.label("seen_receiving"),
    JobInput.layout,
    JobInput.header,
    _PART_COUNT.label("parts"),
    _INLINE.label("content"),
).join(JobInput, JobInput.job_id == _CLAIMED.c.id)
_JOIN = (
    select(
        Job.attempts,
        Job.model_name,
        Job.model_sha256,
        Job.input_filename,
        Job.explain,
        Job.receiving_at,
        JobInput.layout,
        JobInput.header,
        select(func.count()).where(JobInputPart.job_id == Job.id).scalar_subquery().label("parts"),
    )
    .join(JobInput, JobInput.job_id == Job.id)
    .where(Job.id == bindparam("job_id"), Job.status == JobStatus.RUNNING.value)
)


def claim_job(session: Session, job_id: uuid.UUID, *, max_attempts: int, stale_after: float) -> Attempt | None:
    """Take the job for a new attempt and read how it is stored, in one statement; None if it cannot be taken.

    The claim's commit does not wait for the disk (`synchronous_commit = off`): it is visible at once and reaches
    the disk with the attempt's first durable commit, which flushes everything committed before it. Should
    PostgreSQL crash first, the claim is undone and the job is queued again, as if its message had not been taken.

    A job whose receiving ended while the claim waited for its row is taken as still receiving (`_SEEN_RECEIVING`).
    """
    now = utcnow()
    params = {"job_id": job_id, "max_attempts": max_attempts, "stale_before": now - timedelta(seconds=stale_after),
              "now": now}  # fmt: skip
    connection = session.connection()
    found = connection.execute(CLAIM, params).one_or_none()
    if found is None:
        return None
    connection.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
    # Counted as still receiving, it is scored part by part from the ledger, which counts the parts again.
    receiving = found.receiving_at is not None or bool(found.seen_receiving)
    return Attempt(
        job_id, found.attempts, found.model_name, found.model_sha256, found.input_filename, found.layout,
        found.header, found.parts, found.explain, lead=True,
        content=found.content if found.parts == 1 and not receiving else None, receiving=receiving,
    )  # fmt: skip


def join_attempt(session: Session, job_id: uuid.UUID) -> Attempt | None:
    """The running attempt of a job stored in several parts (or still being received), for a worker that helps
    score its parts."""
    found = session.connection().execute(_JOIN, {"job_id": job_id}).one_or_none()
    receiving = found is not None and found.receiving_at is not None
    if found is None or (found.parts < 2 and not receiving):
        return None
    return Attempt(
        job_id, found.attempts, found.model_name, found.model_sha256, found.input_filename, found.layout,
        found.header, found.parts, found.explain, lead=False, content=None, receiving=receiving,
    )  # fmt: skip


def still_receiving(session: Session, job_id: uuid.UUID) -> bool | None:
    """Whether the web is still storing the job's input parts; None if the job is gone (its upload was refused)."""
    found = session.execute(select(Job.receiving_at).where(Job.id == job_id)).one_or_none()
    return None if found is None else found.receiving_at is not None


# Every write of a running job is fenced by its attempt: a newer attempt (or the reconciler) makes it a no-op.
FENCED = update(Job).where(
    Job.id == bindparam("job_id"), Job.attempts == bindparam("attempt"), Job.status == JobStatus.RUNNING.value
)
_HEARTBEAT = FENCED.values(heartbeat_at=bindparam("now"))
_COUNTED = FENCED.values(rows_total=bindparam("rows"))
_HAND_BACK = FENCED.values(status=JobStatus.QUEUED.value, enqueued_at=None, error=bindparam("reason"))
_FINISH = FENCED.values(
    status=bindparam("status"),
    finished_at=bindparam("now"),
    heartbeat_at=bindparam("now"),
    error=bindparam("error"),
    rows_scored=func.coalesce(bindparam("scored", type_=Integer), Job.rows_scored),
    rows_rejected=func.coalesce(bindparam("rejected", type_=Integer), Job.rows_rejected),
    rows_out_of_range=func.coalesce(bindparam("out_of_range", type_=Integer), Job.rows_out_of_range),
    review=bindparam("review"),
)


def fenced(session: Session, statement: Update, attempt: Attempt, **values: Any) -> bool:
    """Run a fenced statement; False if this attempt no longer owns the job."""
    params = {"job_id": attempt.job_id, "attempt": attempt.number, "now": utcnow(), **values}
    return bool(session.connection().execute(statement, params).rowcount)


def heartbeat(session: Session, attempt: Attempt) -> bool:
    """Say this attempt is alive; False if a newer attempt (or the reconciler) has taken the job."""
    return fenced(session, _HEARTBEAT, attempt)


def hand_back(session: Session, attempt: Attempt, *, reason: str) -> bool:
    """Return a running job to the queue (its worker is stopping, or hit a defect); the results written stay."""
    return fenced(session, _HAND_BACK, attempt, reason=reason)


def count_rows(session: Session, attempt: Attempt, rows: int) -> bool:
    """Record the number of rows of an input counted only when it was read (a workbook); False if superseded."""
    return fenced(session, _COUNTED, attempt, rows=rows)


def fail(session: Session, attempt: Attempt, error: str) -> bool:
    """End the attempt's job as failed, saying why; False if this attempt no longer owns it."""
    return fenced(
        session, _FINISH, attempt, status=JobStatus.FAILED.value, error=error, scored=None, rejected=None,
        out_of_range=None, review=None,
    )  # fmt: skip


def succeed(session: Session, attempt: Attempt, *, scored: int, rejected: int, out_of_range: int = 0,
            review: str | None = None) -> bool:  # fmt: skip
    """End the attempt's job with its final counts: succeeded, or held for review when `review` says why (its
    results are then held back until a lab user confirms them). False if this attempt no longer owns the job."""
    status = JobStatus.NEEDS_REVIEW if review else JobStatus.SUCCEEDED
    return fenced(
        session, _FINISH, attempt, status=status.value, error=None, scored=scored, rejected=rejected,
        out_of_range=out_of_range, review=review,
    )  # fmt: skip


def succeeded_by(session: Session, attempt: Attempt) -> bool:
    """Did this attempt finish the job? (After a commit whose answer was lost with the connection.)"""
    found = session.execute(select(Job.attempts, Job.status).where(Job.id == attempt.job_id)).one_or_none()
    finished = (JobStatus.SUCCEEDED.value, JobStatus.NEEDS_REVIEW.value)
    return found is not None and found.attempts == attempt.number and found.status in finished


def close_exhausted(job: Job, now: datetime) -> None:
    """Fail a queued job that has used every attempt (its last was handed back), keeping why the last one ended."""
    job.status, job.finished_at = JobStatus.FAILED.value, now
    job.error = f"{GAVE_UP} {job.attempts} attempts" + (f"; {job.error}" if job.error else "")


def close_if_exhausted(session: Session, job_id: uuid.UUID, max_attempts: int) -> tuple[str, bool] | None:
    """For a delivery that could not claim its job: fail it if it is queued with no attempt left.

    Returns the job's status as this leaves it and whether this closed it; None if there is no such job.
    """
    job = session.get(Job, job_id, with_for_update=True)
    if job is None:
        return None
    exhausted = job.status == JobStatus.QUEUED.value and job.attempts >= max_attempts
    if exhausted:
        close_exhausted(job, utcnow())
    return job.status, exhausted
