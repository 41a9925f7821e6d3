"""People, roles, API tokens and the audit trail. Data functions take a session and never commit."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from shared.schema import ApiToken, AuditEvent, Role, User, utcnow

_hasher = PasswordHasher()  # Argon2id with the library's current defaults
_DUMMY_HASH = _hasher.hash("a password nobody has")  # spend the same time whether or not the email exists
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
MIN_PASSWORD = 12
TOKEN_TOUCH_EVERY = timedelta(minutes=1)
TOKEN_PREFIX = "cs_"  # noqa: S105 - a recognisable prefix, not a secret
# Built once: on every API request, constructing this statement would cost more than running it.
_TOKEN_AND_USER = (
    select(ApiToken, User).join(User, User.id == ApiToken.user_id).where(ApiToken.token_sha256 == bindparam("digest"))
)
_AUDIT = insert(AuditEvent)


class AccountError(ValueError):
    """A user-management request that cannot be carried out; the message says why."""


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if not _EMAIL.fullmatch(email) or len(email) > 254:
        raise AccountError(f"not an email address: {email!r}")
    return email


def find_user(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == normalise_email(email)))


def add_user(session: Session, email: str, password: str, role: Role) -> User:
    email = normalise_email(email)
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")
    if find_user(session, email) is not None:
        raise AccountError(f"{email} already has an account")
    user = User(email=email, password_hash=_hasher.hash(password), role=role.value, active=True, session_version=0)
    session.add(user)
    session.flush()
    return user


def disable_user(session: Session, email: str) -> User:
    """Disable an account, end its sessions and revoke its tokens, at once."""
    user = find_user(session, email)
    if user is None:
        raise AccountError(f"no account for {email}")
    user.active, user.disabled_at = False, utcnow()
    user.session_version += 1
    session.execute(
        update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None)).values(revoked_at=utcnow())
    )
    return user


def authenticate(session: Session, email: str, password: str) -> User | None:
    try:
        user = find_user(session, email)
    except AccountError:
        user = None
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.active:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_token(session: Session, email: str, label: str | None = None) -> tuple[ApiToken, str]:
    """Create a token; the plain text is returned once and never stored."""
    user = find_user(session, email)
    if user is None or not user.active:
        raise AccountError(f"no active account for {email}")
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, token_sha256=_digest(plain), label=label)
    session.add(token)
    session.flush()
    return token, plain


def revoke_token(session: Session, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise AccountError(f"no token {token_id}")
    token.revoked_at = token.revoked_at or utcnow()
    return token


def user_for_token(session: Session, plain: str) -> User | None:
    found = session.execute(_TOKEN_AND_USER, {"digest": _digest(plain)}).first()
    if found is None:
        return None
    token, user = found
    if token.revoked_at is not None or not user.active:
        return None
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at > TOKEN_TOUCH_EVERY:
        token.last_used_at = now  # a write per minute at most, not one per request
    return user


def audit(
    session: Session,
    action: str,
    *,
    actor: str | None,
    address: str | None = None,
    job_id: uuid.UUID | None = None,
    detail: str | None = None,
) -> None:
    """Write an audit event in the session's transaction (at once, on its connection: no ORM flush to wait for)."""
    session.connection().execute(
        _AUDIT, {"action": action, "actor": actor, "address": address, "job_id": job_id, "detail": detail}
    )
