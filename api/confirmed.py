"""A scored row's diagnosis as confirmed later: by histology, a repeat aspirate, or follow-up.

An answer is checked by what the case turned out to be. The person who sent a job (or an admin) records the
confirmed diagnosis of one of its scored rows when it comes back; the result never changes, the confirmation sits
beside it, can be corrected or withdrawn, and every change is audited with what it replaced. The model's figures of
use (api/model_use.py) count the answers against these as against a file's supplied diagnoses, leaving out the
model's own training rows: whether the row's values were one is worked out when the diagnosis is recorded, from
the row's values as sent and the metadata of the model that scored them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from flask import abort
from flask_login import current_user
from sqlalchemy import and_, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from api import job_views, row_case
from api.access import may_see, record
from api.database import db
from api.registry import UnknownModel, model_meta
from shared import jobs
from shared.features import CASE_ID, DIAGNOSIS
from shared.intake import FileRejected, validate_cases
from shared.intake.cases import loads
from shared.intake.columns import resolve_name
from shared.intake.csvfile import detect_delimiter, records
from shared.intake.ids import parse_diagnosis
from shared.modelstore import feature_ranges, trained_on
from shared.schema import Basis, ConfirmedDiagnosis, Job, JobStatus, Result, utcnow

# What confirmed it, as the case page's form offers it.
BASES = {
    Basis.HISTOLOGY.value: "histology (the tissue)",
    Basis.CYTOLOGY.value: "cytology (a repeat aspirate)",
    Basis.FOLLOW_UP.value: "follow-up (clinical and imaging)",
}
DIAGNOSES = {"M": "malignant", "B": "benign"}


def problems(diagnosis: object, basis: object) -> list[str]:
    """What is wrong with a diagnosis and basis as sent; empty when both are good."""
    found = [] if _one_of(diagnosis, DIAGNOSES) else ['diagnosis: must be "M" (malignant) or "B" (benign)']
    return found + _basis_problems(basis)


def _one_of(value: object, choices: dict[str, str]) -> bool:
    return isinstance(value, str) and value in choices  # a JSON list or object is no choice (and not hashable)


def _basis_problems(basis: object) -> list[str]:
    return [] if _one_of(basis, BASES) else [f"basis: must be one of {', '.join(BASES)}"]


def recorded(session: Session, job: Job, row: int) -> ConfirmedDiagnosis | None:
    return job_views.confirmation(session, job, row)


def _home(session: Session, job: Job, row: int) -> tuple[Job, int, str]:
    """Where a confirmed diagnosis of row `row` of `job` is recorded (`job_views.confirmation_home`), and how its
    audit event says it came there: the row a case was opened from, by whoever may see that row's job."""
    home, number = job_views.confirmation_home(session, job, row)
    if home is job:
        return job, row, ""
    if not may_see(home):
        abort(403, description=f"this case is row {number} of job {home.id}, whose diagnoses are not yours to record")
    return home, number, f"through case {job.id}: "


def scored_result(session: Session, job: Job, row: int) -> Result:
    """The row's result, which a diagnosis can be confirmed for: 410 once the results are removed, 409 for a job
    that has not succeeded or a row that was rejected, 404 for a row the job does not have."""
    _check_job(job)
    result = session.get(Result, (job.id, row)) if 1 <= row <= job.rows_total else None
    if result is None:
        abort(404, description=f"job {job.id} has no row {row}")
    if result.diagnosis is None:
        abort(409, description=f"row {row} was not scored ({result.error}): there is no answer to check")
    return result


def confirm(job: Job, row: int, diagnosis: str, basis: str) -> ConfirmedDiagnosis:
    """Record (or correct) row `row`'s confirmed diagnosis, audited; the caller has checked `problems`."""
    session = db()
    scored_result(session, job, row)
    home, number, origin = _home(session, job, row)
    _lock(session, home)
    result = scored_result(session, home, number)
    _store(session, home, {number: (result, diagnosis, basis)}, origin)
    session.commit()
    found = session.get(ConfirmedDiagnosis, (home.id, number), populate_existing=True)  # as the upsert left it
    assert found is not None
    return found


@dataclass(frozen=True)
class Entry:
    """One confirmed diagnosis of several sent together: which row (by number or case id) and what it was."""

    where: str  # how the problems name it: "line 3" of a paste, "diagnoses[2]" of a body
    row: object = None
    case_id: object = None
    diagnosis: object = None
    basis: str | None = None  # its own (copied from another job); None: the one given for all


def confirm_many(job: Job, entries: list[Entry], basis: object, origin: str = "") -> list[str]:
    """Record the confirmed diagnoses of several rows at once, audited as one event (its detail starting with
    `origin`); nothing is recorded while any entry has a problem, and each problem names its entry. Returns the
    problems (empty when all were recorded)."""
    session = db()
    _lock(session, job)
    _check_job(job)
    _not_opened_from_a_row(session, job)
    wanted, resolved = _resolve(session, job, entries, basis)
    found = (_basis_problems(basis) if any(e.basis is None for e in entries) else []) + resolved
    if found:
        session.rollback()
        return found
    _store(session, job, wanted, origin)
    session.commit()
    return []


def elsewhere(session: Session, others: list[Job]) -> list[tuple[Job, int]]:
    """Those of `others` (jobs on the same input) that have confirmed diagnoses, each with how many."""
    counts = dict(
        session.execute(
            select(ConfirmedDiagnosis.job_id, func.count())
            .where(ConfirmedDiagnosis.job_id.in_([other.id for other in others]))
            .group_by(ConfirmedDiagnosis.job_id)
        ).all()
    )
    return [(other, counts[other.id]) for other in others if other.id in counts]


def copy_from(job: Job, source: Job) -> tuple[int, list[str]]:
    """Bring the confirmed diagnoses of `source`, another job on the same stored input (a rescore with another
    model, say), to `job`'s same rows, each with its basis: all or none, as `confirm_many`. Returns how many there
    were and the problems. 409 when the two jobs are not on the same input."""
    if source.id == job.id or source.input_sha256 != job.input_sha256:
        abort(409, description="confirmed diagnoses are brought only from another job on the same file")
    found = db().scalars(
        select(ConfirmedDiagnosis).where(ConfirmedDiagnosis.job_id == source.id).order_by(ConfirmedDiagnosis.row_number)
    )
    entries = [Entry(f"row {c.row_number}", row=c.row_number, diagnosis=c.diagnosis, basis=c.basis) for c in found]
    if not entries:
        return 0, [f"job {source.id} has no confirmed diagnosis to bring"]
    return len(entries), confirm_many(job, entries, None, origin=f"from job {source.id}: ")


MAX_ENTRIES = 10_000  # rows in one paste or request
PASTE_MAX_CHARS = 1_000_000
# A header that names these is cytoscore's own results, whose diagnosis column is the model's answer.
_RESULTS_COLUMNS = frozenset({"probability_malignant", "model_sha256"})


def entries_from_paste(text: str) -> tuple[list[Entry], list[str]]:
    """The rows of a paste from a spreadsheet: a header row naming a case id (`id`) or `row` column and a
    `diagnosis` column (M, B, malignant or benign), then one line per case. Columns are found by name, never by
    position; other columns are ignored. Returns the entries, or the problems that stop the paste being read."""
    if len(text) > PASTE_MAX_CHARS:
        return [], [f"paste at most {PASTE_MAX_CHARS:,} characters"]
    content = text.strip("\r\n").encode()
    if not content.strip():
        return [], ["paste the rows with their header row: a case id (or row) column and a diagnosis column"]
    try:
        (_, header), *lines = records(content, detect_delimiter(content))
    except FileRejected as exc:
        return [], exc.problems
    names = [resolve_name(cell) or cell.strip().lower() for cell in header]
    if _RESULTS_COLUMNS & set(names):
        return [], ["these are cytoscore's results: their diagnosis column is the model's answer, not a confirmed one"]
    place = {name: names.index(name) for name in (CASE_ID, "row", DIAGNOSIS) if name in names}
    if DIAGNOSIS not in place or (CASE_ID in place) == ("row" in place):
        shown = ", ".join(repr(cell) for cell in header)
        return [], [
            f"the header row needs a diagnosis column and either a case id (id) or a row column; it has {shown}"
        ]
    entries = []
    for line, cells in lines:
        cell = {name: cells[i].strip() if i < len(cells) else "" for name, i in place.items()}
        label, _ = parse_diagnosis(cell[DIAGNOSIS])
        row = cell.get("row")
        entries.append(
            Entry(
                f"line {line}",
                row=int(row) if row is not None and row.isascii() and row.isdigit() else row,
                case_id=cell.get(CASE_ID),
                diagnosis=label or cell[DIAGNOSIS],
            )
        )
    return entries, []


def summary(session: Session, job: Job) -> dict[str, int]:
    """How many of the job's rows have a confirmed diagnosis, and on how many the answer differs from it."""
    differs = func.count().filter(ConfirmedDiagnosis.diagnosis != Result.diagnosis)
    found = session.execute(
        select(func.count(), differs)
        .select_from(ConfirmedDiagnosis)
        .join(
            Result, and_(Result.job_id == ConfirmedDiagnosis.job_id, Result.row_number == ConfirmedDiagnosis.row_number)
        )
        .where(ConfirmedDiagnosis.job_id == job.id)
    ).one()
    return {"rows": found[0], "differs": found[1]}


def _not_opened_from_a_row(session: Session, job: Job) -> None:
    """409 for a case opened from a file's row: its diagnosis is that row's, recorded one row at a time."""
    home, number = job_views.confirmation_home(session, job, 1)
    if home is not job:
        abort(409, description=f"this case is row {number} of job {home.id}: record its diagnosis there, or with "
                               f"PUT /api/v1/jobs/{job.id}/rows/1/confirmed-diagnosis")  # fmt: skip


def _lock(session: Session, job: Job) -> None:
    session.refresh(job, with_for_update={"read": True})  # a removal waits for this to commit, and is seen before


def _check_job(job: Job) -> None:
    """410 once the job's results are removed; 409 for a job that has not succeeded."""
    if job.purged_at is not None:
        abort(410, description="the job's results have been removed")
    if job.status != JobStatus.SUCCEEDED.value:
        abort(409, description=f"the job is {job.status}; a diagnosis is confirmed for a row of a job that succeeded")


def _resolve(
    session: Session, job: Job, entries: list[Entry], basis: object
) -> tuple[dict[int, tuple[Result, str, str]], list[str]]:
    """Each entry's row, diagnosis and basis (its own, else `basis`), or what is wrong with it (a case id must name
    exactly one row)."""
    if not entries:
        return {}, ["no confirmed diagnosis was given"]
    if len(entries) > MAX_ENTRIES:
        return {}, [f"{len(entries):,} rows: send at most {MAX_ENTRIES:,} at once"]
    ids = {e.case_id for e in entries if isinstance(e.case_id, str)}
    numbers = {e.row for e in entries if type(e.row) is int and 1 <= e.row <= job.rows_total}
    by_id: dict[str, list[Result]] = {}
    by_row: dict[int, Result] = {}
    if ids or numbers:
        query = select(Result).where(
            Result.job_id == job.id, or_(Result.case_id.in_(ids), Result.row_number.in_(numbers))
        )
        for result in session.scalars(query):
            by_row[result.row_number] = result
            if result.case_id in ids:
                by_id.setdefault(result.case_id, []).append(result)
    wanted: dict[int, tuple[Result, str, str]] = {}
    named: dict[int, str] = {}
    problems: list[str] = []
    for e in entries:
        if not _one_of(e.diagnosis, DIAGNOSES):
            problems.append(f'{e.where}: diagnosis {e.diagnosis!r} is not "M" (malignant) or "B" (benign)')
            continue
        if e.case_id is not None:
            same = by_id.get(e.case_id, []) if isinstance(e.case_id, str) else []
            if len(same) != 1:
                rows = " and ".join(str(r.row_number) for r in sorted(same, key=lambda r: r.row_number))
                problems.append(f"{e.where}: case id {e.case_id!r} " + (f"is on rows {rows}: give the row number"
                                if same else "is not the case id of any row of this job"))  # fmt: skip
                continue
            result = same[0]
            if e.row is not None and e.row != result.row_number:
                problems.append(f"{e.where}: case id {e.case_id!r} is on row {result.row_number}, not row {e.row!r}")
                continue
        elif type(e.row) is int and e.row in by_row:
            result = by_row[e.row]
        else:
            problems.append(f"{e.where}: row {e.row!r} is not a row of this job (1 to {job.rows_total})")
            continue
        row = result.row_number
        if result.diagnosis is None:
            problems.append(f"{e.where}: row {row} was not scored ({result.error}): there is no answer to check")
        elif row in named:
            problems.append(f"{e.where}: row {row} was given already, on {named[row]}")
        else:
            wanted[row], named[row] = (result, str(e.diagnosis), str(e.basis or basis)), e.where
    return wanted, problems


def _store(session: Session, job: Job, wanted: dict[int, tuple[Result, str, str]], origin: str = "") -> None:
    """Upsert the rows' confirmed diagnoses (and bases) with their training-row check; one audit event says what
    each replaced, its detail starting with `origin`."""
    before = {
        c.row_number: f"{c.diagnosis} by {c.basis}"
        for c in session.scalars(
            select(ConfirmedDiagnosis).where(
                ConfirmedDiagnosis.job_id == job.id, ConfirmedDiagnosis.row_number.in_(wanted)
            )
        )
    }
    trained = _trained_on(session, job, [result for result, _, _ in wanted.values()])
    now = utcnow()
    rows = [
        {"job_id": job.id, "row_number": row, "diagnosis": diagnosis, "basis": basis, "trained_on": trained[row],
         "recorded_by": current_user.email, "recorded_at": now}
        for row, (_, diagnosis, basis) in wanted.items()
    ]  # fmt: skip
    statement = insert(ConfirmedDiagnosis)
    changed = {name: statement.excluded[name] for name in ("diagnosis", "basis", "trained_on", "recorded_by",
                                                           "recorded_at")}  # fmt: skip
    session.execute(statement.on_conflict_do_update(index_elements=["job_id", "row_number"], set_=changed), rows)
    detail = origin + "; ".join(
        f"row {row}: {diagnosis} by {basis}" + (f" (was {before[row]})" if row in before else "")
        for row, (_, diagnosis, basis) in sorted(wanted.items())
    )
    record("case.confirm", job, detail=detail)


def withdraw(job: Job, row: int) -> None:
    """Take back row `row`'s confirmed diagnosis (recorded against the wrong case, say), audited; 404 if none."""
    session = db()
    scored_result(session, job, row)
    home, number, origin = _home(session, job, row)
    found = session.get(ConfirmedDiagnosis, (home.id, number), with_for_update=True)
    if found is None:
        abort(404, description=f"row {number} of job {home.id} has no confirmed diagnosis")
    record("case.unconfirm", home, detail=f"{origin}row {number}: {found.diagnosis} by {found.basis} withdrawn")
    session.delete(found)
    session.commit()


def as_json(found: ConfirmedDiagnosis, result: Result) -> dict[str, Any]:
    return {
        "job": str(found.job_id),
        "row": found.row_number,
        "diagnosis": found.diagnosis,
        "basis": found.basis,
        "answered": result.diagnosis,
        "agrees": result.diagnosis == found.diagnosis,
        "trained_on": found.trained_on,
        "recorded_by": found.recorded_by,
        "recorded_at": found.recorded_at.isoformat(),
    }


def _trained_on(session: Session, job: Job, results: list[Result]) -> dict[int, bool | None]:
    """Whether each row's values were a training row of the model that scored it, by row number; None if that
    model is no longer published as it was (its metadata's row hashes are the scoring model's only while its sha256
    is)."""
    out: dict[int, bool | None] = {r.row_number: r.trained_on for r in results}  # known for rows with a diagnosis
    unknown = [r for r in results if r.trained_on is None]
    try:
        model = model_meta(job.model_name) if unknown else None
    except UnknownModel:
        model = None
    if model is None or model["sha256"] != job.model_sha256:
        return out
    if job.input_format == "json":
        buffer = io.BytesIO()
        jobs.spool_input(session, job.id, buffer)
        stored: Any = loads(buffer.getvalue())
        cases = [stored["cases"][r.row_number - 1] for r in unknown]
    else:
        values = row_case.rows_values(session, job, unknown, model["features"])
        cases = [values[r.row_number] for r in unknown]
    batch = validate_cases(cases, model["features"], feature_ranges(model))
    # A row the checks of today refuse (they may have grown stricter since it was scored) stays unknown.
    ok = np.asarray(batch.ok, dtype=bool)
    checked = iter(trained_on(model, np.asarray(batch.X)[ok]).tolist())
    for r, readable in zip(unknown, ok.tolist(), strict=True):
        out[r.row_number] = bool(next(checked)) if readable else None
    return out
