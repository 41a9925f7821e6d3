"""A job held for review: every row was read, but the input looked misread (`shared.intake.review`).

Its results stay held back until a lab user confirms them; the job then reads `succeeded`, keeping why it was held
and who confirmed it. The caller records the confirmation in the audit trail in the same transaction.
"""

from __future__ import annotations

import uuid

from sqlalchemy import update
from sqlalchemy.orm import Session

from shared.schema import Job, JobStatus, utcnow


def confirm(session: Session, job_id: uuid.UUID, *, by: str) -> bool:
    """Release a held job's results, naming who confirmed them; False if the job is not held for review."""
    found = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.NEEDS_REVIEW.value)
        .values(status=JobStatus.SUCCEEDED.value, reviewed_at=utcnow(), reviewed_by=by)
        .returning(Job.id)
    ).one_or_none()
    return found is not None
