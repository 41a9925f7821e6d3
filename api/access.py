"""Which jobs a person may see: their own; an admin sees all."""

from __future__ import annotations

from flask import request
from flask_login import current_user

from api.database import db
from api.job_search import Viewer
from shared import accounts
from shared.schema import Job


def may_see(job: Job) -> bool:
    return bool(current_user.is_admin or job.owner_id == current_user.user_id)


def viewer() -> Viewer:
    """The signed-in person, as the jobs list sees them (api.job_search keeps the same rule as may_see)."""
    return Viewer(current_user.user_id, bool(current_user.is_admin))


def record(action: str, job: Job | None = None, detail: str | None = None) -> None:
    """Add an audit event for the signed-in person to the request's session (the caller commits)."""
    accounts.audit(
        db(),
        action,
        actor=current_user.email,
        address=request.remote_addr,
        job_id=job.id if job is not None else None,
        detail=detail,
    )
