"""A few JSON cases without the chunk machinery: a claim that does not wait for the disk, then one durable commit.

Such a job scores in well under a millisecond, so what it waits for is the database, and above all its durable
commits: each costs a disk flush. The runner makes two (the claim; the last chunk with `succeeded`) and reads the
input in a transaction of its own; this path makes one, and keeps every guarantee of the runner:

- The claim is the runner's fenced UPDATE (`jobs.claim`), committed on its own before the input is read or
  scored, so an input that kills its worker still uses up an attempt and ends `failed` after `max_attempts`.
  That commit does not wait for the flush (`synchronous_commit = off`): it is visible at once, and reaches the
  disk with the next durable commit, which flushes everything committed before it. Should PostgreSQL itself
  crash first, the claim is undone and the job is `queued` again, as if its message had not been taken yet.
- The input is read, scored, and its results, counts and `succeeded` committed in one transaction fenced by the
  attempt, as the runner's last chunk is (rows inserted with ON CONFLICT DO NOTHING). A worker killed before that
  commit leaves the job `running` with this attempt and nothing written; the reconciler brings it back once its
  heartbeat is stale, as for any job. The job is scored in milliseconds, well inside the staleness, so it needs
  no heartbeat thread, and being one chunk it is never handed back.

Anything else (an upload, more rows than the numpy engine takes, a model that changed, a job that cannot be
claimed) returns None having changed nothing, and `run_job` handles it as before.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from shared import jobs
from shared.inputs import read_part
from shared.intake import FileRejected, validate_cases
from shared.modelstore import ENGINE_MAX_ROWS, LoadedModel, feature_ranges
from shared.results_store import COLUMNS
from shared.schema import Job, JobStatus, Result
from worker.resources import Resources
from worker.scoring import TRANSIENT, in_transaction, result_rows

log = logging.getLogger(__name__)

MAX_ROWS = ENGINE_MAX_ROWS  # the numpy engine's range


def run_fast(res: Resources, job_id: uuid.UUID) -> str | None:
    """Score a small JSON job with one durable commit; None when this path does not apply."""
    try:
        with res.sessions.begin() as session:
            claimed = _claim(res, session, job_id)
    except TRANSIENT:
        return None  # the runner retries while the database comes back
    if claimed is None:
        return None
    attempt, model = claimed
    log.info("job %s: attempt %d started (fast path)", job_id, attempt)
    outcome = in_transaction(res, job_id, lambda session: _score(session, job_id, attempt, model))
    log.info("job %s: attempt %d %s", job_id, attempt, outcome)
    return outcome


def _claim(res: Resources, session: Session, job_id: uuid.UUID) -> tuple[int, LoadedModel] | None:
    """Take a small JSON job for a new attempt, or change nothing and return None."""
    found = session.execute(
        select(Job.model_name, Job.model_sha256).where(
            Job.id == job_id, Job.input_format == "json", Job.rows_total <= MAX_ROWS
        )
    ).one_or_none()
    if found is None:
        return None
    model = res.model(found.model_name)
    if model.sha256 != found.model_sha256:
        return None  # the runner fails it with the reason
    limit, stale = res.settings.max_attempts, res.settings.heartbeat_stale_after
    attempt = jobs.claim(session, job_id, max_attempts=limit, stale_after=stale)
    if attempt is None:
        return None  # a duplicate delivery, or out of attempts: the runner says which
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL synchronous_commit TO OFF"))  # flushed with the results' commit
    return attempt, model


def _score(session: Session, job_id: uuid.UUID, attempt: int, model: LoadedModel) -> str:
    """Read, score and write the job, and finish it, if this attempt still owns it."""
    content = read_part(session, job_id, 0).content  # JSON cases are stored as one part
    try:
        batch = validate_cases(json.loads(content)["cases"], model.features, feature_ranges(model.metadata))
    except FileRejected as exc:
        failed = jobs.finish(session, job_id, attempt, status=JobStatus.FAILED, error="; ".join(exc.problems))
        return "failed" if failed else "superseded"
    rows = result_rows(job_id, model, batch)
    scored = int(batch.ok.sum())
    counts = (scored, len(rows) - scored)
    if not jobs.finish(session, job_id, attempt, status=JobStatus.SUCCEEDED, counts=counts):
        # A newer attempt owns the job, or this is a retry after our own commit whose answer was lost.
        return "succeeded" if jobs.succeeded_by(session, job_id, attempt) else "superseded"
    _insert_results(session, rows)  # in the same transaction: the status and the rows commit together
    return "succeeded"


def _insert_results(session: Session, rows: list[tuple[Any, ...]]) -> None:
    """One INSERT … ON CONFLICT DO NOTHING: for a few rows, write_results' staging table costs 3 more round trips."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(Result).on_conflict_do_nothing(index_elements=["job_id", "row_number"])
    session.execute(statement, [dict(zip(COLUMNS, row, strict=True)) for row in rows])
