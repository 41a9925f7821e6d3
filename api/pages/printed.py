"""A single case's answer card (the form's answer in place) and the PDF reports of a case and of a job."""

from __future__ import annotations

from flask import abort, render_template
from flask.typing import ResponseReturnValue

from api import cases, job_views, reports, results
from api.access import record
from api.api_v1 import find_job
from api.database import db
from api.pages import bp
from api.pages.jobs import figures
from api.registry import model_meta
from shared.schema import JobStatus


def _single_case(job_id: str) -> cases.Case:
    """The finished single case of this job, or 404 (a job of several rows, or not finished)."""
    job = find_job(job_id)
    case = cases.view(db(), job, model_meta(job.model_name))
    if case is None:
        abort(404, description="this job is not a single case that has been scored")
    return case


@bp.get("/jobs/<job_id>/case")
def case_card(job_id: str) -> ResponseReturnValue:
    """The answer card of a single case, as a fragment of HTML (the form's script shows it under the form)."""
    case = _single_case(job_id)
    record("job.view", case.job, detail="answer card")
    db().commit()
    return render_template("_case.html", case=case, notice=results.NOTICE)


@bp.get("/jobs/<job_id>/report.pdf")
def case_report(job_id: str) -> ResponseReturnValue:
    """The job's report as a PDF: a single case's is its page's card; a file's, what was scored, by which model,
    what came of it and how it compares with a known diagnosis (confirmed or supplied). 404 until the job has
    succeeded."""
    job = find_job(job_id)
    session = db()
    case = cases.view(session, job, model_meta(job.model_name))
    if case is None and not (job.status == JobStatus.SUCCEEDED.value and job.purged_at is None):
        abort(404, description="a report is made once the job has succeeded, while its results are kept")
    record("job.download", job, detail="report as PDF")
    session.commit()
    if case is not None:
        html, name = render_template("report.html", case=case, notice=results.NOTICE), f"cytoscore-case-{job.id}.pdf"
    else:
        html = render_template(
            "job_report.html",
            job=job,
            owner=job_views.owner_email(session, job),
            notice=results.NOTICE,
            **figures(session, job),
        )
        name = f"cytoscore-job-{job.id}.pdf"
    headers = {"Content-Type": "application/pdf", "Content-Disposition": f'attachment; filename="{name}"'}
    return reports.pdf(html), 200, headers
