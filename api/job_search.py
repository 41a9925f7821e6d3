"""The jobs list: searched, filtered, and paged newest first after the last row seen.

Keyset pagination: a page is the next `limit` jobs in (created_at, id) order, descending, after the cursor of the
last job of the previous page, so a job created while someone pages never shifts a page or shows twice, and page
1,000 costs what page 1 does. Migration 0014's indexes, (created_at, id) and (owner_id, created_at, id), give
that order for everyone's jobs and for one owner's.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, exists, select, tuple_
from sqlalchemy.orm import Session

from api import times
from shared.schema import Job, JobStatus, Result, User

PAGE_SIZE = 50
MAX_LIMIT = 200
STATUSES = tuple(s.value for s in JobStatus)


class BadFilter(ValueError):
    """The list's arguments, refused: each problem names the argument, the value and why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Viewer:
    """Who asks: an admin sees every job and its owner; anyone else only their own jobs."""

    user_id: int
    is_admin: bool


@dataclass(frozen=True)
class JobFilter:
    """The list's state, as it travels in the query string (so the page works without JS and links are shareable).

    `q` matches a job whose file name contains it (any case) or that has a row with exactly this case id.
    `since` and `until` are whole days in the site's time zone, both included.
    """

    q: str = ""
    status: str = ""
    model: str = ""
    since: date | None = None
    until: date | None = None
    owner: str = ""
    after: str = ""
    limit: int = PAGE_SIZE

    @classmethod
    def from_args(cls, args: Mapping[str, str], viewer: Viewer) -> JobFilter:
        """The filter the arguments ask for; BadFilter, with every problem, if any argument is not one it takes."""
        problems: list[str] = []
        status = args.get("status", "").strip()
        if status and status not in STATUSES:
            problems.append(f"status {status!r}: must be one of {', '.join(STATUSES)}")
        owner = args.get("owner", "").strip().lower()
        if owner and not viewer.is_admin:
            problems.append("owner: only an admin can list other people's jobs")
        after = args.get("after", "").strip()
        if after and _cursor(after) is None:
            problems.append(f"after {after!r}: not a position this list gave; start again from the first page")
        found = cls(
            q=args.get("q", "").strip(),
            status=status,
            model=args.get("model", "").strip(),
            since=_day(args, "from", problems),
            until=_day(args, "to", problems),
            owner=owner,
            after=after,
            limit=_limit(args.get("limit", ""), problems),
        )
        if found.since and found.until and found.since > found.until:
            problems.append(f"from {found.since} is after to {found.until}")
        if problems:
            raise BadFilter(problems)
        return found

    def args(self, **changes: Any) -> dict[str, Any]:
        """Query-string arguments for this filter with some changed, defaults left out."""
        changed = asdict(replace(self, **changes))
        names = {"since": "from", "until": "to"}
        return {names.get(k, k): str(v) for k, v in changed.items() if v != getattr(JobFilter, k)}

    @property
    def narrowed(self) -> bool:
        """Whether any search or filter is set (the page then says what it looked for)."""
        return any((self.q, self.status, self.model, self.since, self.until, self.owner))


def _day(args: Mapping[str, str], name: str, problems: list[str]) -> date | None:
    value = args.get(name, "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        problems.append(f"{name} {value!r}: must be a date written YYYY-MM-DD")
        return None


def _limit(value: str, problems: list[str]) -> int:
    if not value.strip():
        return PAGE_SIZE
    if not value.strip().isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        problems.append(f"limit {value!r}: must be a whole number from 1 to {MAX_LIMIT}")
        return PAGE_SIZE
    return int(value)


def cursor_of(job: Job) -> str:
    """The position just after `job` in the list: opaque to clients, but only its creation time and id."""
    raw = f"{job.created_at.isoformat()}|{job.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor(value: str) -> tuple[datetime, uuid.UUID] | None:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        created, job_id = raw.split("|")
        at = datetime.fromisoformat(created)
        return (at, uuid.UUID(job_id)) if at.tzinfo is not None else None
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def query(wanted: JobFilter, viewer: Viewer) -> Select[Job, str]:
    """The jobs the viewer may see that match, newest first, from the cursor on, one more than a page."""
    # A large upload being received is not listed: it is the uploader's until the request answers, and may be refused.
    stmt = select(Job, User.email).outerjoin(User, User.id == Job.owner_id).where(Job.receiving_at.is_(None))
    if not viewer.is_admin:
        stmt = stmt.where(Job.owner_id == viewer.user_id)
    elif wanted.owner:
        stmt = stmt.where(Job.owner_id == select(User.id).where(User.email == wanted.owner).scalar_subquery())
    if wanted.q:
        pattern = "%" + wanted.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        has_case = exists().where(Result.job_id == Job.id, Result.case_id == wanted.q)
        stmt = stmt.where(Job.input_filename.ilike(pattern, escape="\\") | has_case)
    if wanted.status:
        stmt = stmt.where(Job.status == wanted.status)
    if wanted.model:
        stmt = stmt.where(Job.model_name == wanted.model)
    if wanted.since:
        stmt = stmt.where(Job.created_at >= times.midnight(wanted.since))
    if wanted.until:
        stmt = stmt.where(Job.created_at < times.midnight(wanted.until + timedelta(days=1)))
    position = _cursor(wanted.after) if wanted.after else None
    if position is not None:
        stmt = stmt.where(tuple_(Job.created_at, Job.id) < tuple_(*position))
    return stmt.order_by(Job.created_at.desc(), Job.id.desc()).limit(wanted.limit + 1)


@dataclass
class Listing:
    """One page of the list: each job with its owner's email, and the cursor of the next page (None at the end)."""

    jobs: list[tuple[Job, str | None]] = field(default_factory=list)
    next_after: str | None = None


def listing(session: Session, wanted: JobFilter, viewer: Viewer) -> Listing:
    rows: list[tuple[Job, str | None]] = [(job, email) for job, email in session.execute(query(wanted, viewer))]
    page = rows[: wanted.limit]
    more = len(rows) > wanted.limit
    return Listing(page, cursor_of(page[-1][0]) if more and page else None)
