"""Confirming a job held for review (docs/plausibility.md): a lab user or an admin releases its results, audited."""

from __future__ import annotations

from flask import abort
from flask_login import current_user

from api.access import record
from api.auth import require
from api.database import db
from shared import jobs
from shared.schema import Job, Role


def confirm(job: Job) -> None:
    """Release the held results of a job the person may see; 409 if the job is not held for review."""
    require(Role.LAB, Role.ADMIN)
    session = db()
    if not jobs.confirm(session, job.id, by=current_user.email):
        abort(409, description=f"the job is {job.status}; only a job held for review (needs_review) is confirmed")
    record("job.confirm", job, detail=f"results released after review: {job.review}")
    session.commit()
    session.refresh(job)
