"""What the job pages read: a sorted, filtered page of results, flag counts, probability bins, time left."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, exists, func, select
from sqlalchemy.orm import Session, aliased

from shared import jobs
from shared.schema import ConfirmedDiagnosis, Job, JobStatus, Result, User

SORTS = {
    "row": Result.row_number,
    "case_id": Result.case_id,
    "diagnosis": Result.diagnosis,
    "probability": Result.probability_malignant,
}
# The answer differs from the diagnosis the file supplied (M or B; other supplied text is not compared).
DIFFERS = and_(Result.supplied_diagnosis.in_(("M", "B")), Result.diagnosis != Result.supplied_diagnosis)
# The answer differs from the diagnosis confirmed after scoring (api/confirmed.py); an alias of the table, as the
# results download joins it too.
_CONFIRMED = aliased(ConfirmedDiagnosis)
CONFIRMED_DIFFERS = exists().where(
    _CONFIRMED.job_id == Result.job_id,
    _CONFIRMED.row_number == Result.row_number,
    _CONFIRMED.diagnosis != Result.diagnosis,
)
SHOWS = {
    "all": None,
    "rejected": Result.error.is_not(None),
    "flagged": Result.out_of_range.is_not(None),
    "differs": DIFFERS,
    "confirmed-differs": CONFIRMED_DIFFERS,
}
PAGE_SIZE = 50
BINS = 20


# Past any job's last page (2,000,000 rows of 50), and far from where OFFSET would overflow PostgreSQL's bigint.
MAX_PAGE = 1_000_000


@dataclass(frozen=True)
class TableQuery:
    """The results table's state, as it travels in the query string (so it works without JS)."""

    sort: str = "row"
    dir: str = "asc"
    show: str = "all"
    page: int = 1

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> TableQuery:
        sort = args.get("sort", "row")
        direction = args.get("dir", "asc")
        show = args.get("show", "all")
        try:
            page = min(max(int(args.get("page", 1)), 1), MAX_PAGE)
        except ValueError:
            page = 1
        return cls(
            sort=sort if sort in SORTS else "row",
            dir=direction if direction in ("asc", "desc") else "asc",
            show=show if show in SHOWS else "all",
            page=page,
        )

    def args(self, **changes: Any) -> dict[str, Any]:
        """Query-string arguments for this state with some changed, defaults left out."""
        changed = asdict(replace(self, **changes))
        return {k: v for k, v in changed.items() if v != getattr(TableQuery, k)}


def _where(job: Job, show: str) -> list[Any]:
    condition = SHOWS[show]
    return [Result.job_id == job.id] + ([condition] if condition is not None else [])


def shown_rows(session: Session, job: Job, show: str) -> int:
    """How many of the job's results the filter `show` keeps."""
    if show == "all":
        return job.rows_total
    return session.scalar(select(func.count()).select_from(Result).where(*_where(job, show))) or 0


def table_page(session: Session, job: Job, query: TableQuery) -> tuple[list[dict[str, Any]], int]:
    """One page of results in the asked order, and how many rows match the filter."""
    where = _where(job, query.show)
    matching = session.scalar(select(func.count()).select_from(Result).where(*where)) or 0
    column = SORTS[query.sort]
    order = column.desc().nulls_last() if query.dir == "desc" else column.asc().nulls_last()
    rows = session.scalars(
        select(Result)
        .where(*where)
        .order_by(order, Result.row_number)
        .offset((query.page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
    )
    records = [_record(r) for r in rows]
    confirmed = {
        c.row_number: c
        for c in session.scalars(
            select(ConfirmedDiagnosis).where(
                ConfirmedDiagnosis.job_id == job.id, ConfirmedDiagnosis.row_number.in_([r["row"] for r in records])
            )
        )
    }
    for r in records:
        r["confirmed"] = confirmed.get(r["row"])  # what the case turned out to be, recorded later (api/confirmed.py)
    return records, matching


def _record(r: Result) -> dict[str, Any]:
    return {
        "row": r.row_number,
        "case_id": r.case_id,
        "diagnosis": r.diagnosis,
        "probability_malignant": r.probability_malignant,
        "model_version": r.model_version,
        "supplied_diagnosis": r.supplied_diagnosis,
        "out_of_range": r.out_of_range,
        "warning": r.warning,
        "error": r.error,
        "trained_on": r.trained_on,
    }


def flag_counts(session: Session, job: Job) -> dict[str, int]:
    rejected, flagged, differs = session.execute(
        select(func.count(Result.error), func.count(Result.out_of_range), func.count().filter(DIFFERS)).where(
            Result.job_id == job.id
        )
    ).one()
    return {"rejected": rejected, "flagged": flagged, "differs": differs}


def probability_bins(session: Session, job: Job, bins: int = BINS) -> list[int]:
    """How many scored rows fall in each of `bins` equal slices of [0, 1] (the last one includes 1)."""
    p = Result.probability_malignant
    bucket = func.least(func.width_bucket(p, 0.0, 1.0, bins), bins) - 1  # 1.0 falls in the last slice
    counts = [0] * bins
    query = select(bucket, func.count()).where(Result.job_id == job.id, p.is_not(None)).group_by(bucket)
    for index, n in session.execute(query):
        counts[int(index)] = n
    return counts


def diagnosis_counts(session: Session, job_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, int]]:
    """M and B counts for several jobs at once (the jobs list)."""
    out: dict[uuid.UUID, dict[str, int]] = {i: {"M": 0, "B": 0} for i in job_ids}
    if job_ids:
        query = (
            select(Result.job_id, Result.diagnosis, func.count())
            .where(Result.job_id.in_(job_ids), Result.diagnosis.is_not(None))
            .group_by(Result.job_id, Result.diagnosis)
        )
        for job_id, diagnosis, n in session.execute(query):
            out[job_id][str(diagnosis)] = n
    return out


def confirmation_home(session: Session, job: Job, row: int) -> tuple[Job, int]:
    """Where row `row` of `job` keeps its confirmed diagnosis. A case opened from a file's row (api.row_case) is
    that row scored again by the same model: its diagnosis is the row's, kept on the file's job while the file's
    results are there, so the file's figures count it once and its page shows it. Any other row keeps its own."""
    if row == 1 and job.source_job_id is not None and job.source_row is not None:
        source = session.get(Job, job.source_job_id)
        if source is not None and source.status == JobStatus.SUCCEEDED.value and source.purged_at is None:
            return source, job.source_row
    return job, row


def confirmation(session: Session, job: Job, row: int) -> ConfirmedDiagnosis | None:
    """Row `row`'s confirmed diagnosis, wherever it is kept (`confirmation_home`)."""
    home, number = confirmation_home(session, job, row)
    return session.get(ConfirmedDiagnosis, (home.id, number))


@dataclass(frozen=True)
class RecentCase:
    job: Job
    case_id: str | None
    diagnosis: str | None  # None until answered, or for a case whose values were refused
    probability: float | None
    confirmed: str | None = None  # M or B once the diagnosis is confirmed (api/confirmed.py)


def recent_cases(session: Session, owner_id: int, limit: int = 5) -> list[RecentCase]:
    """The person's latest single cases, newest first, each with its answer once there is one to show, and the
    diagnosis confirmed later where one is recorded."""
    # As confirmation_home: a case opened from a row of a file whose results are there shows that row's.
    source, own, of_row = aliased(Job), aliased(ConfirmedDiagnosis), aliased(ConfirmedDiagnosis)
    live = (source.id == Job.source_job_id) & (source.status == JobStatus.SUCCEEDED.value) & source.purged_at.is_(None)
    confirmed = case((source.id.is_not(None), of_row.diagnosis), else_=own.diagnosis)
    found = session.execute(
        select(Job, Result.case_id, Result.diagnosis, Result.probability_malignant, confirmed)
        .outerjoin(Result, (Result.job_id == Job.id) & (Result.row_number == 1))
        .outerjoin(own, (own.job_id == Job.id) & (own.row_number == 1))
        .outerjoin(source, live)
        .outerjoin(of_row, (of_row.job_id == source.id) & (of_row.row_number == Job.source_row))
        .where(Job.owner_id == owner_id, Job.rows_total == 1, Job.input_format == "json")
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(limit)
    )
    cases = []
    for job, case_id, diagnosis, probability, confirmed in found:
        answered = job.status == JobStatus.SUCCEEDED.value and job.purged_at is None
        cases.append(
            RecentCase(job, case_id, diagnosis, probability, confirmed)
            if answered
            else RecentCase(job, None, None, None)
        )
    return cases


def single_case_ids(session: Session, listed: list[Job]) -> dict[uuid.UUID, str | None]:
    """The case id of each single case among the jobs (None for a case sent without one, or not yet scored)."""
    ids = [job.id for job in listed if job.rows_total == 1 and job.input_format == "json"]
    found: dict[uuid.UUID, str | None] = dict.fromkeys(ids)
    if ids:
        query = select(Result.job_id, Result.case_id).where(Result.job_id.in_(ids), Result.row_number == 1)
        found.update({job_id: case_id for job_id, case_id in session.execute(query)})
    return found


def source_names(session: Session, listed: list[Job]) -> dict[uuid.UUID, str]:
    """For the cases opened from a row of another job: that job's file name, or its short id when it had none."""
    ids = {job.source_job_id for job in listed if job.source_job_id is not None}
    if not ids:
        return {}
    query = select(Job.id, Job.input_filename).where(Job.id.in_(ids))
    return {job_id: name or f"job {str(job_id)[:8]}" for job_id, name in session.execute(query)}


def owner_email(session: Session, job: Job) -> str | None:
    """Who sent the job (None for one whose account is gone, or made before accounts)."""
    return session.scalar(select(User.email).where(User.id == job.owner_id)) if job.owner_id else None


def opened_cases(session: Session, job: Job) -> int:
    """How many single cases opened from the job's rows still hold their values (each a copy of its row's)."""
    query = select(func.count()).where(Job.source_job_id == job.id, Job.purged_at.is_(None))
    return int(session.scalar(query) or 0)


def jobs_ahead(session: Session, job: Job) -> int | None:
    """While the job is queued: the unfinished jobs on its queue (single cases, or files) sent before it, which the
    workers take first; None once a worker has it."""
    if job.status != JobStatus.QUEUED.value:
        return None
    small = Job.rows_total.between(1, jobs.SMALL_JOB_ROWS)
    same_queue = small if 0 < job.rows_total <= jobs.SMALL_JOB_ROWS else ~small
    unfinished = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
    query = select(func.count()).where(Job.status.in_(unfinished), Job.created_at < job.created_at, same_queue)
    return int(session.scalar(query) or 0)


def waiting_sentence(ahead: int | None) -> str:
    """A queued job's wait as the page's script words it."""
    if not ahead:
        return "Waiting for a worker."
    return f"Waiting for a worker: {ahead} {'job is' if ahead == 1 else 'jobs are'} ahead of it."


def seconds_left(job: Job, now: datetime) -> float | None:
    """Time left at the rate so far, or None before there is a rate to go by."""
    done = job.rows_scored + job.rows_rejected
    if job.status != JobStatus.RUNNING.value or job.started_at is None or not 0 < done < job.rows_total:
        return None
    elapsed = (now - job.started_at).total_seconds()
    return elapsed / done * (job.rows_total - done) if elapsed > 0 else None


def time_left_sentence(seconds: float | None) -> str:
    """The time left as the page's script words it ("About 12 s left."), or "" without an estimate."""
    if seconds is None:
        return ""
    if seconds < 1:
        return "Less than a second left."
    if seconds < 90:
        return f"About {round(seconds)} s left."
    minutes = round(seconds / 60)
    return f"About {minutes} min left." if minutes < 60 else f"About {minutes // 60} h {minutes % 60} min left."
