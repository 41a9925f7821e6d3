"""Sign-ins: the server-side record of each signed-in browser, and the back-off on failed sign-ins per account.

A browser's cookie carries a random secret; only its sha256 is stored, in `user_sessions`. Every request finds the
row, so a session ended here (sign-out, a new password, a disabled account, an admin's revocation, idleness) is
ended wherever its cookie was copied. Data functions take a session and never commit.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from limits import parse
from sqlalchemy import bindparam, delete, select, text, update
from sqlalchemy.orm import Session

from shared.schema import LoginThrottle, User, UserSession, utcnow

SEEN_EVERY = timedelta(minutes=1)  # last_seen_at is written at most once a minute, not on every request
_SESSION_AND_USER = (
    select(UserSession, User)
    .join(User, User.id == UserSession.user_id)
    .where(UserSession.secret_sha256 == bindparam("digest"))
)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def start(session: Session, user: User, address: str | None, user_agent: str | None) -> str:
    """Record a new signed-in browser; the returned secret goes in its cookie and nowhere else."""
    secret = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(UserSession(user_id=user.id, secret_sha256=_digest(secret), created_at=now, last_seen_at=now,
                            address=address, user_agent=(user_agent or "")[:255] or None))  # fmt: skip
    session.flush()
    return secret


def find(session: Session, secret: str, idle: timedelta) -> tuple[UserSession, User] | None:
    """The live session this secret opens, with its active account; an idle one is ended on the way."""
    found = session.execute(_SESSION_AND_USER, {"digest": _digest(secret)}).first()
    if found is None:
        return None
    row, user = found
    now = utcnow()
    if row.ended_at is not None or not user.active:
        return None
    if now - row.last_seen_at > idle:
        row.ended_at, row.ended_by = now, "idle"
        return None
    if now - row.last_seen_at > SEEN_EVERY:
        row.last_seen_at = now
    return row, user


def touch(session: Session, session_id: int | None) -> bool:
    """Count this moment as the session's last use, whatever the once-a-minute rule; whether it is live."""
    if session_id is None:
        return False
    touched = session.scalar(
        update(UserSession)
        .where(UserSession.id == session_id, UserSession.ended_at.is_(None))
        .values(last_seen_at=utcnow())
        .returning(UserSession.id)
    )
    return touched is not None


def end(session: Session, session_id: int, user_id: int, reason: str) -> bool:
    """End one of this person's sessions; False if they have no such live session."""
    ended = session.scalars(
        update(UserSession)
        .where(UserSession.id == session_id, UserSession.user_id == user_id, UserSession.ended_at.is_(None))
        .values(ended_at=utcnow(), ended_by=reason)
        .returning(UserSession.id)
    ).all()
    return bool(ended)


def end_all(session: Session, user_id: int, reason: str) -> int:
    """End every live session of the account; how many there were."""
    ended = session.scalars(
        update(UserSession)
        .where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
        .values(ended_at=utcnow(), ended_by=reason)
        .returning(UserSession.id)
        .execution_options(synchronize_session=False)
    ).all()
    return len(ended)


def live(session: Session, user_id: int, idle: timedelta) -> list[UserSession]:
    """The account's sessions that still open pages, most recently seen first."""
    query = (
        select(UserSession)
        .where(UserSession.user_id == user_id, UserSession.ended_at.is_(None),
               UserSession.last_seen_at > utcnow() - idle)
        .order_by(UserSession.last_seen_at.desc(), UserSession.id.desc())
    )  # fmt: skip
    return list(session.scalars(query))


@dataclass(frozen=True)
class Backoff:
    """The per-account rule, from a limit like "10 per 15 minutes": that many failures are free; then each
    failure makes the next try wait twice as long as the one before, from `first_wait` up to the whole window.
    The count starts again once the account has seen no failure for a whole window."""

    free: int
    window: timedelta

    @classmethod
    def parse(cls, limit: str) -> Backoff:
        item = parse(limit)
        return cls(item.amount, timedelta(seconds=item.get_expiry()))

    @property
    def first_wait(self) -> timedelta:
        return max(timedelta(seconds=1), self.window / 30)

    def wait_after(self, failures: int) -> timedelta | None:
        if failures < self.free:
            return None
        doubled: timedelta = self.first_wait * 2 ** min(failures - self.free, 32)
        return min(doubled, self.window)


def throttle_key(email: str) -> str:
    """The email as typed, made comparable: the back-off counts for every email, with an account or not."""
    return "".join(c for c in email.strip().lower() if c.isprintable())[:254]


def must_wait(session: Session, email: str) -> timedelta | None:
    """How long this email's next sign-in must wait, if it must."""
    until: datetime | None = session.scalar(
        select(LoginThrottle.blocked_until).where(LoginThrottle.email == throttle_key(email))
    )
    now = utcnow()
    return until - now if until is not None and until > now else None


_FAILED = text(
    "INSERT INTO login_throttle AS t (email, failures, last_failure_at) VALUES (:email, 1, :now) "
    "ON CONFLICT (email) DO UPDATE SET "
    "failures = CASE WHEN t.last_failure_at <= :now - :window THEN 1 ELSE t.failures + 1 END, "
    "last_failure_at = :now, blocked_until = NULL "
    "RETURNING failures"
)


def failed(session: Session, email: str, rule: Backoff) -> timedelta | None:
    """Count a failed sign-in for this email, in one statement (two addresses at once both count); the wait it
    sets, if any."""
    now = utcnow()
    key = throttle_key(email)
    failures = session.execute(_FAILED, {"email": key, "now": now, "window": rule.window}).scalar_one()
    wait = rule.wait_after(failures)
    if wait is not None:
        session.execute(update(LoginThrottle).where(LoginThrottle.email == key).values(blocked_until=now + wait))
    return wait


def succeeded(session: Session, email: str) -> None:
    session.execute(delete(LoginThrottle).where(LoginThrottle.email == throttle_key(email)))


def forget_failures(session: Session, rule: Backoff) -> int:
    """Drop the counts of emails quiet for a whole window (the purge does this)."""
    now = utcnow()
    gone = session.scalars(
        delete(LoginThrottle)
        .where(
            LoginThrottle.last_failure_at <= now - rule.window,
            LoginThrottle.blocked_until.is_(None) | (LoginThrottle.blocked_until <= now),
        )
        .returning(LoginThrottle.email)
    ).all()
    return len(gone)
