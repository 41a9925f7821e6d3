"""Cancelling: a person stops a job that is still queued or running.

It ends under the job row's lock, which every fenced write of a running attempt takes too: the worker's next write
(a batch, a heartbeat, its finish) finds the job no longer running, rolls its batch back and stops, and a queued
job's delivery finds nothing to claim. The stored input stays, so the job can be scored again; results
written before the cancel stay stored, and are never served (only a succeeded job's are). The caller records the
cancel in the audit trail in the same transaction.
"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from shared.schema import Job, JobStatus, utcnow

UNFINISHED = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)


def cancel(session: Session, job_id: uuid.UUID, *, by: str) -> str | None:
    """Cancel the job if it has not finished, naming who did; the status it was cancelled in (queued or running),
    None if it had already finished. The job, as loaded in `session`, then holds its counts at the cancel."""
    job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
    if job is None or job.status not in UNFINISHED:
        return None
    was = job.status
    job.status, job.finished_at, job.cancelled_by = JobStatus.CANCELLED.value, utcnow(), by
    session.flush()
    return was
