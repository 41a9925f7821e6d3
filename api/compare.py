"""Two jobs on the same input, row by row: where their answers differ, and which is right where a row's diagnosis
is known.

A row's known diagnosis is one confirmed after scoring (api.confirmed) on either job, else the one the file
supplied. The two jobs' confirmations are separate records: a row whose jobs record different confirmed diagnoses
is counted as conflicting and left out, never settled by choosing one. Where exactly one of the two answers is
right, the rows are a paired comparison: McNemar's exact test (the binomial test of those rows at one half) says
how likely so lopsided a split would be if the two models were equally accurate.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from scipy.stats import binomtest
from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session, aliased

from api.validation import proportion
from shared.schema import ConfirmedDiagnosis, Job, Result

FIELDS = (
    "row", "case_id", "supplied_diagnosis", "first_job", "first_model", "first_diagnosis",
    "first_probability_malignant", "first_error", "first_confirmed_diagnosis", "second_job", "second_model",
    "second_diagnosis", "second_probability_malignant", "second_error", "second_confirmed_diagnosis",
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
    ca, cb = aliased(ConfirmedDiagnosis), aliased(ConfirmedDiagnosis)
    query = (
        select(
            a.row_number,
            a.case_id,
            a.supplied_diagnosis,
            a.diagnosis,
            a.probability_malignant,
            a.error,
            ca.diagnosis,
            b.diagnosis,
            b.probability_malignant,
            b.error,
            cb.diagnosis,
        )
        .join(b, and_(b.job_id == second.id, b.row_number == a.row_number))
        .outerjoin(ca, and_(ca.job_id == a.job_id, ca.row_number == a.row_number))
        .outerjoin(cb, and_(cb.job_id == b.job_id, cb.row_number == b.row_number))
        .where(a.job_id == first.id, a.diagnosis.is_distinct_from(b.diagnosis))
        .order_by(a.row_number)
        .limit(limit)
        .execution_options(yield_per=5000)
    )
    with session.execute(query) as found:  # closes its server cursor if the reader stops early
        for row in found:
            yield dict(zip(FIELDS, (
                row[0], row[1], row[2], str(first.id), first.model_name, row[3], row[4], row[5], row[6],
                str(second.id), second.model_name, row[7], row[8], row[9], row[10],
            ), strict=True))  # fmt: skip


def against_known(session: Session, first: Job, second: Job) -> dict[str, Any] | None:
    """Which of the two jobs answers each row with a known diagnosis rightly, for all such rows and for those that
    were a training row of neither model; None when no row both jobs answered has a known diagnosis."""
    check(first, second)
    a, b = aliased(Result), aliased(Result)
    ca, cb = aliased(ConfirmedDiagnosis), aliased(ConfirmedDiagnosis)
    known = func.coalesce(ca.diagnosis, cb.diagnosis, a.supplied_diagnosis)
    # A confirmation carries its job's own training-row check; unknown (NULL) where the row had neither.
    trained_a = case((ca.row_number.is_(None), a.trained_on), else_=ca.trained_on)
    trained_b = case((cb.row_number.is_(None), b.trained_on), else_=cb.trained_on)
    group = case(
        (and_(ca.diagnosis.is_not(None), cb.diagnosis.is_not(None), ca.diagnosis != cb.diagnosis), "conflicting"),
        (and_(trained_a.is_(False), trained_b.is_(False)), "held_out"),
        (trained_a.is_(True) | trained_b.is_(True), "training"),
        else_="unchecked",
    )
    first_right, second_right = a.diagnosis == known, b.diagnosis == known
    found = session.execute(
        select(
            group,
            func.count(),
            func.count().filter(first_right),
            func.count().filter(second_right),
            func.count().filter(first_right & ~second_right),
            func.count().filter(second_right & ~first_right),
            func.count().filter(func.coalesce(ca.diagnosis, cb.diagnosis).is_not(None)),
        )
        .select_from(a)
        .join(b, and_(b.job_id == second.id, b.row_number == a.row_number))
        .outerjoin(ca, and_(ca.job_id == a.job_id, ca.row_number == a.row_number))
        .outerjoin(cb, and_(cb.job_id == b.job_id, cb.row_number == b.row_number))
        .where(a.job_id == first.id, a.diagnosis.is_not(None), b.diagnosis.is_not(None), known.in_(("M", "B")))
        .group_by(group)
    ).all()
    counts = {row[0]: tuple(row[1:]) for row in found}
    conflicting = counts.pop("conflicting", (0,))[0]
    if not counts:
        return None
    total = tuple(sum(column) for column in zip(*counts.values(), strict=True))
    rows, confirmed = total[0], total[5]
    return {
        "reference": "confirmed or supplied" if 0 < confirmed < rows else "confirmed" if confirmed else "supplied",
        "confirmed_rows": confirmed,
        "conflicting_rows": conflicting,
        "all": _paired(*total[:5]),
        "training_rows": counts.get("training", (0,))[0],
        "unchecked_rows": counts.get("unchecked", (0,))[0],
        "not_in_training": _paired(*counts["held_out"][:5]) if "held_out" in counts else None,
    }


def _paired(rows: int, first_right: int, second_right: int, only_first: int, only_second: int) -> dict[str, Any]:
    """Each job's share of right answers (95 % Wilson intervals) and McNemar's exact test of the rows where only
    one of them is right (None when there is no such row)."""
    discordant = only_first + only_second
    return {
        "rows": rows,
        "first": proportion(first_right, rows),
        "second": proportion(second_right, rows),
        "only_first_right": only_first,
        "only_second_right": only_second,
        "mcnemar_p": float(binomtest(only_first, discordant).pvalue) if discordant else None,
    }


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
