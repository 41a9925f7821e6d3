"""Prometheus metrics, read from PostgreSQL at scrape time so every web and worker process agrees.

Only counts and durations: nothing about a patient, no case ids.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from celery import Celery
from flask import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from shared.schema import Job, JobStatus

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
RECENT = 10_000  # durations come from the latest finished jobs


def _histogram(name: str, doc: str, seconds: Sequence[float]) -> HistogramMetricFamily:
    counts = [sum(1 for s in seconds if s <= bound) for bound in BUCKETS]
    buckets = [(str(b), c) for b, c in zip(BUCKETS, counts, strict=True)] + [("+Inf", len(seconds))]
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=sum(seconds))


class JobsCollector(Collector):
    def __init__(self, engine: Engine, celery: Celery, queue: str) -> None:
        self.engine, self.celery, self.queue = engine, celery, queue

    def collect(self) -> Iterator[Metric]:
        with Session(self.engine) as session:
            by_status = {
                status: n for status, n in session.execute(select(Job.status, func.count()).group_by(Job.status))
            }
            scored, rejected = session.execute(
                select(func.coalesce(func.sum(Job.rows_scored), 0), func.coalesce(func.sum(Job.rows_rejected), 0))
            ).one()
            recent: list[tuple[datetime, datetime | None, datetime]] = [
                (created, started, done)
                for created, started, done in session.execute(
                    select(Job.created_at, Job.started_at, Job.finished_at)
                    .where(Job.status == JobStatus.SUCCEEDED.value, Job.finished_at.is_not(None))
                    .order_by(Job.finished_at.desc())
                    .limit(RECENT)
                )
                if done is not None
            ]
        jobs = GaugeMetricFamily("cytoscore_jobs", "Jobs by status", labels=["status"])
        for status in JobStatus:
            jobs.add_metric([status.value], by_status.get(status.value, 0))
        yield jobs
        yield CounterMetricFamily("cytoscore_rows_scored", "Rows scored, all jobs", value=scored)
        yield CounterMetricFamily("cytoscore_rows_rejected", "Rows rejected, all jobs", value=rejected)
        yield _histogram(
            "cytoscore_scoring_seconds",
            f"Start to finish of the latest {RECENT} succeeded jobs",
            [(f - s).total_seconds() for _, s, f in recent if s is not None],
        )
        yield _histogram(
            "cytoscore_time_to_result_seconds",
            f"Submission to result of the latest {RECENT} succeeded jobs",
            [(f - c).total_seconds() for c, _, f in recent],
        )
        depth = GaugeMetricFamily("cytoscore_queue_depth", "Messages waiting on the broker queue")
        depth.add_metric([], self._queue_depth())
        yield depth

    def _queue_depth(self) -> float:
        try:
            with self.celery.connection_for_read() as conn:
                conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
                # Declaring is idempotent (the worker declares the same queue) and answers with the depth.
                return float(conn.default_channel.queue_declare(self.queue).message_count)
        except Exception:
            return float("nan")  # the broker did not answer; /readyz says so too


def render(engine: Engine, celery: Celery, queue: str) -> Response:
    registry = CollectorRegistry()
    registry.register(JobsCollector(engine, celery, queue))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
