"""Which jobs a person may see: their own; an admin sees all."""

from __future__ import annotations

from flask import request
from flask_login import current_user
from sqlalchemy import Select, select

from api.database import db
from shared import accounts
from shared.schema import Job


def may_see(job: Job) -> bool:
    return bool(current_user.is_admin or job.owner_id == current_user.user_id)


def visible_jobs(limit: int = 100) -> list[Job]:
    query: Select[Job] = select(Job).order_by(Job.created_at.desc()).limit(limit)
    if not current_user.is_admin:
        query = query.where(Job.owner_id == current_user.user_id)
    return list(db().scalars(query))


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
