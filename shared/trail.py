"""Reading the audit trail: the filters of the admin page and of its CSV export, and a person's own account
activity (sign-ins, failed ones, and every change to the account, by them or by an admin)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from sqlalchemy import Select, and_, false, func, or_, select
from sqlalchemy.orm import Session

from shared.schema import AuditEvent

PAGE = 100
#: What a person's activity page shows, in its words: sign-ins and changes to the account, not their jobs' views
#: and downloads.
ACCOUNT_ACTIONS = {
    "login": "Signed in", "login.failed": "Failed sign-in", "login.throttled": "Sign-in held back after failures",
    "logout": "Signed out", "password.change": "Password changed", "sessions.end": "Sessions ended",
    "token.add": "API token made", "token.revoke": "API token revoked", "two_step.on": "Two-step sign-in turned on",
    "two_step.off": "Two-step sign-in turned off", "two_step.recovery_codes": "New recovery codes made",
    "webhook.add": "Webhook added", "webhook.delete": "Webhook deleted", "webhook.pause": "Webhook paused",
    "webhook.resume": "Webhook resumed", "user.add": "Account made", "user.role": "Role changed",
    "user.disable": "Account disabled", "user.enable": "Account enabled",
    "user.revoke": "Every session and token revoked", "user.reset_password": "One-time password given",
    "user.two_step_off": "Two-step sign-in turned off",
}  # fmt: skip
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
    zone: tzinfo = UTC  # whose days `since` and `until` are

    @classmethod
    def parse(cls, args: Mapping[str, str], zone: tzinfo = UTC) -> Filters:
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
        since, until = day("since"), day("until")
        if since and until and since > until:
            errors["until"] = "the last day comes before the first"
        return cls(
            user=args.get("user", "").strip().lower()[:254],
            action=args.get("action", "").strip()[:32],
            job=job,
            since=since,
            until=until,
            before=before(args),
            errors=errors,
            zone=zone,
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
            query = query.where(AuditEvent.at >= datetime.combine(self.since, time(), self.zone))
        if self.until:
            query = query.where(AuditEvent.at < datetime.combine(self.until + timedelta(days=1), time(), self.zone))
        return query

    def args(self) -> dict[str, str]:
        """The filters as query arguments, for the next page's link and the CSV export's."""
        pairs = {"user": self.user, "action": self.action, "job": str(self.job or ""),
                 "since": str(self.since or ""), "until": str(self.until or "")}  # fmt: skip
        return {k: v for k, v in pairs.items() if v}


def before(args: Mapping[str, str]) -> int | None:
    """The `before` argument of a page's "Older" link: an event id; None (the newest page) for anything else."""
    text = args.get("before", "").strip()
    return int(text) if text.isdigit() and len(text) < 19 else None


def page(session: Session, filters: Filters) -> tuple[list[AuditEvent], int | None]:
    """One page of events, and the id to ask for the next (older) one, if there is more."""
    return _page(session, filters.query(), filters.before)


def _page(session: Session, query: Select[AuditEvent], before: int | None) -> tuple[list[AuditEvent], int | None]:
    if before is not None:
        query = query.where(AuditEvent.id < before)
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


def of_account(session: Session, email: str, before: int | None = None) -> tuple[list[AuditEvent], int | None]:
    """A page of the account's own activity, newest first: what was done to it, by it or by an admin (an admin's
    changes to other accounts are theirs); and the id to ask for the next (older) page, if there is more."""
    own = and_(AuditEvent.actor == email, or_(AuditEvent.target.is_(None), AuditEvent.target == email))
    query = (
        select(AuditEvent)
        .where(or_(AuditEvent.target == email, own))
        .where(AuditEvent.action.in_(list(ACCOUNT_ACTIONS)))
        .order_by(AuditEvent.id.desc())
    )
    return _page(session, query, before)


@dataclass(frozen=True)
class Failures:
    """Failed sign-ins of an account since its last sign-in: wrong passwords, and right passwords with wrong codes
    (which mean someone knows the password), with the latest of them."""

    passwords: int
    codes: int
    last: AuditEvent | None


def failed_sign_ins(session: Session, email: str, since: datetime | None) -> Failures:
    """The failed sign-ins of this email after `since` (its last sign-in)."""
    failed = [AuditEvent.actor == email, AuditEvent.action == "login.failed"]
    if since is not None:
        failed.append(AuditEvent.at > since)
    code = AuditEvent.detail == "two-step code"
    counts: dict[bool | None, int] = dict(
        session.execute(select(code, func.count()).where(*failed).group_by(code)).all()
    )
    last = session.scalars(select(AuditEvent).where(*failed).order_by(AuditEvent.id.desc()).limit(1)).first()
    return Failures(counts.get(False, 0) + counts.get(None, 0), counts.get(True, 0), last)
