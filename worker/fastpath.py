"""A few JSON cases without the chunk machinery: a claim that does not wait for the disk, then one durable commit.

Such a job scores in well under a millisecond, so what it waits for is the database: its round trips, its
durable commits (each a disk flush), and the Python time spent building statements, which here costs more than
the round trips themselves. So this path runs statements built once, on the connection rather than through the
ORM, and keeps every guarantee of the runner:

- The claim is the runner's fenced UPDATE (`jobs.CLAIM`), narrowed to small JSON jobs whose model this worker
  holds with the same hash, and it reads the input back in the same statement. It commits on its own before
  anything is scored, so an input that kills its worker still uses up an attempt and ends `failed` after
  `max_attempts`. That commit does not wait for the flush (`synchronous_commit = off`): it is visible at once,
  and reaches the disk with the next durable commit, which flushes everything committed before it. Should
  PostgreSQL itself crash first, the claim is undone and the job is `queued` again, as if its message had not
  been taken yet.
- The results, counts and `succeeded` commit in one transaction fenced by the attempt, as the runner's last
  chunk does (rows inserted with ON CONFLICT DO NOTHING). A worker killed before that commit leaves the job
  `running` with this attempt and nothing written; the reconciler brings it back once its heartbeat is stale, as
  for any job. The job is scored in milliseconds, well inside the staleness, so it needs no heartbeat thread,
  and being one chunk it is never handed back.

Anything else (an upload, more rows than the numpy engine takes, a model that changed, a job that cannot be
claimed, the embedded SQLite mode) returns None having changed nothing, and `run_job` handles it as before.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from sqlalchemy import Connection, bindparam, select, tuple_
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from shared import jobs
from shared.intake import FileRejected, validate_cases
from shared.modelstore import ENGINE_MAX_ROWS, LoadedModel, feature_ranges
from shared.results_store import COLUMNS
from shared.schema import Job, JobInputPart, JobStatus, Result
from worker.resources import Resources
from worker.scoring import TRANSIENT, in_transaction, internal_error, result_rows

log = logging.getLogger(__name__)

MAX_ROWS = ENGINE_MAX_ROWS  # the numpy engine's range


def run_fast(res: Resources, job_id: uuid.UUID) -> str | None:
    """Score a small JSON job with one durable commit; None when this path does not apply."""
    if res.engine.dialect.name != "postgresql":
        return None  # the embedded SQLite mode: the runner does it all
    try:
        with res.engine.begin() as connection:
            claimed = _claim(res, connection, job_id)
    except TRANSIENT:
        return None  # the runner retries while the database comes back
    if claimed is None:
        return None
    attempt, model, content = claimed
    log.info("job %s: attempt %d started (fast path)", job_id, attempt)
    try:
        outcome = in_transaction(res, job_id, lambda session: _score(session, job_id, attempt, model, content))
    except TRANSIENT:
        raise  # the database stayed away past db_retry_for: the reconciler requeues the job once it is back
    except Exception as exc:
        outcome = internal_error(res, job_id, attempt, exc)
    log.info("job %s: attempt %d %s", job_id, attempt, outcome)
    return outcome


_CLAIMED = (
    jobs.CLAIM.where(
        Job.input_format == "json",
        Job.rows_total <= MAX_ROWS,
        tuple_(Job.model_name, Job.model_sha256).in_(bindparam("held", expanding=True)),
    )
    .returning(Job.id, Job.attempts, Job.model_name)
    .cte("claimed")
)
CLAIM_AND_READ = select(_CLAIMED.c.attempts, _CLAIMED.c.model_name, JobInputPart.content).join(
    JobInputPart,
    (JobInputPart.job_id == _CLAIMED.c.id) & (JobInputPart.part == 0),  # JSON cases are one part
)
INSERT_RESULTS = postgresql.insert(Result).on_conflict_do_nothing(index_elements=["job_id", "row_number"])


def _claim(res: Resources, connection: Connection, job_id: uuid.UUID) -> tuple[int, LoadedModel, bytes] | None:
    """Take a small JSON job for a new attempt and read its input, in one statement; or change nothing.

    Only a job whose model this worker holds with the same hash is taken: a model that changed since the job
    was created is the runner's to fail, saying why.
    """
    if not res.models:
        res.load_all_models()  # a worker loads them at start; this is for a process that did not
    settings = res.settings
    params = jobs.claim_params(job_id, max_attempts=settings.max_attempts, stale_after=settings.heartbeat_stale_after)
    held = [(model.name, model.sha256) for model in res.models.values()]
    found = connection.execute(CLAIM_AND_READ, {**params, "held": held}).one_or_none()
    if found is None:
        return None  # a duplicate delivery, out of attempts, or not a job for this path: the runner says which
    connection.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")  # flushed with the results' commit
    return found.attempts, res.models[found.model_name], found.content


def _score(session: Session, job_id: uuid.UUID, attempt: int, model: LoadedModel, content: bytes) -> str:
    """Score and write the job, and finish it, if this attempt still owns it."""
    try:
        batch = validate_cases(json.loads(content)["cases"], model.features, feature_ranges(model.metadata))
    except FileRejected as exc:
        failed = jobs.finish(session, job_id, attempt, status=JobStatus.FAILED, error="; ".join(exc.problems))
        return "failed" if failed else "superseded"
    rows = result_rows(job_id, model, batch, part=0)
    scored = int(batch.ok.sum())
    counts = (scored, len(rows) - scored)
    if not jobs.finish(session, job_id, attempt, status=JobStatus.SUCCEEDED, counts=counts):
        # A newer attempt owns the job, or this is a retry after our own commit whose answer was lost.
        return "succeeded" if jobs.succeeded_by(session, job_id, attempt) else "superseded"
    _insert_results(session, rows)  # in the same transaction: the status and the rows commit together
    return "succeeded"


def _insert_results(session: Session, rows: list[tuple[Any, ...]]) -> None:
    """One INSERT … ON CONFLICT DO NOTHING: for a few rows, write_results' staging table costs 3 more round trips."""
    session.connection().execute(INSERT_RESULTS, [dict(zip(COLUMNS, row, strict=True)) for row in rows])
