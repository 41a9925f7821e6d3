"""A single case as a person reads it: what was entered, the answer, how sure, and why.

One view feeds the answer card under the form, the case's job page, its print stylesheet and its PDF report, so
the four always say the same thing.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from api import charts, feature_labels, job_views, results
from shared import jobs
from shared.features import CASE_ID, FEATURES
from shared.intake.cells import cell_text
from shared.intake.columns import resolve_name
from shared.intake.validate import RANGE_MARGIN
from shared.schema import ConfirmedDiagnosis, Job, JobInput
from shared.spreadsheets import utf8_safe


@dataclass(frozen=True)
class Measurement:
    field: feature_labels.FeatureField
    entered: str  # as it was sent, text
    outside: str | None  # "below" or "above" the typical range, beyond its margin; None inside it
    contribution: float | None


@dataclass(frozen=True)
class Case:
    job: Job
    case_id: str | None
    result: dict[str, Any]  # the result record, as the API gives it
    measurements: list[Measurement]
    chart: charts.Contributions | None
    submitted_by: str | None
    submitted_at: datetime
    source: Job | None = None  # the job whose row this case was opened from (api/row_case.py), while it exists
    confirmed: ConfirmedDiagnosis | None = None  # what the case turned out to be, recorded later (api/confirmed.py)

    @property
    def scored(self) -> bool:
        return self.result["diagnosis"] is not None

    @property
    def margin_percent(self) -> int:
        """How far beyond the training range (as a share of it) a value is flagged."""
        return round(RANGE_MARGIN * 100)


def is_single_case(job: Job) -> bool:
    return job.rows_total == 1 and job.input_format == "json"


def view(session: Session, job: Job, model: dict[str, Any]) -> Case | None:
    """The job's one case, once it has succeeded; None for any other job."""
    if not is_single_case(job) or job.status != "succeeded" or job.purged_at is not None:
        return None
    records = results.few_records(session, job)
    source = session.get(JobInput, job.id)
    if not records or source is None:
        return None
    record = records[0]
    entered = _entered(session, job)
    explanation = record.get("explanation") or {}
    contributions: dict[str, float] = explanation.get("contributions") or {}
    flagged = record["out_of_range"] or ""
    fields = feature_labels.fields(model)
    measurements = [
        Measurement(f, entered.get(f.name, ""), _outside(f, flagged), contributions.get(f.name)) for f in fields
    ]
    chart = None
    if contributions and record["probability_malignant"] is not None:
        labels = {f.name: f.label for f in fields}
        chart = charts.contributions(labels, explanation["base"], contributions, record["probability_malignant"])
    owner = job_views.owner_email(session, job)
    origin = session.get(Job, job.source_job_id) if job.source_job_id else None
    confirmed = job_views.confirmation(session, job, record["row"])
    return Case(job, record["case_id"], record, measurements, chart, owner, job.created_at, origin, confirmed)


def form_values(session: Session, job: Job) -> dict[str, str] | None:
    """A single case's case id and measurements as sent, keyed as the Score page's form takes them; None for any
    other job, or a case whose values were removed."""
    if not is_single_case(job) or job.purged_at is not None:
        return None
    entered = _entered(session, job)
    values = {name: text for name, text in entered.items() if name in FEATURES}
    if entered.get(CASE_ID):
        values["case_id"] = entered[CASE_ID]
    return values


def _entered(session: Session, job: Job) -> dict[str, str]:
    """The case's values as sent, by published feature name (the keys may have been any accepted spelling)."""
    buffer = io.BytesIO()
    jobs.spool_input(session, job.id, buffer)
    case = json.loads(buffer.getvalue())["cases"][0]
    found: dict[str, str] = {}
    for key, value in case.items():
        name = resolve_name(key) if isinstance(key, str) else None
        if name is not None:
            found[name] = utf8_safe(cell_text(value))  # a lone surrogate cannot go into a UTF-8 page
    return found


def _outside(field: feature_labels.FeatureField, flagged: str) -> str | None:
    """Whether the validator flagged this measurement beyond its training range (and on which side)."""
    for note in flagged.split("; "):
        if note.startswith(f"{field.name} "):
            return "below" if " below " in note else "above"
    return None
