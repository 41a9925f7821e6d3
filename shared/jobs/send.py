"""Putting job ids on the queue, after the job's row is committed, without ever hanging a request."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from celery import Celery
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from shared.queue import SCORE_TASK
from shared.schema import Job, utcnow

log = logging.getLogger(__name__)


def publish(app: Celery, job_id: uuid.UUID) -> bool:
    """Put a job id on the queue; on a broker failure log it and return False (the reconciler resends).

    One try, no retry of our own: redis-py already reconnects a stale pooled connection once, so a restarted
    broker costs nothing, while a dead one fails in well under a second and a hung one within about
    broker_timeout (each kombu retry on a hung broker would add two more socket timeouts).
    Direct exchange + no routing key = the anonymous exchange: the id goes straight onto the queue's list,
    so a broker that lost its binding tables (FLUSHALL, restart without persistence) still delivers it.
    """
    try:
        app.send_task(SCORE_TASK, args=[str(job_id)], retry=True, retry_policy={"max_retries": 0})
    except Exception as exc:  # a broker outage must never fail the request; the job row is the truth
        log.warning("could not publish job %s: %s", job_id, type(exc).__name__)
        return False
    return True


def mark_enqueued(session: Session, job_ids: list[uuid.UUID], when: datetime | None = None) -> None:
    """Note when the ids were put on the queue (None: not sent, so the reconciler sends them first)."""
    session.execute(update(Job).where(Job.id.in_(job_ids)).values(enqueued_at=when))


def mark_unsent(session: Session, job_id: uuid.UUID) -> None:
    """The broker did not take the job id: the reconciler sends queued jobs without `enqueued_at` first."""
    mark_enqueued(session, [job_id], None)


def send(sessions: sessionmaker[Session], app: Celery, job_id: uuid.UUID) -> bool:
    """Publish a job id and note when; on a broker failure the reconciler sends it later."""
    if not publish(app, job_id):
        return False
    with sessions.begin() as session:
        mark_enqueued(session, [job_id], utcnow())
    return True


def invite_helpers(app: Celery, job_id: uuid.UUID, parts: int, fan_out: int) -> None:
    """Put a job's id on the queue again, once for each other worker that could take one of its parts."""
    for _ in range(min(parts - 1, fan_out)):
        publish(app, job_id)
