"""Removing a finished job's input and results, with any diagnosis confirmed for its rows: old jobs' by the
retention purge, or one job's at a person's request (a file uploaded by mistake). The job rows stay, saying when
and by whom, and the audit trail records it."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from shared.schema import ConfirmedDiagnosis, Job, JobInput, JobStatus, PartClaim, Result, utcnow

_AT_ONCE = 500
FINISHED = tuple(status.value for status in JobStatus if status.terminal)


def purge(session: Session, older_than: timedelta) -> list[uuid.UUID]:
    """Remove the inputs and results of finished jobs created before the cutoff; return the jobs' ids."""
    cutoff = utcnow() - older_than
    query = select(Job.id).where(Job.created_at < cutoff, Job.purged_at.is_(None), Job.status.in_(FINISHED))
    ids = list(session.scalars(query))
    for start in range(0, len(ids), _AT_ONCE):
        some = ids[start : start + _AT_ONCE]
        _remove(session, some)
        session.execute(update(Job).where(Job.id.in_(some)).values(purged_at=utcnow()))
    return ids


def remove(session: Session, job_id: uuid.UUID, *, by: str) -> bool:
    """Remove one finished job's input and results, naming who did; False if it has not finished (a running job is
    cancelled first) or was removed already. The job, as loaded in `session`, then says so."""
    job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
    if job is None or job.status not in FINISHED or job.purged_at is not None:
        return False
    _remove(session, [job_id])
    job.purged_at, job.purged_by = utcnow(), by
    session.flush()
    return True


def _remove(session: Session, ids: list[uuid.UUID]) -> None:
    session.execute(delete(Result).where(Result.job_id.in_(ids)))
    session.execute(delete(ConfirmedDiagnosis).where(ConfirmedDiagnosis.job_id.in_(ids)))
    session.execute(delete(JobInput).where(JobInput.job_id.in_(ids)))  # its parts go with it
    session.execute(delete(PartClaim).where(PartClaim.job_id.in_(ids)))  # case-id hashes of unfinished parts
