"""What every way of running a job shares: result tuples for a scored batch, and the ways a run stops early."""

from __future__ import annotations

import logging
import time
import traceback
import uuid
from collections.abc import Callable
from itertools import repeat
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import psycopg
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from shared import jobs
from shared.intake import Batch, FileRejected
from shared.modelstore import LoadedModel
from shared.reconcile import GAVE_UP
from shared.schema import JobStatus
from shared.settings import ROOT
from worker.resources import Resources

T = TypeVar("T")
log = logging.getLogger(__name__)
# A dropped or refused connection (a database restart): the unit of work is retried whole. The raw COPY
# raises psycopg's own error, which SQLAlchemy never sees to wrap.
TRANSIENT = (sa_exc.OperationalError, sa_exc.InterfaceError, psycopg.OperationalError)
HANDED_BACK = "handed back"


class Superseded(Exception):
    """A newer attempt owns the job (or it was handed back): this one stops without writing."""


class HandBack(Exception):
    """The worker is stopping: give the job back to the queue between chunks."""


def job_model(res: Resources, name: str, sha256: str) -> LoadedModel:
    """The model the job was created with; FileRejected (the job fails, saying why) if it has changed since."""
    model = res.model(name)
    if model.sha256 != sha256:
        raise FileRejected([f"model {name} changed since the job was created (sha256 {sha256[:12]}…)"])
    return model


def result_rows(job_id: uuid.UUID | str, model: LoadedModel, batch: Batch, part: int) -> list[tuple[Any, ...]]:
    """One result tuple per row of the batch (results_store.COLUMNS order), from the input's stored `part`;
    rejected rows carry no answer.

    For COPY on PostgreSQL the job id may come as text, which psycopg dumps without a Python call per row.
    """
    n = len(batch.rows)
    labels = np.full(n, None, dtype=object)
    probs = np.full(n, None, dtype=object)
    if batch.ok.any():
        diag, prob = model.diagnose(batch.X[batch.ok])
        labels[batch.ok] = diag.astype(str)
        probs[batch.ok] = prob.tolist()  # Python floats, exactly as scored
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
            strict=True,
        )
    )


def in_transaction(res: Resources, job_id: uuid.UUID, work: Callable[[Session], T]) -> T:
    """Run one unit of work, retrying it whole while the database is unreachable (up to db_retry_for)."""
    deadline = time.monotonic() + res.settings.db_retry_for
    pause = 0.2
    while True:
        try:
            with res.sessions.begin() as session:
                return work(session)
        except TRANSIENT as exc:
            if time.monotonic() + pause > deadline:
                raise
            log.warning("job %s: database unreachable (%s); retrying in %.1f s", job_id, type(exc).__name__, pause)
            time.sleep(pause)
            pause = min(pause * 2, 5.0)


def internal_error(res: Resources, job_id: uuid.UUID, attempt: int, exc: Exception) -> str:
    """An attempt stopped by an exception nobody expected (a defect, not the input): say so on the job.

    The attempt goes back on the queue, or, if it was the last one allowed, the job fails naming the exception.
    The log gets the exception's type and where it was raised, never its message, which may quote a measurement.
    """
    stack = traceback.extract_tb(exc.__traceback__)
    frames = [f"{_source(frame.filename)}:{frame.lineno} in {frame.name}" for frame in stack]
    ours = [text for frame, text in zip(stack, frames, strict=True) if _is_ours(frame.filename)]
    where = " at ".join([type(exc).__name__, *(ours or frames)[-1:]])  # the innermost place in our own code
    log.error("job %s: attempt %d stopped on an internal error, %s; traceback: %s", job_id, attempt, where,
              " <- ".join(reversed(frames)))  # fmt: skip
    if attempt >= res.settings.max_attempts:
        error = f"{GAVE_UP} {attempt} attempts: the last stopped on an internal error ({where})"
        failed = in_transaction(
            res, job_id, lambda s: jobs.finish(s, job_id, attempt, status=JobStatus.FAILED, error=error)
        )
        return "failed" if failed else "superseded"
    reason = f"attempt {attempt} stopped on an internal error ({where}); queued again"
    handed = in_transaction(res, job_id, lambda s: jobs.hand_back(s, job_id, attempt, reason=reason))
    return HANDED_BACK if handed else "superseded"


def _is_ours(filename: str) -> bool:
    path = Path(filename)
    return path.is_relative_to(ROOT) and ".venv" not in path.parts


def _source(filename: str) -> str:
    """A source path relative to the project, or just the file's name for a library's."""
    return str(Path(filename).relative_to(ROOT)) if _is_ours(filename) else Path(filename).name
