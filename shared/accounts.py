"""People, roles, passwords, API tokens and the audit trail. Data functions take a session and never commit."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from shared import passwords, signins
from shared.schema import ApiToken, AuditEvent, Job, Role, User, utcnow

# One address, no spaces or control characters, at most 254 characters (RFC 5321's path limit).
_EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+")
TOKEN_TOUCH_EVERY = timedelta(minutes=1)
TOKEN_PREFIX = "cs_"  # noqa: S105 - a recognisable prefix, not a secret
TOKEN_DAYS = (7, 30, 90, 365)  # the expiries offered; a token never lives longer than a year
TOKEN_NAME_MAX = 100
# Built once: on every API request, constructing this statement would cost more than running it.
_TOKEN_AND_USER = (
    select(ApiToken, User).join(User, User.id == ApiToken.user_id).where(ApiToken.token_sha256 == bindparam("digest"))
)
_AUDIT = insert(AuditEvent)


class AccountError(ValueError):
    """A user-management request that cannot be carried out; the message says why."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field  # the form field the message belongs next to


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if not _EMAIL.fullmatch(email) or len(email) > 254:
        raise AccountError("enter an email address, like name@example.org", field="email")
    return email


def find_user(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == normalise_email(email)))


def get_user(session: Session, email: str) -> User:
    user = find_user(session, email)
    if user is None:
        raise AccountError(f"no account for {email.strip().lower()}", field="email")
    return user


def _role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise AccountError(f"choose a role: {', '.join(r.value for r in Role)}", field="role") from None


def _strong(password: str, email: str) -> str:
    try:
        passwords.check(password, email)
    except passwords.WeakPassword as exc:
        raise AccountError(str(exc), field="password") from exc
    return password


def add_user(session: Session, email: str, password: str | None, role: Role | str) -> tuple[User, str | None]:
    """Add an account. With a password, it is checked and kept; without, a one-time password is made, returned
    once, and must be changed at the first sign-in."""
    email, role = normalise_email(email), _role(role)
    if find_user(session, email) is not None:
        raise AccountError(f"{email} already has an account (reset its password instead)", field="email")
    one_time = passwords.one_time() if password is None else None
    user = User(
        email=email,
        password_hash=passwords.hash_password(one_time or _strong(password or "", email)),
        role=role.value,
        active=True,
        must_change_password=one_time is not None,
    )
    session.add(user)
    session.flush()
    return user, one_time


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The active account with this email and password, or None; as slow for an unknown email as for a known one."""
    try:
        user = find_user(session, email)
    except AccountError:
        user = None
    if not passwords.verify(user.password_hash if user else None, password) or user is None or not user.active:
        return None
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    return user


def change_password(session: Session, user: User, current: str, new: str, confirm: str) -> None:
    """A person's own change: the current password, then the new one twice. Every session ends."""
    if not passwords.verify(user.password_hash, current):
        raise AccountError("that is not your current password", field="current")
    if new != confirm:
        raise AccountError("the two new passwords differ", field="confirm")
    if passwords.verify(user.password_hash, new):
        raise AccountError("choose a password different from the current one", field="password")
    user.password_hash = passwords.hash_password(_strong(new, user.email))
    user.must_change_password = False
    signins.end_all(session, user.id, "password")


def reset_password(session: Session, user: User) -> str:
    """A one-time password for someone who lost theirs: returned once, to be changed at the next sign-in; every
    session of the account ends (its tokens stay: revoking them is a separate step)."""
    plain = passwords.one_time()
    user.password_hash = passwords.hash_password(plain)
    user.must_change_password = True
    signins.end_all(session, user.id, "reset")
    return plain


def _active_admins(session: Session) -> int:
    return session.scalar(select(func.count()).where(User.role == Role.ADMIN.value, User.active)) or 0


def _keeps_an_admin(session: Session, user: User) -> None:
    if user.active and user.role == Role.ADMIN.value and _active_admins(session) <= 1:
        raise AccountError(f"{user.email} is the last active admin; make another admin first")


def set_role(session: Session, user: User, role: Role | str) -> None:
    new = _role(role)
    if new.value != user.role:
        _keeps_an_admin(session, user)
        user.role = new.value


def disable_user(session: Session, user: User) -> None:
    """Disable an account: its sessions end and its tokens are revoked, at once."""
    if user.active:
        _keeps_an_admin(session, user)
    user.active, user.disabled_at = False, utcnow()
    revoke_access(session, user, "disabled")


def enable_user(user: User) -> None:
    user.active, user.disabled_at = True, None


def revoke_access(session: Session, user: User, reason: str = "admin") -> int:
    """End every session and revoke every token of the account; how many were still live."""
    tokens = session.scalars(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None), ApiToken.expires_at > func.now())
        .values(revoked_at=utcnow())
        .returning(ApiToken.id)
        .execution_options(synchronize_session=False)
    ).all()
    return len(tokens) + signins.end_all(session, user.id, reason)


@dataclass(frozen=True)
class Listed:
    user: User
    jobs: int
    tokens: int  # live: neither revoked nor expired


def list_users(session: Session) -> list[Listed]:
    """Every account with its job count and live tokens, by email."""
    jobs = select(func.count()).where(Job.owner_id == User.id).scalar_subquery()
    live = (
        select(func.count())
        .where(ApiToken.user_id == User.id, ApiToken.revoked_at.is_(None), ApiToken.expires_at > func.now())
        .scalar_subquery()
    )
    rows = session.execute(select(User, jobs, live).order_by(User.email))
    return [Listed(user, n_jobs, n_tokens) for user, n_jobs, n_tokens in rows]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise AccountError("give the token a name, e.g. what program will use it", field="name")
    if len(name) > TOKEN_NAME_MAX or not name.isprintable():
        raise AccountError(f"use at most {TOKEN_NAME_MAX} printable characters", field="name")
    return name


def token_days(days: int | str) -> int:
    try:
        value = int(days)
    except (TypeError, ValueError):
        value = 0
    if not 1 <= value <= max(TOKEN_DAYS):
        raise AccountError(f"choose an expiry from 1 to {max(TOKEN_DAYS)} days", field="days")
    return value


def add_token(
    session: Session, user: User, name: str, days: int | str, read_only: bool = False
) -> tuple[ApiToken, str]:
    """Create a token; the plain text is returned once and never stored. A read-only one answers GET only."""
    if not user.active:
        raise AccountError(f"{user.email} is disabled")
    name, lifetime = token_name(name), timedelta(days=token_days(days))
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    token = ApiToken(user_id=user.id, token_sha256=_digest(plain), name=name, created_at=now, expires_at=now + lifetime,
                     read_only=read_only)  # fmt: skip
    session.add(token)
    session.flush()
    return token, plain


def described(token: ApiToken) -> str:
    """A token as the audit trail names it."""
    return f"token {token.id} “{token.name}”" + (", read only" if token.read_only else "")


def tokens_of(session: Session, user_id: int | None = None) -> list[tuple[ApiToken, str]]:
    """Tokens with their owner's email, newest first; one person's, or everyone's."""
    query = select(ApiToken, User.email).join(User).order_by(ApiToken.id.desc())
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    return [(token, email) for token, email in session.execute(query)]


def revoke_token(session: Session, token_id: int, owner_id: int | None = None) -> ApiToken:
    """Revoke a token; with `owner_id`, only one of that person's (anyone else's reads as missing)."""
    token = session.get(ApiToken, token_id)
    if token is None or (owner_id is not None and token.user_id != owner_id):
        raise AccountError(f"no token {token_id}")
    token.revoked_at = token.revoked_at or utcnow()
    return token


def token_state(token: ApiToken, now: datetime | None = None) -> str:
    if token.revoked_at is not None:
        return "revoked"
    return "expired" if token.expires_at <= (now or utcnow()) else "active"


def token_and_user(session: Session, plain: str) -> tuple[ApiToken, User] | None:
    """The live token with this text, and its active owner."""
    found = session.execute(_TOKEN_AND_USER, {"digest": _digest(plain)}).first()
    if found is None:
        return None
    token, user = found
    now = utcnow()
    if token.revoked_at is not None or token.expires_at <= now or not user.active:
        return None
    if token.last_used_at is None or now - token.last_used_at > TOKEN_TOUCH_EVERY:
        token.last_used_at = now  # a write per minute at most, not one per request
    return token, user


def audit(
    session: Session,
    action: str,
    *,
    actor: str | None,
    address: str | None = None,
    job_id: uuid.UUID | None = None,
    detail: str | None = None,
    target: str | None = None,
) -> None:
    """Write an audit event in the session's transaction (at once, on its connection: no ORM flush to wait for)."""
    session.connection().execute(
        _AUDIT,
        {"action": action, "actor": actor, "address": address, "job_id": job_id, "detail": detail, "target": target},
    )
