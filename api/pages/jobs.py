"""The jobs: the list, searched and filtered; a job's page with its figures; and what it offers: confirm a held
job, cancel, remove, rescore, compare, open a row as a case, record a case's confirmed diagnosis."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session

from api import (
    cancelling,
    cases,
    charts,
    compare,
    confirmed,
    job_search,
    job_views,
    removal,
    rescore,
    results,
    review,
    row_case,
    validation,
)
from api.access import may_see, record, viewer
from api.api_v1 import find_job
from api.database import db
from api.pages import COMPARE_ROWS, accepted, bp
from api.registry import UnknownModel, all_models, model_meta
from shared import spreadsheets
from shared.intake import FileRejected
from shared.schema import Job, JobKind, JobStatus, Role, User


@bp.get("/jobs")
def job_list() -> ResponseReturnValue:
    """The jobs the person may see, newest first, searched and filtered, a page at a time (api.job_search)."""
    who, session = viewer(), db()
    context: dict[str, Any] = {
        "models": [m["name"] for m in all_models()],
        "statuses": job_search.STATUSES,
        "owners": list(session.scalars(select(User.email).order_by(User.email))) if who.is_admin else [],
    }
    try:
        wanted = job_search.JobFilter.from_args(request.args, who)
    except job_search.BadFilter as exc:
        refused = job_search.JobFilter()
        return render_template("jobs.html", wanted=refused, problems=exc.problems, jobs=[], **context), 400
    found = job_search.listing(session, wanted, who)
    listed = [job for job, _ in found.jobs]
    return render_template(
        "jobs.html",
        wanted=wanted,
        jobs=listed,
        owner_of={job.id: email for job, email in found.jobs},
        next_after=found.next_after,
        counts=job_views.diagnosis_counts(session, [j.id for j in listed]),
        cases=job_views.single_case_ids(session, listed),
        sources=job_views.source_names(session, listed),
        **context,
    )


@bp.get("/jobs/<job_id>")
def job_page(job_id: str) -> ResponseReturnValue:
    return _job_page(find_job(job_id))


def _job_page(job: Job, **shown: Any) -> str:
    """The job's page; `shown` adds to what it shows (a paste of confirmed diagnoses sent back with its problems)."""
    session = db()
    record("job.view", job)
    session.commit()
    query = job_views.TableQuery.from_args(request.args)
    context: dict[str, Any] = dict(shown)
    case = cases.view(session, job, model_meta(job.model_name))
    if case is not None:
        context.update(case=case, single_case_id=case.case_id)
    elif job.status == JobStatus.SUCCEEDED.value and job.purged_at is None:
        rows, matching = job_views.table_page(session, job, query)
        pages = max(1, -(-matching // job_views.PAGE_SIZE))
        if query.page > pages:  # a page past the end shows the last one
            query = replace(query, page=pages)
            rows, matching = job_views.table_page(session, job, query)
        same_input = compare.same_input_jobs(session, job, may_see)
        context.update(
            rows=rows,
            matching=matching,
            pages=pages,
            chart=charts.histogram(job_views.probability_bins(session, job)),
            better=rescore.better_models(session, job),
            model_auc=model_meta(job.model_name)["metrics"]["roc_auc"],
            same_input=same_input,
            confirmed_summary=confirmed.summary(session, job),
            confirmed_elsewhere=confirmed.elsewhere(session, same_input),
            **figures(session, job),
        )
    left = job_views.seconds_left(job, datetime.now(UTC))
    lab = current_user.may(Role.LAB, Role.ADMIN)
    return render_template(
        "job.html",
        job=job,
        source=session.get(Job, job.source_job_id) if job.source_job_id else None,
        owner=job_views.owner_email(session, job),
        query=query,
        page_size=job_views.PAGE_SIZE,
        time_left=job_views.time_left_sentence(left),
        waiting=job_views.waiting_sentence(job_views.jobs_ahead(session, job)),
        notice=results.NOTICE,
        may_confirm=lab,
        may_rescore=lab and job.kind == JobKind.UPLOAD.value and job.purged_at is None,
        fits=rescore.fitting_models(session, job) if job.status == JobStatus.CANCELLED.value else [],
        bases=confirmed.BASES.items(),
        opened=job_views.opened_cases(session, job) if job.kind == JobKind.UPLOAD.value and not job.purged_at else 0,
        xlsx_max_rows=spreadsheets.XLSX_MAX_ROWS,
        **context,
    )


@bp.post("/jobs/<job_id>/confirm")
def confirm_job(job_id: str) -> ResponseReturnValue:
    """The job page's button: release a held job's results, then show them."""
    review.confirm(find_job(job_id))
    return redirect(url_for("pages.job_page", job_id=job_id), 303)


@bp.post("/jobs/<job_id>/cancel")
def cancel_job(job_id: str) -> ResponseReturnValue:
    """The job page's button: stop a job that is queued or running, then show it (one that finished first, saying
    so: the page's button was pressed as the job ended)."""
    job = find_job(job_id)
    if not cancelling.cancel(job):
        flash(cancelling.too_late(job).capitalize() + ".")
    return redirect(url_for("pages.job_page", job_id=job_id), 303)


@bp.post("/jobs/<job_id>/purge")
def purge_job(job_id: str) -> ResponseReturnValue:
    """The job page's removal form, whose box must be ticked: remove the file and results, then show the job."""
    job = find_job(job_id)
    if request.form.get("understood") != "yes":
        abort(422, description="tick the box to say you understand that the file and results cannot be recovered")
    removal.remove(job)
    return redirect(url_for("pages.job_page", job_id=job_id), 303)


@bp.post("/jobs/<job_id>/rows/<int:row>/confirmed-diagnosis", endpoint="confirm_diagnosis")
def confirm_diagnosis(job_id: str, row: int) -> ResponseReturnValue:
    """The case page's form: record (or correct) what the case turned out to be, then show the case."""
    job = find_job(job_id)
    diagnosis, basis = request.form.get("diagnosis"), request.form.get("basis")
    wrong = confirmed.problems(diagnosis, basis)
    if wrong:
        abort(422, description="; ".join(wrong))
    found = confirmed.confirm(job, row, str(diagnosis), str(basis))
    if found.job_id == job.id:
        flash("The confirmed diagnosis is recorded.")
    else:
        flash(f"The confirmed diagnosis is recorded on row {found.row_number} of the file this case was opened from.")
    return redirect(url_for("pages.job_page", job_id=job_id), 303)


@bp.post("/jobs/<job_id>/confirmed-diagnoses", endpoint="confirm_diagnoses")
def confirm_diagnoses(job_id: str) -> ResponseReturnValue:
    """A file job's page: record the confirmed diagnoses pasted from a spreadsheet, all or none; the page again
    with the paste and every problem when any line has one."""
    job = find_job(job_id)
    pasted = request.form.get("pasted", "")
    entries, problems = confirmed.entries_from_paste(pasted)
    if not problems:
        problems = confirmed.confirm_many(job, entries, request.form.get("basis"))
    return _recorded(job, len(entries), problems, pasted=pasted, basis=request.form.get("basis"))


@bp.post("/jobs/<job_id>/confirmed-diagnoses/copy", endpoint="copy_confirmed_diagnoses")
def copy_confirmed_diagnoses(job_id: str) -> ResponseReturnValue:
    """A file job's page: bring the confirmed diagnoses of another job on the same file (a rescore, say), all or
    none; the page again with every problem when any row has one."""
    job = find_job(job_id)
    count, problems = confirmed.copy_from(job, find_job(request.form.get("source", "")))
    return _recorded(job, count, problems)


def _recorded(job: Job, count: int, problems: list[str], **shown: Any) -> ResponseReturnValue:
    """After several confirmed diagnoses were sent: the job's Confirmed diagnoses, or, when nothing was recorded,
    the page again with every problem (and what `shown` gives back, a paste say)."""
    if problems:
        flash(f"Nothing was recorded: {len(problems)} {'problem' if len(problems) == 1 else 'problems'}, listed under "
              "Confirmed diagnoses.", "warning")  # fmt: skip
        return _job_page(job, paste_problems=problems, **shown), 422
    flash(f"{count:,} confirmed {'diagnosis is' if count == 1 else 'diagnoses are'} recorded.")
    return redirect(url_for("pages.job_page", job_id=job.id, _anchor="confirmed"), 303)


@bp.post("/jobs/<job_id>/rows/<int:row>/confirmed-diagnosis/withdraw", endpoint="withdraw_confirmed_diagnosis")
def withdraw_confirmed_diagnosis(job_id: str, row: int) -> ResponseReturnValue:
    """The case page's button: take back a confirmed diagnosis recorded by mistake, then show the case."""
    confirmed.withdraw(find_job(job_id), row)
    flash("The confirmed diagnosis is withdrawn.")
    return redirect(url_for("pages.job_page", job_id=job_id), 303)


def figures(session: Session, job: Job) -> dict[str, Any]:
    """What a succeeded job's page and its PDF report both show: the counts, and the figures against a known
    diagnosis (`v`, drawn with `roc_chart`, beside the model's held-out `model_metrics`)."""
    return {
        "counts": results.counts(session, job),
        "flags": job_views.flag_counts(session, job),
        "v": validation.validation(session, job),
        "roc_chart": roc_chart,
        "model_metrics": model_meta(job.model_name)["metrics"],
    }


def roc_chart(figures: dict[str, Any], reference: str) -> charts.RocCurve:
    auc = figures["roc_auc"]
    return charts.roc(figures["roc_curve"], auc["value"], auc["ci_low"], auc["ci_high"], figures["rows"], reference)


@bp.post("/jobs/<job_id>/rescore", endpoint="rescore")
def rescore_job(job_id: str) -> ResponseReturnValue:
    """One click on the job page: score the same stored input with another model, then show the new job."""
    job = find_job(job_id)
    try:
        new = rescore.rescore(job, request.form.get("model") or None)
    except (FileRejected, UnknownModel) as exc:
        problems = exc.problems if isinstance(exc, FileRejected) else [str(exc.args[0])]
        abort(422, description="; ".join(problems))
    return accepted(new)


@bp.get("/jobs/<job_id>/compare/<other_id>")
def compare_page(job_id: str, other_id: str) -> ResponseReturnValue:
    """The rows whose answers differ between two jobs on the same input (the first COMPARE_ROWS; all in the CSV)."""
    first, second = find_job(job_id), find_job(other_id)
    session = db()
    try:
        found = compare.summary(session, first, second)
    except compare.NotComparable as exc:
        abort(409, description=str(exc))
    record("job.view", first, detail=f"compared with job {second.id}")
    session.commit()
    rows = list(compare.differing_rows(session, first, second, limit=COMPARE_ROWS))
    known = compare.against_known(session, first, second)
    return render_template(
        "compare.html", found=found, known=known, rows=rows, shown=COMPARE_ROWS, notice=results.NOTICE
    )


@bp.post("/jobs/<job_id>/rows/<int:row>/case", endpoint="open_row")
def open_row(job_id: str, row: int) -> ResponseReturnValue:
    """The rows table's button: score one row again as a single case, with its reasons, then show it."""
    return accepted(row_case.open_row(find_job(job_id), row))
