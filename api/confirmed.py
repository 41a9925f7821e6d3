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
from typing import Any

import numpy as np
from flask import abort
from flask_login import current_user
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from api import row_case
from api.access import record
from api.database import db
from api.registry import UnknownModel, model_meta
from shared import jobs
from shared.intake import validate_cases
from shared.intake.cases import loads
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
    found = []
    if diagnosis not in DIAGNOSES:
        found.append('diagnosis: must be "M" (malignant) or "B" (benign)')
    if basis not in BASES:
        found.append(f"basis: must be one of {', '.join(BASES)}")
    return found


def recorded(session: Session, job: Job, row: int) -> ConfirmedDiagnosis | None:
    return session.get(ConfirmedDiagnosis, (job.id, row))


def scored_result(session: Session, job: Job, row: int) -> Result:
    """The row's result, which a diagnosis can be confirmed for: 410 once the results are removed, 409 for a job
    that has not succeeded or a row that was rejected, 404 for a row the job does not have."""
    if job.purged_at is not None:
        abort(410, description="the job's results have been removed")
    if job.status != JobStatus.SUCCEEDED.value:
        abort(409, description=f"the job is {job.status}; a diagnosis is confirmed for a row of a job that succeeded")
    result = session.get(Result, (job.id, row)) if 1 <= row <= job.rows_total else None
    if result is None:
        abort(404, description=f"job {job.id} has no row {row}")
    if result.diagnosis is None:
        abort(409, description=f"row {row} was not scored ({result.error}): there is no answer to check")
    return result


def confirm(job: Job, row: int, diagnosis: str, basis: str) -> ConfirmedDiagnosis:
    """Record (or correct) row `row`'s confirmed diagnosis, audited; the caller has checked `problems`."""
    session = db()
    session.refresh(job, with_for_update={"read": True})  # a removal waits for this to commit, and is seen before
    result = scored_result(session, job, row)
    before = recorded(session, job, row)
    was = None if before is None else f"{before.diagnosis} by {before.basis}"
    trained = _trained_on(session, job, result)
    values = {"diagnosis": diagnosis, "basis": basis, "trained_on": trained, "recorded_by": current_user.email}
    session.execute(
        insert(ConfirmedDiagnosis)
        .values(job_id=job.id, row_number=row, recorded_at=utcnow(), **values)
        .on_conflict_do_update(index_elements=["job_id", "row_number"], set_={**values, "recorded_at": utcnow()})
    )
    detail = f"row {row}: {diagnosis} by {basis}" + (f" (was {was})" if was else "")
    record("case.confirm", job, detail=detail)
    session.commit()
    found = recorded(session, job, row)
    assert found is not None
    session.refresh(found)
    return found


def withdraw(job: Job, row: int) -> None:
    """Take back row `row`'s confirmed diagnosis (recorded against the wrong case, say), audited; 404 if none."""
    session = db()
    scored_result(session, job, row)
    found = session.get(ConfirmedDiagnosis, (job.id, row), with_for_update=True)
    if found is None:
        abort(404, description=f"row {row} of job {job.id} has no confirmed diagnosis")
    record("case.unconfirm", job, detail=f"row {row}: {found.diagnosis} by {found.basis} withdrawn")
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


def _trained_on(session: Session, job: Job, result: Result) -> bool | None:
    """Whether the row's values were a training row of the model that scored it; None if that model is no longer
    published as it was (its metadata's row hashes are the scoring model's only while its sha256 is)."""
    if result.trained_on is not None:
        return result.trained_on  # worked out when the row was scored (it carried a diagnosis)
    try:
        model = model_meta(job.model_name)
    except UnknownModel:
        return None
    if model["sha256"] != job.model_sha256:
        return None
    if job.input_format == "json":
        buffer = io.BytesIO()
        jobs.spool_input(session, job.id, buffer)
        stored: Any = loads(buffer.getvalue())
        case = stored["cases"][result.row_number - 1]
    else:
        case = row_case.row_values(session, job, result, model["features"])
    batch = validate_cases([case], model["features"], feature_ranges(model))
    if not batch.ok.all():  # the job scored these values: reading them back differently would be a defect
        raise RuntimeError(f"row {result.row_number} of job {job.id} no longer reads as it was scored")
    return bool(trained_on(model, np.asarray(batch.X))[0])
