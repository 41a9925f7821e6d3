"""How a model has been used on this site, month by month in the site's time zone: the jobs that succeeded with it
and whose results are still stored (a row of a file opened as a case counts once, with the file), the rows they
scored, flagged and rejected, how many it answered M, and, where a file supplied diagnoses or one was confirmed
later (api/confirmed.py), how its answers agreed with them on the rows that were not its training rows.

A model in service is watched, not only validated once: a drift in the share answered M or flagged, or in the
agreement where diagnoses come back, is the first sign that the cases, the measuring or the model have changed.
The figures are counts over many jobs and name no job, person or case.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, literal_column, select
from sqlalchemy.orm import Session, aliased

from api.validation import proportion
from shared.schema import ConfirmedDiagnosis, Job, JobStatus, Result

MONTHS = 12


def by_month(session: Session, model: str, zone: str) -> list[dict[str, Any]]:
    """One entry per month (newest first) and model version with a job that finished in it, over the last
    `MONTHS` months of the zone's calendar (the current one included)."""
    month = func.to_char(func.timezone(zone, Job.finished_at), "YYYY-MM")
    first_month = func.date_trunc("month", func.timezone(zone, func.now())) - literal_column(
        f"interval '{MONTHS - 1} months'"
    )
    # A case opened from a row of a file whose results are stored is that row again: it counts once, with the file.
    source = aliased(Job)
    repeats_a_row = exists().where(
        source.id == Job.source_job_id, source.status == JobStatus.SUCCEEDED.value, source.purged_at.is_(None)
    )
    kept = (
        Job.model_name == model,
        Job.status == JobStatus.SUCCEEDED.value,
        Job.purged_at.is_(None),
        Job.finished_at >= func.timezone(zone, first_month),
        ~repeats_a_row,
    )

    def rows(*where: ColumnElement[bool]) -> Any:
        return func.count().filter(and_(*where))

    # A diagnosis confirmed later stands in for the one the file supplied, with its own training-row check.
    later = ConfirmedDiagnosis.job_id.is_not(None)
    truth = func.coalesce(ConfirmedDiagnosis.diagnosis, Result.supplied_diagnosis)
    trained = case((later, ConfirmedDiagnosis.trained_on), else_=Result.trained_on)
    scored = Result.diagnosis.is_not(None)
    diagnosed = and_(scored, truth.in_(("M", "B")))
    checked = and_(diagnosed, trained.is_(False))  # as the validation view: unknown is left out
    # Each job's results are counted first, so the month is worked out once a job rather than once a row.
    per_job = (
        select(
            Result.job_id,
            rows(scored).label("scored"),
            rows(Result.diagnosis == "M").label("answered_m"),
            rows(diagnosed, trained.is_(True)).label("training"),
            rows(checked, later).label("confirmed"),
            rows(checked, truth == "M", Result.diagnosis == "M").label("tp"),
            rows(checked, truth == "M", Result.diagnosis == "B").label("fn"),
            rows(checked, truth == "B", Result.diagnosis == "B").label("tn"),
            rows(checked, truth == "B", Result.diagnosis == "M").label("fp"),
        )
        .outerjoin(
            ConfirmedDiagnosis,
            and_(ConfirmedDiagnosis.job_id == Result.job_id, ConfirmedDiagnosis.row_number == Result.row_number),
        )
        .where(Result.job_id.in_(select(Job.id).where(*kept)))
        .group_by(Result.job_id)
        .subquery()
    )
    counts = ("scored", "answered_m", "training", "confirmed", "tp", "fn", "tn", "fp")
    found = session.execute(
        select(
            month,
            Job.model_version,
            func.count(),
            func.sum(Job.rows_rejected),
            func.sum(Job.rows_out_of_range),
            *(func.sum(per_job.c[name]) for name in counts),
        )
        .outerjoin(per_job, per_job.c.job_id == Job.id)
        .where(*kept)
        .group_by(month, Job.model_version)
        .order_by(month.desc(), Job.model_version.desc())
    ).all()
    out = []
    for m, version, job_count, *sums in found:
        rejected, flagged, scored_rows, answered_m, training, later_rows, tp, fn, tn, fp = (int(n or 0) for n in sums)
        out.append(
            {
                "month": m,
                "version": version,
                "jobs": job_count,
                "rows_scored": scored_rows,
                "rows_rejected": rejected,
                "rows_out_of_range": flagged,
                "answered_m": answered_m,
                "against_diagnosis": {
                    "rows": tp + fn + tn + fp,
                    "training_rows": training,
                    "confirmed_rows": later_rows,
                    "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
                    "sensitivity": proportion(tp, tp + fn),
                    "specificity": proportion(tn, tn + fp),
                },
            }
        )
    return out


FIELDS = (
    "month", "version", "jobs", "rows_scored", "answered_m", "rows_out_of_range", "rows_rejected",
    "rows_with_diagnosis", "training_rows", "confirmed_rows", "tp", "fp", "fn", "tn",
    "sensitivity", "sensitivity_ci_low", "sensitivity_ci_high", "specificity", "specificity_ci_low",
    "specificity_ci_high",
)  # fmt: skip


def table_rows(months: list[dict[str, Any]]) -> list[list[Any]]:
    """`by_month`'s entries as the CSV's rows, in `FIELDS`' order (an empty proportion is an empty cell)."""
    out = []
    for m in months:
        d = m["against_diagnosis"]
        c = d["confusion"]
        row = [m["month"], m["version"], m["jobs"], m["rows_scored"], m["answered_m"], m["rows_out_of_range"]]
        row += [m["rows_rejected"], d["rows"], d["training_rows"], d["confirmed_rows"]]
        row += [c["tp"], c["fp"], c["fn"], c["tn"]]
        for p in (d["sensitivity"], d["specificity"]):
            row += ["" if p[key] is None else p[key] for key in ("value", "ci_low", "ci_high")]
        out.append(row)
    return out
