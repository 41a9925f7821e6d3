"""Bring the queue back in line with the database: the job rows are the truth, the broker only a hint."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from celery import Celery
from sqlalchemy import ColumnElement, and_, or_, select, text
from sqlalchemy.orm import Session, sessionmaker

from shared.db import WORKER_SESSIONS
from shared.jobs.claims import GAVE_UP, close_exhausted
from shared.jobs.send import mark_enqueued, publish, queue_for
from shared.schema import Job, JobStatus, utcnow
from shared.settings import Settings

log = logging.getLogger(__name__)

_LOCK_KEY = 0x6379_5C0E  # any constant; one advisory lock for the whole cluster
_PUBLISH_GRACE = timedelta(seconds=5)  # the web request publishes right after its commit
# A worker paused while it sends a batch (COPY … FROM STDIN) holds its locks in a session that is neither idle nor
# running: the server waits for its client, and no timeout of its own ends that. Past the staleness, it is ended.
_END_STALLED = text("""
SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND application_name = :name AND state = 'active' AND wait_event = 'ClientRead'
  AND query_start < now() - make_interval(secs => :stale)
""")
# A large upload's job is committed while the web still stores its parts, each of which bumps `receiving_at`; one
# not bumped for the heartbeat staleness lost its web process (the client saw an error, or nothing), and goes whole.
_ABANDONED = text("DELETE FROM jobs WHERE receiving_at < now() - make_interval(secs => :stale) RETURNING id")


@dataclass
class Report:
    requeued: list[uuid.UUID] = field(default_factory=list)
    gave_up: list[uuid.UUID] = field(default_factory=list)
    resent: list[uuid.UUID] = field(default_factory=list)
    abandoned: list[uuid.UUID] = field(default_factory=list)  # uploads whose web process stopped storing them
    ended: int = 0  # worker sessions ended, paused in the middle of sending a batch
    locked_out: bool = False


@dataclass
class Stuck:
    """A job the reconciler is acting on, and why."""

    job: Job
    reason: str


def _take_lock(session: Session) -> bool:
    return bool(session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _LOCK_KEY}).scalar())


def _stale_running(settings: Settings, now: datetime) -> ColumnElement[bool]:
    cutoff = now - timedelta(seconds=settings.heartbeat_stale_after)
    return and_(Job.status == JobStatus.RUNNING.value, or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < cutoff))


def _unsent_queued(settings: Settings, now: datetime) -> ColumnElement[bool]:
    return and_(
        Job.status == JobStatus.QUEUED.value,
        or_(
            and_(Job.enqueued_at.is_(None), Job.created_at < now - _PUBLISH_GRACE),
            Job.enqueued_at < now - timedelta(seconds=settings.queued_resend_after),
        ),
    )


def _gave_up(job: Job, now: datetime) -> None:
    job.status, job.finished_at = JobStatus.FAILED.value, now
    job.error = (
        f"{GAVE_UP} {job.attempts} attempts: the worker stopped responding each time "
        "(killed, out of memory, or the input crashes it)"
    )


def _settle(session: Session, settings: Settings, now: datetime, report: Report) -> list[tuple[uuid.UUID, str]]:
    """End paused workers' sessions, delete abandoned uploads, requeue or give up stale running jobs, close
    exhausted queued ones; claim the resends. Under the lock."""
    report.ended += session.scalar(_END_STALLED, {"name": WORKER_SESSIONS, "stale": settings.heartbeat_stale_after})
    report.abandoned += session.scalars(_ABANDONED, {"stale": settings.heartbeat_stale_after})
    stale = select(Job).where(_stale_running(settings, now)).with_for_update(skip_locked=True)
    for job in session.scalars(stale):
        if job.attempts >= settings.max_attempts:
            _gave_up(job, now)
            report.gave_up.append(job.id)
        else:
            job.status, job.enqueued_at = JobStatus.QUEUED.value, None
            job.error = f"attempt {job.attempts} stopped responding; queued again"
            report.requeued.append(job.id)
    exhausted = select(Job).where(Job.status == JobStatus.QUEUED.value, Job.attempts >= settings.max_attempts)
    for job in session.scalars(exhausted.with_for_update(skip_locked=True)):
        close_exhausted(job, now)
        report.gave_up.append(job.id)
    session.flush()
    unsent = select(Job.id, Job.rows_total).where(_unsent_queued(settings, now)).order_by(Job.created_at)
    to_send = [(job_id, queue_for(settings, rows)) for job_id, rows in session.execute(unsent)]
    if to_send:  # stamped now, inside the lock, so a second reconciler's round does not send them again
        mark_enqueued(session, [job_id for job_id, _ in to_send], now)
    return to_send


def reconcile(sessions: sessionmaker[Session], celery_app: Celery, settings: Settings) -> Report:
    """Requeue jobs whose worker stopped heartbeating (ending its session if it is paused mid-COPY), give up after
    the attempt limit, resend lost messages, delete uploads whose web process stopped storing them."""
    report = Report()
    with sessions.begin() as session:
        if not _take_lock(session):
            report.locked_out = True
            return report
        to_send = _settle(session, settings, utcnow(), report)
    for i, (job_id, queue) in enumerate(to_send):
        if not publish(celery_app, job_id, queue):  # the broker is down: unmark the rest, so the next round tries again
            with sessions.begin() as session:
                mark_enqueued(session, [later for later, _ in to_send[i:]], None)
            break
        report.resent.append(job_id)
    if report.requeued or report.gave_up or report.resent or report.abandoned or report.ended:
        log.info(
            "reconciled: requeued=%s gave_up=%s resent=%s abandoned=%s stalled_sessions_ended=%d",
            [str(j) for j in report.requeued],
            [str(j) for j in report.gave_up],
            [str(j) for j in report.resent],
            [str(j) for j in report.abandoned],
            report.ended,
        )
    return report


def stuck_jobs(session: Session, settings: Settings, *, failed_within: timedelta = timedelta(hours=24)) -> list[Stuck]:
    """Jobs queued too long, running with a stale heartbeat, out of attempts, or recently given up on."""
    now = utcnow()
    gave_up = and_(
        Job.status == JobStatus.FAILED.value, Job.error.startswith(GAVE_UP), Job.finished_at > now - failed_within
    )
    exhausted = and_(Job.status == JobStatus.QUEUED.value, Job.attempts >= settings.max_attempts)
    query = select(Job).where(or_(_stale_running(settings, now), _unsent_queued(settings, now), exhausted, gave_up))
    return [Stuck(job, _reason(job, settings, now)) for job in session.scalars(query.order_by(Job.created_at))]


def _reason(job: Job, settings: Settings, now: datetime) -> str:
    if job.status == JobStatus.FAILED.value:
        return f"dead: {job.error}"
    if job.attempts >= settings.max_attempts:
        return f"exhausted: {job.attempts} of {settings.max_attempts} attempts used; will be failed"
    if job.status == JobStatus.RUNNING.value:
        return f"attempt {job.attempts} stopped heartbeating; will be queued again"
    if job.enqueued_at is None:
        return "never reached the broker; will be sent"
    return f"queued with no worker taking it for over {settings.queued_resend_after:g} s; will be sent again"
