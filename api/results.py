"""Reading a job's results in input order, and serving them as JSON or CSV."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Row, and_, bindparam, func, select
from sqlalchemy.orm import Session

from shared.schema import ConfirmedDiagnosis, Job, Result

FIELDS = (
    "row",
    "case_id",
    "diagnosis",
    "probability_malignant",
    "model_name",
    "model_version",
    "model_sha256",
    "supplied_diagnosis",
    "confirmed_diagnosis",
    "confirmed_basis",
    "out_of_range",
    "warning",
    "error",
)
NOTICE = "Decision support only: this is not a diagnosis. A qualified clinician must interpret every result."


# Built once: a single case's answer reads its result with this, where building the statement would cost more.
_OF_JOB = (
    select(
        Result.row_number,
        Result.case_id,
        Result.diagnosis,
        Result.probability_malignant,
        Result.model_version,
        Result.supplied_diagnosis,
        ConfirmedDiagnosis.diagnosis.label("confirmed_diagnosis"),
        ConfirmedDiagnosis.basis.label("confirmed_basis"),
        Result.out_of_range,
        Result.warning,
        Result.error,
        Result.explanation,
    )
    .outerjoin(
        ConfirmedDiagnosis,
        and_(ConfirmedDiagnosis.job_id == Result.job_id, ConfirmedDiagnosis.row_number == Result.row_number),
    )
    .where(Result.job_id == bindparam("job_id"))
    .order_by(Result.row_number)
)


def records(
    session: Session, job: Job, *, offset: int = 0, limit: int | None = None, where: Any = None
) -> Iterator[dict[str, Any]]:
    """The job's records in input order; `where`, a condition on Result, keeps only the rows it holds for."""
    query = _OF_JOB if where is None else _OF_JOB.where(where)
    query = query.offset(offset).limit(limit).execution_options(yield_per=5000)
    with session.execute(query, {"job_id": job.id}) as found:  # closes its server cursor if the reader stops early
        for r in found:
            yield _record(job, r)


def few_records(session: Session, job: Job) -> list[dict[str, Any]]:
    """All of a small job's records at once, read on the session's connection."""
    return [_record(job, r) for r in session.connection().execute(_OF_JOB, {"job_id": job.id})]


def _record(job: Job, r: Row[Any] | Any) -> dict[str, Any]:
    return {
        "row": r.row_number,
        "case_id": r.case_id,
        "diagnosis": r.diagnosis,
        "probability_malignant": r.probability_malignant,
        "model_name": job.model_name,
        "model_version": r.model_version,
        "model_sha256": job.model_sha256,
        "supplied_diagnosis": r.supplied_diagnosis,
        "confirmed_diagnosis": r.confirmed_diagnosis,  # what the case turned out to be, recorded later
        "confirmed_basis": r.confirmed_basis,
        "out_of_range": r.out_of_range,
        "warning": r.warning,
        "error": r.error,
        "explanation": r.explanation,  # {"base", "contributions": {feature: value}}, or None when not asked for
    }


def counts(session: Session, job: Job) -> dict[str, int]:
    """M and B counts, and agreement with a supplied diagnosis where there was one."""
    rows = session.execute(
        select(Result.diagnosis, Result.supplied_diagnosis, func.count())
        .where(Result.job_id == job.id, Result.diagnosis.is_not(None))
        .group_by(Result.diagnosis, Result.supplied_diagnosis)
    ).all()
    out = {"M": 0, "B": 0, "compared": 0, "agreed": 0}
    for diagnosis, supplied, n in rows:
        out[str(diagnosis)] += n
        if supplied in ("M", "B"):
            out["compared"] += n
            out["agreed"] += n if supplied == diagnosis else 0
    return out
