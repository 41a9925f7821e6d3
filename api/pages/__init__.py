"""The pages: a single-case form, a spreadsheet upload, the job page, the list of jobs and the model cards.

Every page works without JavaScript; the scripts in static/ only make it quicker. The form and upload routes
answer JSON instead of a page or a redirect when the request asks for it (`Accept: application/json`).

One blueprint, its routes in modules: `scoring` (the form, a case, an upload), `jobs` (the list, a job's page and
what it offers), `printed` (a case's card and the PDF reports), `models` (the model cards).
"""

from __future__ import annotations

from flask import Blueprint, jsonify, redirect, request, url_for
from flask.typing import ResponseReturnValue

from shared.schema import Job

bp = Blueprint("pages", __name__)
COMPARE_ROWS = 500


def wants_json() -> bool:
    return request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json"


def accepted(job: Job) -> ResponseReturnValue:
    page = url_for("pages.job_page", job_id=job.id)
    if not wants_json():
        return redirect(page, 303)
    body = {
        "job": page,
        "status_url": url_for("api_v1.get_job", job_id=job.id),
        "results_url": url_for("api_v1.get_results", job_id=job.id, format="json"),
    }
    return jsonify(body), 202, {"Location": page}


# The routes join `bp` as their modules load; they import the names above, so they come last.
from api.pages import jobs, models, printed, scoring  # noqa: E402, F401
