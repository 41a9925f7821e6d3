"""The JSON API, version 1: the blueprint, and what its modules share (a job as JSON, finding one the caller may
see, the downloads' format and headers). The routes are in `jobs` (send, list, follow and change jobs), `answers`
(results, errors, validation, comparisons) and `catalogue` (models, templates, the OpenAPI document)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, abort, request

from api import job_views, schemas
from api.access import may_see
from api.database import db
from shared.schema import Job, JobStatus, utcnow

bp = Blueprint("api_v1", __name__, url_prefix="/api/v1")
TERMINAL = tuple(status.value for status in JobStatus if status.terminal)
# A job this small that has succeeded answers `?wait=` with its results too, so a single case is one request.
INLINE_RESULTS = 100


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


def job_json(job: Job) -> dict[str, Any]:
    """The job as the API shows it."""
    return {
        "id": str(job.id),
        "kind": job.kind,
        "status": job.status,
        "rows_total": job.rows_total,
        "rows_scored": job.rows_scored,
        "rows_rejected": job.rows_rejected,
        "seconds_left": _rounded(job_views.seconds_left(job, utcnow())),
        "jobs_ahead": job_views.jobs_ahead(db(), job),
        "rows_out_of_range": job.rows_out_of_range,
        # Set when the input looked misread: why the job was held (status needs_review) and, once released, by whom.
        "review": job.review,
        "reviewed_at": _iso(job.reviewed_at),
        "reviewed_by": job.reviewed_by,
        "cancelled_by": job.cancelled_by,  # who stopped it (status cancelled); finished_at says when
        "purged_at": _iso(job.purged_at),  # when its file and results were removed
        "purged_by": job.purged_by,  # by whom; null for the retention purge
        "model": {"name": job.model_name, "version": job.model_version, "sha256": job.model_sha256},
        "input": {
            "filename": job.input_filename,
            "sha256": job.input_sha256,
            "format": job.input_format,
            "delimiter": job.input_delimiter,
        },
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "attempts": job.attempts,
        "error": job.error,
        "source": None if job.source_row is None else {"job_id": _id(job.source_job_id), "row": job.source_row},
    }


def _id(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


def find_job(job_id: str) -> Job:
    try:
        parsed = uuid.UUID(job_id)
    except ValueError:
        abort(404, description="no such job")
    job = db().get(Job, parsed)
    if job is None or not may_see(job):
        abort(404, description="no such job")  # someone else's job answers exactly like a missing one
    return job


def wanted_format(
    query: type[
        schemas.ResultsQuery | schemas.ErrorsQuery | schemas.TemplateQuery | schemas.CompareQuery | schemas.UseQuery
    ],
) -> str:
    """The `?format=` asked for, read with the handler's query model (400 for any other)."""
    return str(query.parse(request.args).format)


def attachment(body: Any, filename: str, mimetype: str) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"}
    return Response(body, mimetype=mimetype, headers=headers)


# The routes join `bp` as their modules load; they import the names above, so they come last.
from api.api_v1 import answers, catalogue, jobs  # noqa: E402, F401
