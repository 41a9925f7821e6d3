"""Putting job ids on the queue, after the job's row is committed, without ever hanging a request."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from celery import Celery
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from shared.queue import SCORE_TASK
from shared.schema import Job, utcnow
from shared.settings import Settings

log = logging.getLogger(__name__)


#: A job of at most this many rows goes on the queue of single cases, which every worker keeps a process for.
SMALL_JOB_ROWS = 100


def queue_for(settings: Settings, rows: int) -> str:
    """The queue a job of `rows` rows goes on (a workbook's rows are counted only in the worker: not small)."""
    return settings.cases_queue if 0 < rows <= SMALL_JOB_ROWS else settings.queue


def publish(app: Celery, job_id: uuid.UUID, queue: str | None = None) -> bool:
    """Put a job id on `queue` (the files' queue if None); on a broker failure log it and return False (the
    reconciler resends).

    One try, no retry of our own: redis-py already reconnects a stale pooled connection once, so a restarted
    broker costs nothing, while a dead one fails in well under a second and a hung one within about
    broker_timeout (each kombu retry on a hung broker would add two more socket timeouts).
    Named as `queue=`, Celery sends on the default exchange (named "") with the queue's name as the routing key:
    the id goes straight onto the queue's list, so a broker that lost its binding tables (FLUSHALL, restart without
    persistence) still delivers it. (A `routing_key=` of our own is overwritten by the default queue's name.)
    """
    try:
        app.send_task(SCORE_TASK, args=[str(job_id)], queue=queue or app.conf.task_default_queue,
                      retry=True, retry_policy={"max_retries": 0})  # fmt: skip
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


def send(sessions: sessionmaker[Session], app: Celery, settings: Settings, job_id: uuid.UUID) -> bool:
    """Publish a job id on its queue and note when; on a broker failure the reconciler sends it later."""
    with sessions.begin() as session:
        rows = session.scalar(select(Job.rows_total).where(Job.id == job_id)) or 0
    if not publish(app, job_id, queue_for(settings, rows)):
        return False
    with sessions.begin() as session:
        mark_enqueued(session, [job_id], utcnow())
    return True


def invite_helpers(app: Celery, job_id: uuid.UUID, parts: int | None, fan_out: int) -> None:
    """Put a job's id on the queue again, once for each other worker that could take one of its parts (`fan_out`
    times for a job whose parts are still being received: `parts` None)."""
    for _ in range(fan_out if parts is None else min(parts - 1, fan_out)):
        publish(app, job_id)
