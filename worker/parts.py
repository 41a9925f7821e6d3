"""Jobs stored in several parts: every worker that hears of the job claims parts until none is left.

The worker that claims the job (the lead) puts its id on the queue again for the other workers; each of them
joins the same attempt. A part is claimed in `job_chunks` (a row with a fresh token; SKIP LOCKED, so two workers
never wait on the same part), scored, and written in one transaction with its `done_at`, the job's running totals
and, for the part that completes the job, the duplicate-id warnings and the succeeded status. Everything stays
fenced by the job's attempt: a newer attempt, or a hand-back, stops every worker at its next write. A part whose
worker died is taken again by the job's next attempt (the reconciler brings the job back when its heartbeat stops)
or, within an attempt, by any worker once its claim is older than `heartbeat_stale_after`.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import uuid
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from shared import jobs
from shared.inputs import read_part as read_stored_part
from shared.intake import iter_batches
from shared.intake.columnar import read_part
from shared.modelstore import LoadedModel, feature_ranges
from shared.queue import publish
from shared.results_store import write_results
from shared.schema import Job, JobInput, JobInputPart, JobStatus
from worker import shutdown
from worker.heartbeat import Heartbeat
from worker.resources import Resources
from worker.scoring import HandBack, Superseded, in_transaction, job_model, result_rows

log = logging.getLogger(__name__)


_CLAIM = text("""
WITH candidate AS (
    SELECT p.part FROM job_input_parts p
    LEFT JOIN job_chunks c ON c.job_id = p.job_id AND c.part = p.part
    WHERE p.job_id = :job AND (c.job_id IS NULL OR (c.done_at IS NULL AND (c.attempt < :attempt
          OR c.claimed_at < now() - make_interval(secs => :stale))))
    ORDER BY p.part
    LIMIT 1
    FOR UPDATE OF p SKIP LOCKED
)
INSERT INTO job_chunks (job_id, part, attempt, token, worker, claimed_at, rows_scored, rows_rejected)
SELECT :job, part, :attempt, :token, :worker, now(), 0, 0 FROM candidate
ON CONFLICT (job_id, part) DO UPDATE
    SET attempt = EXCLUDED.attempt, token = EXCLUDED.token, worker = EXCLUDED.worker, claimed_at = EXCLUDED.claimed_at
    WHERE job_chunks.done_at IS NULL
      AND (job_chunks.attempt < EXCLUDED.attempt OR job_chunks.claimed_at < now() - make_interval(secs => :stale))
RETURNING part
""")
_DONE = text("""
UPDATE job_chunks SET done_at = now(), rows_scored = :scored, rows_rejected = :rejected, id_hashes = :hashes
WHERE job_id = :job AND part = :part AND token = :token AND done_at IS NULL
""")
_REMAINING = text("""
SELECT count(*) FROM job_input_parts p WHERE p.job_id = :job
AND NOT EXISTS (SELECT 1 FROM job_chunks c WHERE c.job_id = p.job_id AND c.part = p.part AND c.done_at IS NOT NULL)
""")
# Later rows with an id seen before say so, naming the first row (as `DuplicateIds` does within one process). Only
# the rows whose id hash was seen more than once are looked at; grouping by the id itself makes it exact.
_DUPLICATES = text("""
WITH repeated AS (
    SELECT case_id, min(row_number) AS first FROM results
    WHERE job_id = :job AND row_number = ANY(:rows) GROUP BY case_id HAVING count(*) > 1
)
UPDATE results r SET warning = 'duplicate case id (also row ' || d.first || ')' || coalesce('; ' || r.warning, '')
FROM repeated d WHERE r.job_id = :job AND r.row_number = ANY(:rows) AND r.case_id = d.case_id AND r.row_number > d.first
""")
_HASHES = text("SELECT p.first_row, c.id_hashes FROM job_chunks c JOIN job_input_parts p USING (job_id, part) "
               "WHERE c.job_id = :job")  # fmt: skip


@dataclass(frozen=True)
class _Claim:
    part: int
    token: uuid.UUID
    first_row: int
    content: bytes


@dataclass(frozen=True)
class _Scored:
    rows: list[tuple[Any, ...]]
    scored: int
    rejected: int
    id_hashes: bytes


def part_count(session: Session, job_id: uuid.UUID) -> int:
    return int(session.scalar(select(func.count()).where(JobInputPart.job_id == job_id)) or 0)


def invite_helpers(job_id: uuid.UUID, parts: int, fan_out: int) -> None:
    """Put the job's id on the queue again, once for each other worker that could take a part."""
    from worker.celery_app import app  # imported here: importing it builds the Celery app from the settings

    for _ in range(min(parts - 1, fan_out)):
        publish(app, job_id)


def joinable(res: Resources, job_id: uuid.UUID) -> int | None:
    """The attempt a helper joins: the job is running and stored in several parts."""
    with res.sessions.begin() as session:
        job = session.get(Job, job_id)
        if job is None or job.status != JobStatus.RUNNING.value or part_count(session, job_id) < 2:
            return None
        return job.attempts


def score_parts(res: Resources, job_id: uuid.UUID, attempt: int) -> bool:
    """Claim and score parts until none is left; True if this worker finished the job."""
    with res.sessions.begin() as session:
        job = session.get(Job, job_id)
        source = session.get(JobInput, job_id)
        assert job is not None and source is not None
        name, sha, filename, header = job.model_name, job.model_sha256, job.input_filename, source.header or b""
    model = job_model(res, name, sha)
    finished = False
    with shutdown.running_job(), Heartbeat(res, job_id, attempt) as beat:
        while not finished:
            if beat.lost.is_set():
                raise Superseded
            if shutdown.should_hand_back():
                raise HandBack
            claim = in_transaction(res, job_id, lambda s: _claim(res, s, job_id, attempt))
            if claim is None:
                break
            content = header + claim.content if claim.part else claim.content
            scored = _score(job_id, model, content, filename, claim, res.settings.chunk_rows)
            try:
                finished = in_transaction(
                    res, job_id, partial(_write, job_id=job_id, attempt=attempt, claim=claim, scored=scored)
                )
            except _Taken:
                log.info("job %s: attempt %d part %d was finished by another worker", job_id, attempt, claim.part)
                continue
            log.info("job %s: attempt %d part %d done (%d rows)", job_id, attempt, claim.part, len(scored.rows))
    return finished


def _claim(res: Resources, session: Session, job_id: uuid.UUID, attempt: int) -> _Claim | None:
    token = uuid.uuid4()
    worker = f"{socket.gethostname()}:{os.getpid()}"  # the pool process, not the main process it forked from
    values = {"job": job_id, "attempt": attempt, "token": token, "worker": worker,
              "stale": res.settings.heartbeat_stale_after}  # fmt: skip
    for _ in range(3):  # a conflicting insert by another worker returns nothing: look again
        row = session.execute(_CLAIM, values).first()
        if row is not None:
            found = read_stored_part(session, job_id, row[0])
            return _Claim(row[0], token, found.first_row, found.content)
    return None


def _score(
    job_id: uuid.UUID, model: LoadedModel, content: bytes, filename: str | None, claim: _Claim, chunk_rows: int
) -> _Scored:
    """Result tuples for the claimed part (`content`: its bytes, behind the header for a later part; read
    column-wise when the part allows it, else record by record), and a 64-bit hash of each row's case id (0 where
    it has none) for finding duplicates across parts."""
    first_row = claim.first_row
    ranges = feature_ranges(model.metadata)
    whole = read_part(content, model.features, first_row, ranges)
    batches = [whole] if whole is not None else iter_batches(
        io.BytesIO(content), filename, model.features, chunk_rows, ranges, first_row=first_row, duplicates=False
    )  # fmt: skip
    rows: list[tuple[Any, ...]] = []
    ids: list[str | None] = []
    scored = 0
    for batch in batches:
        rows += result_rows(str(job_id), model, batch, claim.part)  # COPY reads the text as a uuid
        ids += batch.case_ids
        scored += int(batch.ok.sum())
    return _Scored(rows, scored, len(rows) - scored, id_hashes(ids).tobytes())


def id_hashes(ids: list[str | None]) -> npt.NDArray[np.uint64]:
    """pandas' SipHash with its fixed key: the same in every process. 0 marks a row without an id."""
    values = np.array(ids, dtype=object)
    present = values != None  # noqa: E711 - elementwise
    hashes = np.zeros(len(ids), dtype=np.uint64)
    if present.any():
        found = pd.util.hash_array(values[present], categorize=False)
        hashes[present] = np.where(found == 0, 1, found)
    return hashes


def repeated_rows(parts: list[tuple[int, bytes]]) -> list[int]:
    """Row numbers whose id hash occurs more than once (every occurrence of a repeated id is among them).

    One sorted copy of the hashes (8 bytes a row) is all this holds beside the fetched parts.
    """
    hashes = [np.frombuffer(raw, dtype=np.uint64) for _, raw in parts]
    if not hashes:
        return []
    ordered = np.concatenate(hashes)
    ordered.sort()
    ordered = ordered[np.searchsorted(ordered, 1) :]  # 0: no id
    repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    del ordered
    rows: list[int] = []
    for (first, _), part in zip(parts, hashes, strict=True):
        rows += (np.flatnonzero(np.isin(part, repeated)) + first).tolist()
    return rows


def _write(session: Session, job_id: uuid.UUID, attempt: int, claim: _Claim, scored: _Scored) -> bool:
    """One part's results, its done mark and the job's totals, in one transaction; True if the job is done.

    The job row is updated last, so its lock (which the parts' transactions take in turn) is held only for the
    moment before the commit, never while the results are copied in.
    """
    job = {"job": job_id}
    done = session.execute(_DONE, {**job, "part": claim.part, "token": claim.token, "scored": scored.scored,
                                   "rejected": scored.rejected, "hashes": scored.id_hashes})  # fmt: skip
    if not done.rowcount:  # type: ignore[attr-defined]
        raise _Taken
    write_results(session, scored.rows, fresh=True)
    counted = session.execute(
        text("UPDATE jobs SET rows_scored = rows_scored + :scored, rows_rejected = rows_rejected + :rejected, "
             "heartbeat_at = now() WHERE id = :job AND attempts = :attempt AND status = 'running'"),
        {**job, "attempt": attempt, "scored": scored.scored, "rejected": scored.rejected},
    )  # fmt: skip
    if not counted.rowcount:  # type: ignore[attr-defined]
        raise Superseded
    # Holding the job row's lock, this sees every other part's committed done mark: exactly one part finishes.
    if session.execute(_REMAINING, job).scalar_one():
        return False
    candidates = repeated_rows([(first, raw) for first, raw in session.execute(_HASHES, job)])
    if candidates:
        session.execute(_DUPLICATES, {**job, "rows": candidates})
    session.execute(text("UPDATE job_chunks SET id_hashes = NULL WHERE job_id = :job"), job)
    return jobs.finish(session, job_id, attempt, status=JobStatus.SUCCEEDED)


class _Taken(Exception):
    """Another worker finished this part after our claim went stale: drop ours."""
