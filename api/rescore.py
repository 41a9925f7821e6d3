"""Another model for a job's stored input: which models its columns fit, and a new job that scores it again."""

from __future__ import annotations

import tempfile
import uuid
from collections import OrderedDict
from typing import Any

from flask_login import current_user
from sqlalchemy.orm import Session

from api.auth import require
from api.database import db
from api.registry import all_models, model_meta
from api.submit import check_in_flight, queue
from shared import jobs
from shared.intake import FileRejected, Layout, features_in, read_header, read_rows
from shared.modelstore import fitting
from shared.schema import Job, JobInput, JobKind, Role

#: A stored input never changes: its features are read once per web process.
_FEATURES: OrderedDict[uuid.UUID, frozenset[str]] = OrderedDict()
_CACHE_SIZE = 256


def input_features(session: Session, job: Job) -> frozenset[str] | None:
    """The published features the job's stored input has columns for; None when the input is gone (purged)."""
    if job.id in _FEATURES:
        return _FEATURES[job.id]
    found = _read_features(session, job)
    if found is not None:
        _FEATURES[job.id] = found
        while len(_FEATURES) > _CACHE_SIZE:
            _FEATURES.popitem(last=False)
    return found


def _read_features(session: Session, job: Job) -> frozenset[str] | None:
    source = session.get(JobInput, job.id)
    if source is None:
        return None
    with tempfile.TemporaryFile() as spooled:
        try:
            jobs.spool_part(session, job.id, 0, spooled)  # part 0 starts with the header
        except LookupError:
            return None
        spooled.seek(0)
        try:
            if source.layout == Layout.XLSX:  # the start of the sheet only, not the whole sheet
                header = read_header(spooled, job.input_filename or "input.xlsx")
            else:
                header, _ = read_rows(spooled, source.layout, job.input_filename)
        except FileRejected:
            return frozenset()  # a workbook the worker refused: it fits no model
        return features_in(header)


def better_models(session: Session, job: Job) -> list[dict[str, Any]]:
    """The models the job's file also fits that have a better held-out ROC AUC than the one it was scored with."""
    if job.kind != JobKind.UPLOAD.value or job.purged_at is not None:
        return []
    present = input_features(session, job)
    if not present:
        return []
    current = float(model_meta(job.model_name)["metrics"]["roc_auc"]) if _known(job.model_name) else -1.0
    return [m for m in fitting(all_models(), present) if float(m["metrics"]["roc_auc"]) > current]


def fitting_models(session: Session, job: Job) -> list[dict[str, Any]]:
    """Every model the job's stored file has the columns of, best held-out ROC AUC first; none once it is removed."""
    present = input_features(session, job) if job.purged_at is None else None
    return fitting(all_models(), present) if present else []


def _known(name: str) -> bool:
    return any(m["name"] == name for m in all_models())


def rescore(job: Job, model_name: str | None) -> Job:
    """Queue a new job on `job`'s stored input with another model (the best that fits when none is named).

    FileRejected when the input lacks columns the model needs (listing them) or is gone; UnknownModel for a name
    nobody published.
    """
    require(Role.LAB, Role.ADMIN)
    session = db()
    present = input_features(session, job)
    if present is None:
        raise FileRejected(["the job's input has been removed; upload the file again"])
    if model_name:
        model = model_meta(model_name)
    else:
        fits = fitting(all_models(), present)
        model = fits[0] if fits else model_meta(None)
    missing = [f for f in model["features"] if f not in present]
    if missing:
        raise FileRejected([f"the input lacks columns model {model['name']} needs; missing required columns: "
                            + ", ".join(missing)])  # fmt: skip
    check_in_flight(session)
    try:
        new = jobs.create_rescore(session, job, model=model, owner_id=current_user.user_id)
    except LookupError:
        session.rollback()
        raise FileRejected(["the job's input has been removed; upload the file again"]) from None
    return queue(session, new, detail=f"rescore of job {job.id} with model {model['name']}")
