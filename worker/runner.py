"""Run one job: claim it, score its rows chunk by chunk, write results idempotently, finish it."""

from __future__ import annotations

import json
import logging
import tempfile
import uuid
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.orm import Session

from shared import jobs
from shared.inputs import spool_input
from shared.intake import Batch, FileRejected, iter_batches, validate_cases
from shared.modelstore import LoadedModel, feature_ranges
from shared.reconcile import close_exhausted
from shared.results_store import write_results
from shared.schema import JobStatus
from worker import parts, shutdown
from worker.heartbeat import Heartbeat
from worker.resources import Resources
from worker.scoring import (
    HANDED_BACK,
    TRANSIENT,
    HandBack,
    Superseded,
    in_transaction,
    internal_error,
    job_model,
    result_rows,
)

log = logging.getLogger(__name__)


def run_job(res: Resources, job_id: uuid.UUID) -> str:
    settings = res.settings
    claimed = in_transaction(res, job_id, lambda session: _claim(res, session, job_id))
    if claimed is None:
        attempt = parts.joinable(res, job_id)
        if attempt is None:
            return _not_claimed(res, job_id)
        log.info("job %s: joining attempt %d", job_id, attempt)
        return _guarded(res, job_id, attempt, lambda: _by_parts(res, job_id, attempt))
    attempt, model_name, model_sha, filename, fmt, stored_parts = claimed
    log.info("job %s: attempt %d started", job_id, attempt)
    if stored_parts > 1:
        parts.invite_helpers(job_id, stored_parts, settings.worker_fan_out)
        return _guarded(res, job_id, attempt, lambda: _by_parts(res, job_id, attempt))

    def whole() -> str:
        with shutdown.running_job(), Heartbeat(res, job_id, attempt) as beat, tempfile.TemporaryFile() as content:
            model = job_model(res, model_name, model_sha)
            in_transaction(res, job_id, lambda session: _spool(session, job_id, content))
            batches = _batches(model, content, filename, fmt, settings.chunk_rows)
            _score_all(res, job_id, attempt, model, batches, beat)
        return "succeeded"

    return _guarded(res, job_id, attempt, whole)


def _by_parts(res: Resources, job_id: uuid.UUID, attempt: int) -> str:
    return "succeeded" if parts.score_parts(res, job_id, attempt) else "helped"


def _guarded(res: Resources, job_id: uuid.UUID, attempt: int, work: Callable[[], str]) -> str:
    """Run the attempt; a newer attempt, a stopping worker, a refused file, the time limit or a defect ends it."""
    try:
        outcome = work()
    except Superseded:
        log.info("job %s: attempt %d superseded by a newer attempt", job_id, attempt)
        return "superseded"
    except HandBack:
        reason = f"attempt {attempt} handed back: its worker was stopping"
        handed = in_transaction(res, job_id, lambda s: jobs.hand_back(s, job_id, attempt, reason=reason))
        log.info("job %s: attempt %d %s", job_id, attempt, HANDED_BACK if handed else "superseded at hand-back")
        return HANDED_BACK if handed else "superseded"
    except FileRejected as exc:
        _fail(res, job_id, attempt, "; ".join(exc.problems))
        return "failed"
    except SoftTimeLimitExceeded:
        _fail(res, job_id, attempt, f"took longer than the limit of {res.settings.task_soft_time_limit} s")
        return "failed"
    except TRANSIENT:
        raise  # the database stayed away past db_retry_for: the reconciler requeues the job once it is back
    except Exception as exc:
        return internal_error(res, job_id, attempt, exc)
    log.info("job %s: attempt %d %s", job_id, attempt, outcome)
    return outcome


def _claim(res: Resources, session: Session, job_id: uuid.UUID) -> tuple[Any, ...] | None:
    limit, stale = res.settings.max_attempts, res.settings.heartbeat_stale_after
    attempt = jobs.claim(session, job_id, max_attempts=limit, stale_after=stale)
    if attempt is None:
        return None
    job = jobs.get_job(session, job_id)
    assert job is not None
    return (
        attempt,
        job.model_name,
        job.model_sha256,
        job.input_filename,
        job.input_format,
        parts.part_count(session, job_id),
    )


def _spool(session: Session, job_id: uuid.UUID, out: BinaryIO) -> int:
    """Copy the stored input to a temporary file a block at a time: memory stays flat whatever the file's size."""
    out.seek(0)
    out.truncate()
    return spool_input(session, job_id, out)


def _not_claimed(res: Resources, job_id: uuid.UUID) -> str:
    """A duplicate delivery of a live or finished job is a no-op; an exhausted one is closed with its reason."""
    with res.sessions.begin() as session:
        job = jobs.get_job(session, job_id)
        if job is None:
            log.warning("job %s: no such job", job_id)
            return "missing"
        if job.status == JobStatus.QUEUED.value and job.attempts >= res.settings.max_attempts:
            close_exhausted(job, jobs.utcnow())
            return "failed"
    log.info("job %s: duplicate delivery ignored (status %s)", job_id, job.status)
    return "duplicate"


def _batches(model: LoadedModel, content: BinaryIO, filename: str | None, fmt: str, chunk: int) -> Iterator[Batch]:
    ranges = feature_ranges(model.metadata)
    if fmt == "json":
        content.seek(0)
        yield validate_cases(json.load(content)["cases"], model.features, ranges)
    else:
        yield from iter_batches(content, filename, model.features, chunk, ranges)


def _score_all(
    res: Resources, job_id: uuid.UUID, attempt: int, model: LoadedModel, batches: Iterator[Batch], beat: Heartbeat
) -> None:
    """Write each chunk with its progress; the last chunk and the succeeded status commit together.

    Between chunks, stop early if a newer attempt took the job, or hand it back if the worker is stopping.
    """
    scored = rejected = 0
    pending: list[tuple[Any, ...]] | None = None
    for batch in batches:
        if pending is not None:
            _write(res, job_id, attempt, pending, scored, rejected, last=False)
            if beat.lost.is_set():
                raise Superseded
            if shutdown.should_hand_back():
                raise HandBack
        pending = result_rows(job_id, model, batch, part=0)  # a job stored in one part
        ok = int(batch.ok.sum())
        scored, rejected = scored + ok, rejected + len(batch.rows) - ok
    _write(res, job_id, attempt, pending or [], scored, rejected, last=True)


def _write(
    res: Resources,
    job_id: uuid.UUID,
    attempt: int,
    rows: list[tuple[Any, ...]],
    scored: int,
    rejected: int,
    *,
    last: bool,
) -> None:
    def chunk(session: Session) -> None:
        if not jobs.record_progress(session, job_id, attempt, scored=scored, rejected=rejected):
            if last and jobs.succeeded_by(session, job_id, attempt):
                return  # a retry after our own commit whose answer was lost with the connection
            raise Superseded
        write_results(session, rows)
        if last:
            jobs.finish(session, job_id, attempt, status=JobStatus.SUCCEEDED)

    in_transaction(res, job_id, chunk)


def _fail(res: Resources, job_id: uuid.UUID, attempt: int, error: str) -> None:
    log.warning("job %s: attempt %d failed", job_id, attempt)
    in_transaction(res, job_id, lambda s: jobs.finish(s, job_id, attempt, status=JobStatus.FAILED, error=error))
