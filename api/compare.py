"""Two jobs on the same input, row by row: where their answers differ."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, aliased

from shared.schema import Job, Result

FIELDS = (
    "row", "case_id", "supplied_diagnosis", "first_job", "first_model", "first_diagnosis",
    "first_probability_malignant", "first_error", "second_job", "second_model", "second_diagnosis",
    "second_probability_malignant", "second_error",
)  # fmt: skip


class NotComparable(ValueError):
    """The two jobs did not read the same input, or have not both succeeded."""


@dataclass(frozen=True)
class Comparison:
    first: Job
    second: Job
    compared: int  # rows present in both
    differing: int


def check(first: Job, second: Job) -> None:
    if first.id == second.id:
        raise NotComparable("compare a job with another job on the same input, not with itself")
    if first.input_sha256 != second.input_sha256:
        raise NotComparable("the two jobs did not read the same input (their inputs' sha256 differ)")
    if first.status != "succeeded" or second.status != "succeeded":
        raise NotComparable("both jobs must have succeeded to be compared")
    if first.purged_at is not None or second.purged_at is not None:
        raise NotComparable("a job whose results have been removed cannot be compared")


def summary(session: Session, first: Job, second: Job) -> Comparison:
    """How many rows the two jobs share and in how many their answers (M, B or rejected) differ."""
    check(first, second)
    a, b = aliased(Result), aliased(Result)
    differs = a.diagnosis.is_distinct_from(b.diagnosis)
    compared, differing = session.execute(
        select(func.count(), func.count().filter(differs))
        .select_from(a)
        .join(b, and_(b.job_id == second.id, b.row_number == a.row_number))
        .where(a.job_id == first.id)
    ).one()
    return Comparison(first, second, compared, differing)


def differing_rows(session: Session, first: Job, second: Job, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """The rows whose answers differ, in input order: each job's answer, probability and refusal."""
    check(first, second)
    a, b = aliased(Result), aliased(Result)
    query = (
        select(
            a.row_number,
            a.case_id,
            a.supplied_diagnosis,
            a.diagnosis,
            a.probability_malignant,
            a.error,
            b.diagnosis,
            b.probability_malignant,
            b.error,
        )
        .join(b, and_(b.job_id == second.id, b.row_number == a.row_number))
        .where(a.job_id == first.id, a.diagnosis.is_distinct_from(b.diagnosis))
        .order_by(a.row_number)
        .limit(limit)
        .execution_options(yield_per=5000)
    )
    with session.execute(query) as found:  # closes its server cursor if the reader stops early
        for row in found:
            yield dict(zip(FIELDS, (
                row[0], row[1], row[2], str(first.id), first.model_name, row[3], row[4], row[5],
                str(second.id), second.model_name, row[6], row[7], row[8],
            ), strict=True))  # fmt: skip


def same_input_jobs(session: Session, job: Job, visible: Any) -> list[Job]:
    """The other succeeded jobs on this job's input, results not removed, that the person may see (newest first)."""
    query = (
        select(Job)
        .where(
            Job.input_sha256 == job.input_sha256, Job.id != job.id, Job.status == "succeeded", Job.purged_at.is_(None)
        )
        .order_by(Job.created_at.desc())
        .limit(20)
    )
    return [j for j in session.scalars(query) if visible(j)]
