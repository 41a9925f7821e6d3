"""One row of a job, opened as a single case: the values that row sent, how each moved its answer, its report.

A spreadsheet's rows are answered without reasons; a lab reading one that disagrees with its supplied diagnosis,
or a clinician given one patient's row, wants the single case's view of it. The row's values are read back from
the job's stored input, as sent (only the part that holds the row), and scored again alone by the same model, as a
new single case that names the job and row it came from. The same model and the same values give the same answer,
so opening the row again shows the case already opened, not a copy; a model changed since the job was scored is
refused, never substituted.
"""

from __future__ import annotations

import itertools
import tempfile

from flask import abort
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.cases import is_single_case
from api.database import db
from api.registry import UnknownModel, model_meta
from api.submit import check_cases, submit_cases
from shared import jobs
from shared.features import CASE_ID, DIAGNOSIS
from shared.intake import FileRejected, read_rows
from shared.intake.columns import resolve_name
from shared.intake.numbers import DECIMAL_COMMA
from shared.schema import Job, JobInput, JobInputPart, JobKind, JobStatus, Result


def open_row(job: Job, row: int) -> Job:
    """Queue row `row` of `job` as a single case; 404 for a row the job does not have, 409 for one it cannot open."""
    session = db()
    if job.purged_at is not None and not is_single_case(job) and 1 <= row <= job.rows_total:
        abort(409, description="the job's input has been removed, so the row's values are gone")
    result = session.get(Result, (job.id, row)) if job.status == JobStatus.SUCCEEDED.value else None
    if result is None or is_single_case(job):
        abort(404, description=f"job {job.id} has no scored row {row} to open as a case")
    if result.diagnosis is None:
        abort(409, description=f"row {row} was not scored ({result.error}): there is no answer to explain")
    try:
        model = model_meta(job.model_name)
    except UnknownModel:
        abort(409, description=f"model {job.model_name}, which scored this job, is no longer published")
    if model["sha256"] != job.model_sha256:
        abort(409, description=f"model {job.model_name} has changed since this job was scored: rescore the job "
                               "with it first, then open the row")  # fmt: skip
    earlier = opened_before(session, job, row)
    if earlier is not None:
        return earlier
    case = row_values(session, job, result, model["features"])
    try:
        batch = check_cases([case], model["name"])
    except FileRejected as exc:
        abort(409, description="; ".join(exc.problems))
    if not batch.ok.all():  # the job scored these values: reading them back differently would be a defect
        abort(409, description="; ".join(f"{p.column}: {p.reason}" for p in batch.problems))
    return submit_cases([case], model["name"], JobKind.FORM, source=(job.id, row))


def opened_before(session: Session, job: Job, row: int) -> Job | None:
    """The case this person made of this row with this model before, unless it failed, was cancelled or purged."""
    return session.scalar(
        select(Job)
        .where(
            Job.source_job_id == job.id,
            Job.source_row == row,
            Job.owner_id == current_user.user_id,
            Job.model_sha256 == job.model_sha256,
            Job.status.not_in((JobStatus.FAILED.value, JobStatus.CANCELLED.value)),
            Job.purged_at.is_(None),
        )
        .order_by(Job.created_at.desc())
        .limit(1)
    )


def row_values(session: Session, job: Job, result: Result, features: list[str]) -> dict[str, object]:
    """The row's case id, measurements and supplied diagnosis as the user sent them, keyed by published name."""
    return rows_values(session, job, [result], features)[result.row_number]


def rows_values(session: Session, job: Job, results: list[Result], features: list[str]) -> dict[int, dict[str, object]]:
    """`row_values` for several rows of a job, by row number: each stored part that holds one is read once.

    A decimal comma, which only a semicolon file may use, is given as the point the job read it as: a single case's
    values follow the one number grammar of JSON text.
    """
    source = session.get(JobInput, job.id)
    by_part: dict[int, dict[int, Result]] = {}
    for result in results:
        by_part.setdefault(result.part, {})[result.row_number] = result
    first_rows = dict(
        session.execute(
            select(JobInputPart.part, JobInputPart.first_row).where(
                JobInputPart.job_id == job.id, JobInputPart.part.in_(by_part)
            )
        ).all()
    )
    if source is None or len(first_rows) != len(by_part):
        abort(409, description="the job's input has been removed, so the row's values are gone")
    out: dict[int, dict[str, object]] = {}
    for part, wanted in by_part.items():
        with tempfile.TemporaryFile() as spooled:
            if part and source.header:
                spooled.write(source.header)  # a later part holds rows only
            jobs.spool_part(session, job.id, part, spooled)
            spooled.seek(0)
            header, rows = read_rows(spooled, source.layout, job.input_filename)
            last = max(wanted)
            for number, cells in zip(itertools.count(first_rows[part]), rows, strict=False):
                if number in wanted:
                    out[number] = _case(job, header, cells, wanted[number], features)
                if number >= last:
                    break
    return out


def _case(job: Job, header: list[str], cells: list[str], result: Result, features: list[str]) -> dict[str, object]:
    decimal_comma = job.input_delimiter == ";"
    case: dict[str, object] = {CASE_ID: result.case_id} if result.case_id is not None else {}
    for name, text in zip(header, cells, strict=False):
        published = resolve_name(name)
        if published == DIAGNOSIS and text.strip():
            case[DIAGNOSIS] = text  # the case shows it beside the answer, as the job's row did
        elif published in features:
            written = text.strip(" ")
            case[published] = written.replace(",", ".") if decimal_comma and DECIMAL_COMMA.fullmatch(written) else text
    return case
