"""Reading the audit trail: the filters of the admin page and of its CSV export."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Select, false, or_, select
from sqlalchemy.orm import Session

from shared.schema import AuditEvent

PAGE = 100
COLUMNS = ("at", "actor", "address", "action", "target", "job_id", "detail")


@dataclass(frozen=True)
class Filters:
    """What the audit page was asked to show; `errors` maps a filter that does not parse to why."""

    user: str = ""
    action: str = ""
    job: uuid.UUID | None = None
    since: date | None = None
    until: date | None = None
    before: int | None = None  # the page: events older than this id
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, args: Mapping[str, str]) -> Filters:
        errors: dict[str, str] = {}

        def day(name: str) -> date | None:
            text = args.get(name, "").strip()
            if not text:
                return None
            try:
                return date.fromisoformat(text)
            except ValueError:
                errors[name] = "use a date like 2026-12-03"
                return None

        job = None
        if text := args.get("job", "").strip():
            try:
                job = uuid.UUID(text)
            except ValueError:
                errors["job"] = "use a job id, like 0b6c1b52-7d1e-4e5c-9f0e-3c4a1e2b9d10"
        before = args.get("before", "").strip()
        since, until = day("since"), day("until")
        if since and until and since > until:
            errors["until"] = "the last day comes before the first"
        return cls(
            user=args.get("user", "").strip().lower()[:254],
            action=args.get("action", "").strip()[:32],
            job=job,
            since=since,
            until=until,
            before=int(before) if before.isdigit() and len(before) < 19 else None,
            errors=errors,
        )

    def query(self) -> Select[AuditEvent]:
        """Newest first; a filter that did not parse shows nothing rather than everything."""
        query = select(AuditEvent).order_by(AuditEvent.id.desc())
        if self.errors:
            return query.where(false())
        if self.user:
            query = query.where(or_(AuditEvent.actor == self.user, AuditEvent.target == self.user))
        if self.action:
            query = query.where(AuditEvent.action == self.action)
        if self.job:
            query = query.where(AuditEvent.job_id == self.job)
        if self.since:
            query = query.where(AuditEvent.at >= datetime.combine(self.since, time(), UTC))
        if self.until:
            query = query.where(AuditEvent.at < datetime.combine(self.until + timedelta(days=1), time(), UTC))
        return query

    def args(self) -> dict[str, str]:
        """The filters as query arguments, for the next page's link and the CSV export's."""
        pairs = {"user": self.user, "action": self.action, "job": str(self.job or ""),
                 "since": str(self.since or ""), "until": str(self.until or "")}  # fmt: skip
        return {k: v for k, v in pairs.items() if v}


def page(session: Session, filters: Filters) -> tuple[list[AuditEvent], int | None]:
    """One page of events, and the id to ask for the next (older) one, if there is more."""
    query = filters.query()
    if filters.before is not None:
        query = query.where(AuditEvent.id < filters.before)
    events = list(session.scalars(query.limit(PAGE + 1)))
    more = len(events) > PAGE
    return events[:PAGE], events[PAGE - 1].id if more else None


def actions(session: Session) -> list[str]:
    return list(session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action)))


def rows(session: Session, filters: Filters) -> Iterator[tuple[str, ...]]:
    """Every matching event as CSV cells, newest first, read a thousand at a time."""
    with session.scalars(filters.query().execution_options(yield_per=1000)) as found:  # closed if cut short
        for event in found:
            yield (event.at.astimezone(UTC).isoformat(), event.actor or "", event.address or "", event.action,
                   event.target or "", str(event.job_id or ""), event.detail or "")  # fmt: skip
