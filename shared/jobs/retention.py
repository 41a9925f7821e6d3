"""Retention: the inputs and results of old finished jobs are removed; the job rows stay, saying when."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from shared.schema import Job, JobInput, JobStatus, PartClaim, Result, utcnow

_AT_ONCE = 500


def purge(session: Session, older_than: timedelta) -> list[uuid.UUID]:
    """Remove the inputs and results of finished jobs created before the cutoff; return the jobs' ids."""
    cutoff = utcnow() - older_than
    finished = [status.value for status in JobStatus if status.terminal]
    query = select(Job.id).where(Job.created_at < cutoff, Job.purged_at.is_(None), Job.status.in_(finished))
    ids = list(session.scalars(query))
    for start in range(0, len(ids), _AT_ONCE):
        some = ids[start : start + _AT_ONCE]
        session.execute(delete(Result).where(Result.job_id.in_(some)))
        session.execute(delete(JobInput).where(JobInput.job_id.in_(some)))  # its parts go with it
        session.execute(delete(PartClaim).where(PartClaim.job_id.in_(some)))  # case-id hashes of unfinished parts
        session.execute(update(Job).where(Job.id.in_(some)).values(purged_at=utcnow()))
    return ids
