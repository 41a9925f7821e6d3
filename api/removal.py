"""Removing a finished job's file and results at a person's request (a file uploaded by mistake, a patient's
data to be erased): anyone who may see the job may, audited. The job row stays, saying when and by whom."""

from __future__ import annotations

from flask import abort
from flask_login import current_user

from api.access import record
from api.database import db
from shared import jobs
from shared.schema import Job


def remove(job: Job) -> None:
    """Remove the job's stored input and results; 409 if it has not finished. Removing it again changes nothing."""
    session = db()
    if jobs.remove(session, job.id, by=current_user.email):  # `job` is the same object, refreshed under its lock
        record("job.purge", job, detail=f"file and results removed ({job.rows_total} rows)")
        session.commit()
    elif job.purged_at is None:
        abort(409, description=f"the job is {job.status}: cancel it first, then remove its file and results")
