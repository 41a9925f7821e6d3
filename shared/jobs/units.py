"""Units of work: the parts of a job's input, each claimed, read, scored and written batch by batch.

A job stored in one part (a few cases, or a whole file) has one unit, claimed with the job: the attempt is the
claim. A job stored in several parts has one unit per part, claimed in the part ledger (`part_claims`) by any
worker on the attempt, with a fresh token; SKIP LOCKED, so two workers never wait on the same part. A part whose
claim is older than the staleness is taken again by whoever asks next, within the attempt or by the next one.

Each batch of a unit is written in one transaction, fenced: by the attempt, and for a ledger part by its token.
The write holds the results, the unit's progress and the job's totals; the write of a unit's last batch marks
it done, and the write that leaves no unit undone also marks repeated case ids across the whole job and sets
`succeeded`, or `needs_review` when the input as a whole looks misread (`shared.intake.review`). The job row's lock
makes exactly one write the last.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import Integer, bindparam, text
from sqlalchemy.orm import Session

from shared.intake.review import Tally, verdict
from shared.jobs.claims import FENCED, Attempt, Superseded, fenced, heartbeat, succeed, succeeded_by
from shared.jobs.results import write_results


class PartTaken(Exception):
    """Another worker claimed this part after our claim went stale (or finished it): drop ours."""


@dataclass(frozen=True)
class Unit:
    """A part of a job's input, as the worker that claimed it holds it."""

    attempt: Attempt
    part: int
    first_row: int
    token: uuid.UUID | None  # the part claim's token; None for a job's only part, which the attempt holds
    fresh: bool  # no result of this part can be stored before this claim
    content: bytes | None  # the part's bytes, when they came with the claim


def only_part(attempt: Attempt) -> Unit:
    """The unit of a job stored in one part: claimed with the job, fresh on the job's first attempt."""
    return Unit(attempt, 0, 1, None, attempt.number == 1, attempt.content)


# Run on the driver's connection, binary: a part's bytes arrive as they are, not as hex text twice their size.
_CLAIM_PART = """
WITH candidate AS (
    SELECT p.part FROM job_input_parts p
    LEFT JOIN part_claims c ON c.job_id = p.job_id AND c.part = p.part
    WHERE p.job_id = %(job)s AND (c.job_id IS NULL OR (c.done_at IS NULL AND (c.attempt < %(attempt)s
          OR c.claimed_at < now() - make_interval(secs => %(stale)s))))
    ORDER BY p.part
    LIMIT 1
    FOR UPDATE OF p SKIP LOCKED
), claimed AS (
    INSERT INTO part_claims (job_id, part, attempt, token, worker, claimed_at, claims, rows_scored, rows_rejected)
    SELECT %(job)s, part, %(attempt)s, %(token)s, %(worker)s, now(), 1, 0, 0 FROM candidate
    ON CONFLICT (job_id, part) DO UPDATE
        SET attempt = EXCLUDED.attempt, token = EXCLUDED.token, worker = EXCLUDED.worker,
            claimed_at = EXCLUDED.claimed_at, claims = part_claims.claims + 1, rows_scored = 0, rows_rejected = 0,
            rows_out_of_range = 0, rows_implausible = 0, rows_geometry = 0, rows_far = 0
        WHERE part_claims.done_at IS NULL AND (part_claims.attempt < EXCLUDED.attempt
              OR part_claims.claimed_at < now() - make_interval(secs => %(stale)s))
    RETURNING part, claims
)
SELECT c.part, c.claims, p.first_row, p.content
FROM claimed c JOIN job_input_parts p ON p.job_id = %(job)s AND p.part = c.part
"""


def claim_part(session: Session, attempt: Attempt, *, worker: str, stale_after: float) -> Unit | None:
    """Claim the next part of the job that no live claim holds, and read it; None when there is none."""
    token = uuid.uuid4()
    values = {"job": attempt.job_id, "attempt": attempt.number, "token": token, "worker": worker,
              "stale": stale_after}  # fmt: skip
    conn: Any = session.connection().connection.driver_connection
    with conn.cursor(binary=True) as cur:
        for _ in range(3):  # a conflicting insert by another worker returns nothing: look again
            found = cur.execute(_CLAIM_PART, values).fetchone()
            if found is not None:
                part, claims, first_row, content = found
                return Unit(attempt, part, first_row, token, claims == 1, bytes(content))
    return None


_PROGRESS = FENCED.values(
    rows_scored=bindparam("scored", type_=Integer), rows_rejected=bindparam("rejected", type_=Integer),
    rows_out_of_range=bindparam("out_of_range", type_=Integer), heartbeat_at=bindparam("now"),
)  # fmt: skip
_PART_PROGRESS = text("""
UPDATE part_claims SET rows_scored = :scored, rows_rejected = :rejected, claimed_at = now(),
    done_at = CASE WHEN :done THEN now() END, id_hashes = :hashes, rows_out_of_range = :out_of_range,
    rows_implausible = :implausible, rows_geometry = :geometry, rows_far = :far
WHERE job_id = :job AND part = :part AND token = :token AND done_at IS NULL
""")
# Run once the job row is locked (by the fenced heartbeat before it): this statement's snapshot then holds every
# other part's committed write, so the totals are whole and exactly one write sees no part left undone.
_JOB_TOTALS = text("""
UPDATE jobs SET rows_scored = t.scored, rows_rejected = t.rejected, rows_out_of_range = t.out_of_range
FROM (SELECT coalesce(sum(c.rows_scored), 0) AS scored, coalesce(sum(c.rows_rejected), 0) AS rejected,
             coalesce(sum(c.rows_out_of_range), 0) AS out_of_range,
             coalesce(sum(c.rows_implausible), 0) AS implausible, coalesce(sum(c.rows_geometry), 0) AS geometry,
             coalesce(sum(c.rows_far), 0) AS far, count(*) FILTER (WHERE c.done_at IS NULL) AS undone
      FROM job_input_parts p LEFT JOIN part_claims c ON c.job_id = p.job_id AND c.part = p.part
      WHERE p.job_id = :job) AS t
WHERE jobs.id = :job
RETURNING t.scored, t.rejected, t.out_of_range, t.implausible, t.geometry, t.far, t.undone,
    jobs.receiving_at IS NOT NULL AS receiving
""")
_HASHES = text("SELECT p.first_row, c.id_hashes FROM part_claims c JOIN job_input_parts p USING (job_id, part) "
               "WHERE c.job_id = :job")  # fmt: skip
_FORGET_HASHES = text("UPDATE part_claims SET id_hashes = NULL WHERE job_id = :job")
# Later rows with an id seen before say so, naming the first row. Only the rows whose id hash was seen more than
# once are looked at; grouping by the id itself makes it exact.
_DUPLICATES = text("""
WITH repeated AS (
    SELECT case_id, min(row_number) AS first FROM results
    WHERE job_id = :job AND row_number = ANY(:rows) GROUP BY case_id HAVING count(*) > 1
)
UPDATE results r SET warning = 'duplicate case id (also row ' || d.first || ')' || coalesce('; ' || r.warning, '')
FROM repeated d WHERE r.job_id = :job AND r.row_number = ANY(:rows) AND r.case_id = d.case_id AND r.row_number > d.first
""")


def write_batch(
    session: Session,
    unit: Unit,
    rows: Sequence[tuple[Any, ...]],
    *,
    scored: int,
    rejected: int,
    done: bool,
    id_hashes: npt.NDArray[np.uint64] | None,
    first_try: bool,
    tally: Tally | None = None,
) -> bool:
    """Write one batch of a unit, fenced; True if this write finished the job.

    `scored`, `rejected` and `tally` (what makes the input suspect) are the unit's counts so far, this batch
    included; `done` says it is the unit's last batch, and then `id_hashes` holds a hash of each of the unit's case
    ids (`id_hashes()`). `first_try` is False when the same write is tried again after the database went away, so
    its rows may already be stored.
    Superseded if the attempt no longer owns the job; PartTaken if another worker took the part.
    """
    fresh = unit.fresh and first_try
    tally = tally or Tally()
    if unit.token is None:
        return _write_only_part(session, unit, rows, scored, rejected, tally, done, id_hashes, fresh)
    hashes = id_hashes.tobytes() if done and id_hashes is not None else None
    marked = session.execute(
        _PART_PROGRESS,
        {
            "job": unit.attempt.job_id,
            "part": unit.part,
            "token": unit.token,
            "scored": scored,
            "rejected": rejected,
            "done": done,
            "hashes": hashes,
            "out_of_range": tally.out_of_range,
            "implausible": tally.implausible,
            "geometry": tally.geometry,
            "far": tally.far,
        },
    )
    if not marked.rowcount:  # type: ignore[attr-defined]
        raise PartTaken
    write_results(session, rows, fresh=fresh)
    if not heartbeat(session, unit.attempt):
        raise Superseded  # the job row is locked from here to the commit: nothing slow follows
    totals = session.execute(_JOB_TOTALS, {"job": unit.attempt.job_id}).one()
    if not done or totals.undone or totals.receiving:  # more parts are on their way
        return False
    job = {"job": unit.attempt.job_id}
    _mark_duplicates(session, unit.attempt.job_id, [(first, raw) for first, raw in session.execute(_HASHES, job)])
    session.execute(_FORGET_HASHES, job)
    whole = Tally(totals.out_of_range, totals.implausible, totals.geometry, totals.far)
    review = verdict(totals.scored + totals.rejected, whole)
    return succeed(session, unit.attempt, scored=totals.scored, rejected=totals.rejected,
                   out_of_range=totals.out_of_range, review=review)  # fmt: skip


def _write_only_part(
    session: Session,
    unit: Unit,
    rows: Sequence[tuple[Any, ...]],
    scored: int,
    rejected: int,
    tally: Tally,
    done: bool,
    id_hashes: npt.NDArray[np.uint64] | None,
    fresh: bool,
) -> bool:
    """The job's only part: the job row carries its progress, and its last batch finishes the job."""
    if done:
        owned = succeed(session, unit.attempt, scored=scored, rejected=rejected, out_of_range=tally.out_of_range,
                        review=verdict(scored + rejected, tally))  # fmt: skip
    else:
        owned = fenced(session, _PROGRESS, unit.attempt, scored=scored, rejected=rejected,
                       out_of_range=tally.out_of_range)  # fmt: skip
    if not owned:
        if done and succeeded_by(session, unit.attempt):
            return True  # a retry after our own commit whose answer was lost with the connection
        raise Superseded
    write_results(session, rows, fresh=fresh)  # in the same transaction: the status and the rows commit together
    if done and id_hashes is not None:
        _mark_duplicates(session, unit.attempt.job_id, [(unit.first_row, id_hashes.tobytes())])
    return done


def _mark_duplicates(session: Session, job_id: uuid.UUID, parts: list[tuple[int, bytes]]) -> None:
    candidates = repeated_rows(parts)
    if candidates:
        session.execute(_DUPLICATES, {"job": job_id, "rows": candidates})


def id_hashes(ids: Sequence[str | None]) -> npt.NDArray[np.uint64]:
    """pandas' SipHash with its fixed key: the same in every process. 0 marks a row without an id.

    A collision (about 1 in 10^7 for a million ids) only makes the exact check look at two more rows.
    """
    values = np.array(ids, dtype=object)
    present = values != None  # noqa: E711 - elementwise
    hashes = np.zeros(len(ids), dtype=np.uint64)
    if present.any():
        found = pd.util.hash_array(values[present], categorize=False)
        hashes[present] = np.where(found == 0, 1, found)
    return hashes


def repeated_rows(parts: list[tuple[int, bytes]]) -> list[int]:
    """Row numbers whose id hash occurs more than once (every occurrence of a repeated id is among them).

    `parts`: each part's first row number and its rows' hashes. One sorted copy of the hashes (8 bytes a row) is
    all this holds beside them.
    """
    hashes = [np.frombuffer(raw, dtype=np.uint64) for _, raw in parts if raw]
    if not hashes:
        return []
    ordered = np.concatenate(hashes)
    ordered.sort()
    ordered = ordered[np.searchsorted(ordered, 1) :]  # 0: no id
    repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    del ordered
    rows: list[int] = []
    for first, raw in parts:
        part = np.frombuffer(raw or b"", dtype=np.uint64)
        rows += (np.flatnonzero(np.isin(part, repeated)) + first).tolist()
    return rows
