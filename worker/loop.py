"""The worker loop: claim the job, then each unit of work in turn: read it, score it batch by batch, write each batch.

Every job takes this one path. A job stored in one part (a single case, a few JSON cases, a whole file) is one unit,
held by the attempt that claims the job; a job stored in several parts is one unit per part, which every worker
that hears of the job claims from the part ledger until none is left (the worker that claims the job puts its id on
the queue again for the others). Between batches the attempt stops if a newer one took the job, and hands the job
back if the worker is stopping. Everything that writes is in `shared.jobs`.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from itertools import repeat
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import psycopg
from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from shared import jobs
from shared.explain import over_the_limit
from shared.intake import Batch, FileRejected, Limits, read_batches
from shared.intake.review import Tally
from shared.intake.source import Content
from shared.modelstore import LoadedModel, feature_ranges
from shared.settings import ROOT
from worker import shutdown
from worker.heartbeat import Heartbeat
from worker.resources import Resources

T = TypeVar("T")
log = logging.getLogger(__name__)
# A dropped or refused connection (a database restart), or a session PostgreSQL ended for lying idle in a transaction
# past the heartbeat staleness (a paused process; its error is of class 25): the unit of work is retried whole. The
# raw COPY raises psycopg's own error, which SQLAlchemy never sees to wrap.
TRANSIENT = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    psycopg.OperationalError,
    psycopg.errors.IdleInTransactionSessionTimeout,
)


def transient(exc: BaseException) -> bool:
    """Whether `exc` says the connection was refused or lost (SQLAlchemy wraps a session ended by the server as
    the class of its error, with the connection marked invalid)."""
    return isinstance(exc, TRANSIENT) or (isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated)


HANDED_BACK = "handed back"
RECEIVING_POLL = 0.05  # seconds between looks for the next part of an upload the web is still storing


class HandBack(Exception):
    """The worker is stopping: give the job back to the queue between batches."""


def run(res: Resources, app: Celery, job_id: uuid.UUID) -> str:
    """Claim the job (or join its running attempt) and work on it; return what became of the attempt."""
    settings = res.settings
    claim = in_transaction(
        res, job_id, lambda s, _: jobs.claim_job(s, job_id, max_attempts=settings.max_attempts,
                                                 stale_after=settings.heartbeat_stale_after),
    )  # fmt: skip
    if claim is not None:
        log.info("job %s: attempt %d started", job_id, claim.number)
        if claim.parts > 1 or claim.receiving:
            parts = None if claim.receiving else claim.parts
            jobs.invite_helpers(app, job_id, parts, settings.worker_fan_out)
        attempt = claim
    else:
        joined = in_transaction(res, job_id, lambda s, _: jobs.join_attempt(s, job_id))
        if joined is None:
            return _not_claimed(res, job_id)
        log.info("job %s: joining attempt %d", job_id, joined.number)
        attempt = joined
    return _guarded(res, attempt, lambda: _work(res, attempt))


def _work(res: Resources, attempt: jobs.Attempt) -> str:
    model = _job_model(res, attempt)
    finished = False
    with shutdown.running_job(), Heartbeat(res, attempt) as beat:
        for unit in _units(res, attempt, beat):
            finished = _score_unit(res, unit, model, beat) or finished
    return "succeeded" if finished else "helped"


def _units(res: Resources, attempt: jobs.Attempt, beat: Heartbeat) -> Iterator[jobs.Unit]:
    """The job's only part, or each part of many that this worker claims from the ledger until none is left (and,
    while the web still stores the parts of a large upload, none is on its way)."""
    if attempt.parts == 1 and not attempt.receiving:
        yield jobs.only_part(attempt)
        return
    worker = f"{socket.gethostname()}:{os.getpid()}"  # the pool process, not the main process it forked from

    def next_part(session: Session, _first_try: bool) -> tuple[bool | None, jobs.Unit | None]:
        # Asked before the claim: once no more parts are on their way, the claim's snapshot holds every part.
        receiving = jobs.still_receiving(session, attempt.job_id)
        return receiving, jobs.claim_part(session, attempt, worker=worker,
                                          stale_after=res.settings.heartbeat_stale_after)  # fmt: skip

    while True:
        _stop_if_asked(beat)
        receiving, unit = in_transaction(res, attempt.job_id, next_part)
        if unit is not None:
            yield unit
        elif receiving is None:
            raise jobs.Superseded  # the job is gone: its upload was refused after its first parts were stored
        elif receiving:
            time.sleep(RECEIVING_POLL)
        else:
            return


def _score_unit(res: Resources, unit: jobs.Unit, model: LoadedModel, beat: Heartbeat) -> bool:
    """Read, score and write one unit, batch by batch; True if its last write finished the job."""
    attempt = unit.attempt
    scored = rejected = 0
    tally = Tally()
    hashes: list[npt.NDArray[np.uint64]] = []
    with _content(res, unit) as content:
        batches = read_batches(
            content, attempt.layout, model.features, res.settings.batch_rows, feature_ranges(model.metadata),
            filename=attempt.filename, first_row=unit.first_row, header=attempt.header if unit.part else None,
            limits=_limits(res), on_count=lambda rows: _count_rows(res, attempt, rows),
        )  # fmt: skip
        for batch, last in _with_last(batches):
            rows = result_rows(attempt.job_id, model, batch, unit.part, explain=attempt.explain)
            ok = int(batch.ok.sum())
            scored, rejected, tally = scored + ok, rejected + len(rows) - ok, tally + batch.tally
            hashes.append(jobs.id_hashes(batch.case_ids))
            done_hashes = np.concatenate(hashes) if last else None
            try:
                finished = in_transaction(
                    res, attempt.job_id, lambda s, first_try: jobs.write_batch(
                        s, unit, rows, scored=scored, rejected=rejected, done=last, id_hashes=done_hashes,  # noqa: B023
                        first_try=first_try, tally=tally),  # noqa: B023
                )  # fmt: skip
            except jobs.PartTaken:
                log.info("job %s: attempt %d part %d was taken by another worker", attempt.job_id, attempt.number,
                         unit.part)  # fmt: skip
                return False
            if last:
                if unit.token is not None:
                    log.info("job %s: attempt %d part %d done (%d rows)", attempt.job_id, attempt.number, unit.part,
                             scored + rejected)  # fmt: skip
                return finished
            _stop_if_asked(beat)
    raise AssertionError(f"job {attempt.job_id}: part {unit.part} holds no rows")  # every stored part has one


def _limits(res: Resources) -> Limits:
    settings = res.settings
    return Limits(max_bytes=settings.max_upload_bytes, max_rows=settings.max_rows, max_columns=settings.max_columns)


def _count_rows(res: Resources, attempt: jobs.Attempt, rows: int) -> None:
    """A workbook's rows, counted as it is read: recorded for the progress bar, held to the explanation limit."""
    refused = over_the_limit(rows, res.settings.explain_max_rows) if attempt.explain else None
    if refused:
        raise FileRejected([refused])
    if not in_transaction(res, attempt.job_id, lambda s, _: jobs.count_rows(s, attempt, rows)):
        raise jobs.Superseded


def _stop_if_asked(beat: Heartbeat) -> None:
    if beat.lost.is_set():
        raise jobs.Superseded
    if shutdown.should_hand_back():
        raise HandBack


@contextmanager
def _content(res: Resources, unit: jobs.Unit) -> Iterator[Content]:
    """The unit's bytes: as they came with its claim, or spooled to a temporary file a block at a time."""
    if unit.content is not None:
        yield unit.content
        return
    with tempfile.TemporaryFile() as spooled:

        def spool(session: Session, _first_try: bool) -> int:
            spooled.seek(0)
            spooled.truncate()
            return jobs.spool_part(session, unit.attempt.job_id, unit.part, spooled)

        in_transaction(res, unit.attempt.job_id, spool)
        spooled.seek(0)
        yield spooled


def _with_last(items: Iterable[T]) -> Iterator[tuple[T, bool]]:
    """Each item, and whether it is the last (found by reading one ahead)."""
    iterator = iter(items)
    try:
        current = next(iterator)
    except StopIteration:
        return
    for following in iterator:
        yield current, False
        current = following
    yield current, True


def result_rows(
    job_id: uuid.UUID, model: LoadedModel, batch: Batch, part: int, *, explain: bool = False
) -> list[tuple[Any, ...]]:
    """Score a batch: one result tuple per row (`shared.jobs.results.COLUMNS` order), read from the input's stored
    `part`; rejected rows carry their reasons and no answer; with `explain`, each scored row its contributions (as
    JSON text); a scored row with a supplied diagnosis, whether it was a training row."""
    n = len(batch.rows)
    labels = np.full(n, None, dtype=object)
    probs = np.full(n, None, dtype=object)
    explanations = np.full(n, None, dtype=object)
    trained = np.full(n, None, dtype=object)
    if batch.ok.any():
        # Only the validation view asks, and only of rows with a supplied diagnosis: other files skip the hashing.
        checked = batch.ok & np.array([d is not None for d in batch.supplied_diagnosis], dtype=bool)
        if checked.any():
            trained[checked] = model.trained_on(batch.X[checked]).tolist()
        diag, prob = model.diagnose(batch.X[batch.ok])
        labels[batch.ok] = diag.astype(str)
        probs[batch.ok] = prob.tolist()  # Python floats, exactly as scored
        explained = model.explain(batch.X[batch.ok]) if explain else None
        if explained is not None:
            explanations[batch.ok] = [json.dumps(e.as_json()) for e in explained]
    return list(
        zip(
            repeat(job_id, n),
            batch.rows.tolist(),
            batch.case_ids,
            labels.tolist(),
            probs.tolist(),
            repeat(model.version, n),
            batch.supplied_diagnosis,
            batch.out_of_range,
            batch.warnings,
            batch.errors,
            repeat(part, n),
            explanations.tolist(),
            trained.tolist(),
            strict=True,
        )
    )


def _job_model(res: Resources, attempt: jobs.Attempt) -> LoadedModel:
    """The model the job was created with; FileRejected (the job fails, saying why) if it has changed since."""
    model = res.model(attempt.model_name)
    if model.sha256 != attempt.model_sha256:
        since = f"sha256 {attempt.model_sha256[:12]}…"
        raise FileRejected([f"model {model.name} changed since the job was created ({since})"])
    return model


def _guarded(res: Resources, attempt: jobs.Attempt, work: Callable[[], str]) -> str:
    """Run the attempt; a newer attempt, a stopping worker, a refused file, the time limit or a defect ends it."""
    job_id, number = attempt.job_id, attempt.number
    try:
        outcome = work()
    except jobs.Superseded:
        log.info("job %s: attempt %d superseded: a newer attempt took the job, or it was cancelled", job_id, number)
        return "superseded"
    except HandBack:
        reason = f"attempt {number} handed back: its worker was stopping"
        handed = in_transaction(res, job_id, lambda s, _: jobs.hand_back(s, attempt, reason=reason))
        log.info("job %s: attempt %d %s", job_id, number, HANDED_BACK if handed else "superseded at hand-back")
        return HANDED_BACK if handed else "superseded"
    except FileRejected as exc:
        return _fail(res, attempt, "; ".join(exc.problems))
    except SoftTimeLimitExceeded:
        return _fail(res, attempt, f"took longer than the limit of {res.settings.task_soft_time_limit} s")
    except Exception as exc:
        if transient(exc):
            raise  # the database stayed away past db_retry_for: the reconciler requeues the job once it is back
        return _internal_error(res, attempt, exc)
    log.info("job %s: attempt %d %s", job_id, number, outcome)
    return outcome


def _fail(res: Resources, attempt: jobs.Attempt, error: str) -> str:
    log.warning("job %s: attempt %d failed", attempt.job_id, attempt.number)
    failed = in_transaction(res, attempt.job_id, lambda s, _: jobs.fail(s, attempt, error))
    return "failed" if failed else "superseded"


def _not_claimed(res: Resources, job_id: uuid.UUID) -> str:
    """A duplicate delivery of a live or finished job is a no-op; an exhausted one is closed with its reason."""
    limit = res.settings.max_attempts
    found = in_transaction(res, job_id, lambda s, _: jobs.close_if_exhausted(s, job_id, limit))
    if found is None:
        log.warning("job %s: no such job", job_id)
        return "missing"
    status, closed = found
    if closed:
        log.info("job %s: no attempt left; failed", job_id)
        return "failed"
    log.info("job %s: duplicate delivery ignored (status %s)", job_id, status)
    return "duplicate"


def in_transaction(res: Resources, job_id: uuid.UUID, work: Callable[[Session, bool], T]) -> T:
    """Run one unit of work in a transaction, retrying it whole while the database is unreachable (up to
    db_retry_for). `work` is told whether this is its first try: a later one may find its own writes committed."""
    deadline = time.monotonic() + res.settings.db_retry_for
    pause, first_try = 0.2, True
    while True:
        try:
            with res.sessions.begin() as session:
                return work(session, first_try)
        except Exception as exc:
            if not transient(exc) or time.monotonic() + pause > deadline:
                raise
            log.warning("job %s: database unreachable (%s); retrying in %.1f s", job_id, type(exc).__name__, pause)
            time.sleep(pause)
            pause, first_try = min(pause * 2, 5.0), False


def _internal_error(res: Resources, attempt: jobs.Attempt, exc: Exception) -> str:
    """An attempt stopped by an exception nobody expected (a defect, not the input): say so on the job.

    The attempt goes back on the queue, or, if it was the last one allowed, the job fails naming the exception.
    The log gets the exception's type and where it was raised, never its message, which may quote a measurement.
    """
    stack = traceback.extract_tb(exc.__traceback__)
    frames = [f"{_source(frame.filename)}:{frame.lineno} in {frame.name}" for frame in stack]
    ours = [text for frame, text in zip(stack, frames, strict=True) if _is_ours(frame.filename)]
    where = " at ".join([type(exc).__name__, *(ours or frames)[-1:]])  # the innermost place in our own code
    log.error("job %s: attempt %d stopped on an internal error, %s; traceback: %s", attempt.job_id, attempt.number,
              where, " <- ".join(reversed(frames)))  # fmt: skip
    if attempt.number >= res.settings.max_attempts:
        return _fail(res, attempt, f"{jobs.GAVE_UP} {attempt.number} attempts: the last stopped on an internal error "
                                   f"({where})")  # fmt: skip
    reason = f"attempt {attempt.number} stopped on an internal error ({where}); queued again"
    handed = in_transaction(res, attempt.job_id, lambda s, _: jobs.hand_back(s, attempt, reason=reason))
    return HANDED_BACK if handed else "superseded"


def _is_ours(filename: str) -> bool:
    path = Path(filename)
    return path.is_relative_to(ROOT) and ".venv" not in path.parts


def _source(filename: str) -> str:
    """A source path relative to the project, or just the file's name for a library's."""
    return str(Path(filename).relative_to(ROOT)) if _is_ours(filename) else Path(filename).name
