"""Cancelling a job that is still queued or running: anyone who may see the job may stop it, audited."""

from __future__ import annotations

from flask_login import current_user

from api.access import record
from api.database import db
from shared import jobs
from shared.schema import Job


def cancel(job: Job) -> bool:
    """Stop the job; False if it had already finished. Its worker stops at its next write; its input stays stored."""
    session = db()
    was = jobs.cancel(session, job.id, by=current_user.email)  # `job` is the same object, refreshed under its lock
    if was is None:
        return False
    done = job.rows_scored + job.rows_rejected
    record("job.cancel", job, detail=f"cancelled while {was}, {done} of {job.rows_total} rows done")
    session.commit()
    return True


def too_late(job: Job) -> str:
    return f"the job has already finished ({job.status}): there is nothing to cancel"
