"""Bring the queue back in line with the database: the job rows are the truth, the broker only a hint."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from celery import Celery
from sqlalchemy import and_, or_, select, text
from sqlalchemy.orm import Session, sessionmaker

from shared.jobs import mark_enqueued
from shared.queue import publish
from shared.schema import Job, JobStatus, utcnow
from shared.settings import Settings

log = logging.getLogger(__name__)

_LOCK_KEY = 0x6379_5C0E  # any constant; one advisory lock for the whole cluster
_PUBLISH_GRACE = timedelta(seconds=5)  # the web request publishes right after its commit


@dataclass
class Report:
    requeued: list[uuid.UUID] = field(default_factory=list)
    gave_up: list[uuid.UUID] = field(default_factory=list)
    resent: list[uuid.UUID] = field(default_factory=list)
    locked_out: bool = False


def _take_lock(session: Session) -> bool:
    if session.get_bind().dialect.name != "postgresql":
        return True  # SQLite: the embedded mode has one worker, and writes are serialised anyway
    return bool(session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _LOCK_KEY}).scalar())


def stale_running(session: Session, settings: Settings) -> list[Job]:
    cutoff = utcnow() - timedelta(seconds=settings.heartbeat_stale_after)
    return list(
        session.scalars(
            select(Job)
            .where(Job.status == JobStatus.RUNNING.value, Job.heartbeat_at < cutoff)
            .with_for_update(skip_locked=True)
        )
    )


def unsent_queued(session: Session, settings: Settings) -> list[Job]:
    now = utcnow()
    return list(
        session.scalars(
            select(Job).where(
                Job.status == JobStatus.QUEUED.value,
                or_(
                    and_(Job.enqueued_at.is_(None), Job.created_at < now - _PUBLISH_GRACE),
                    Job.enqueued_at < now - timedelta(seconds=settings.queued_resend_after),
                ),
            )
        )
    )


def reconcile(sessions: sessionmaker[Session], celery_app: Celery, settings: Settings) -> Report:
    """Requeue jobs whose worker stopped heartbeating, give up after the attempt limit, resend lost messages."""
    report = Report()
    with sessions.begin() as session:
        if not _take_lock(session):
            report.locked_out = True
            return report
        now = utcnow()
        for job in stale_running(session, settings):
            if job.attempts >= settings.max_attempts:
                job.status, job.finished_at = JobStatus.FAILED.value, now
                job.error = (
                    f"gave up after {job.attempts} attempts: the worker stopped responding each time "
                    "(killed, out of memory, or the input crashes it)"
                )
                report.gave_up.append(job.id)
            else:
                job.status, job.enqueued_at = JobStatus.QUEUED.value, None
                job.error = f"attempt {job.attempts} stopped responding; queued again"
                report.requeued.append(job.id)
        session.flush()
        to_send = [job.id for job in unsent_queued(session, settings)]
    for job_id in to_send:
        if publish(celery_app, job_id):
            with sessions.begin() as session:
                mark_enqueued(session, job_id)
            report.resent.append(job_id)
    if report.requeued or report.gave_up or report.resent:
        log.info(
            "reconciled: requeued=%s gave_up=%s resent=%s",
            [str(j) for j in report.requeued],
            [str(j) for j in report.gave_up],
            [str(j) for j in report.resent],
        )
    return report
