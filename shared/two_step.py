"""Two-step sign-in: after the password, a code from an authenticator app (RFC 6238: six digits, 30-second steps,
pyotp), or one of ten recovery codes for a lost phone. Data functions take a session and never commit.

A code is good once: the step of the last code that signed in is kept, and a code of that step or an earlier one is
refused. The step before and the one after the server's are accepted, for clocks a little apart.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time

import pyotp
import segno
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from shared.passwords import PRODUCT
from shared.schema import RecoveryCode, User, utcnow

RECOVERY_CODES = 10
_DRIFT = 1  # steps either side of the server's
_SIX_DIGITS = re.compile(r"\d{6}")
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread from paper


class CodeRefused(ValueError):
    """A code that does not sign in or confirm; the message says what to do."""


def new_secret() -> str:
    return pyotp.random_base32()  # 32 base32 characters: 160 bits, RFC 4226's recommended length


def grouped(secret: str) -> str:
    """The secret as a person types it into an app: groups of four."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def address(secret: str, email: str) -> str:
    """The `otpauth://` address that adds the account to an authenticator app."""
    return str(pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=PRODUCT))


def qr_svg(secret: str, email: str) -> str:
    """That address as an inline SVG QR code, for the app to scan."""
    # No width or height: the page sizes it, and the viewBox keeps it whole; a white quiet zone for dark themes.
    return str(segno.make(address(secret, email), error="m").svg_inline(dark="#000", light="#fff", omitsize=True))


def _normalised(code: str) -> str:
    return "".join(code.split()).lower()


def _step_of(secret: str, code: str, now: float) -> int | None:
    """The time step whose code this is, within the drift allowed; None if none."""
    totp = pyotp.TOTP(secret)
    current = int(now // totp.interval)
    for step in range(current - _DRIFT, current + _DRIFT + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def turn_on(session: Session, user: User, secret: str, code: str) -> list[str]:
    """Keep the secret once a code from the app proves it was added; returns the recovery codes, shown once."""
    typed = _normalised(code)
    step = _step_of(secret, typed, time.time()) if _SIX_DIGITS.fullmatch(typed) else None
    if step is None:
        raise CodeRefused("that is not the app's current code: check that its clock is right, and type the six "
                          "digits it shows now")  # fmt: skip
    user.totp_secret, user.totp_since, user.totp_last_step = secret, utcnow(), step
    return new_recovery_codes(session, user)


#: The audit's detail of a two-step sign-in turned off by an admin or the CLI.
TURNED_OFF_FOR = "for a lost phone; recovery codes removed"


def turn_off(session: Session, user: User) -> None:
    """The password alone signs in again; the recovery codes go."""
    user.totp_secret = user.totp_since = user.totp_last_step = None
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))


def new_recovery_codes(session: Session, user: User) -> list[str]:
    """Ten new codes in place of any before; returned once, never stored but as sha256."""
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = ["-".join("".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(5)) for _ in range(2))
             for _ in range(RECOVERY_CODES)]  # fmt: skip
    now = utcnow()
    session.add_all(RecoveryCode(user_id=user.id, code_sha256=_digest(c), created_at=now) for c in codes)
    session.flush()
    return codes


def recovery_left(session: Session, user_id: int) -> int:
    return session.scalar(
        select(func.count()).where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
    ) or 0  # fmt: skip


def _digest(code: str) -> str:
    return hashlib.sha256(_normalised(code).replace("-", "").encode()).hexdigest()


def check(session: Session, user: User, code: str) -> str:
    """Whether this code signs the person in: "app" or "recovery code", or CodeRefused. A code is used up here,
    under the account's row lock, so two requests with one code cannot both pass."""
    session.refresh(user, with_for_update=True)
    if user.totp_secret is None:
        raise CodeRefused("two-step sign-in is off for this account")
    typed = _normalised(code)
    if _SIX_DIGITS.fullmatch(typed):
        step = _step_of(user.totp_secret, typed, time.time())
        if step is None or (user.totp_last_step is not None and step <= user.totp_last_step):
            raise CodeRefused("that code is not right, or was used already: wait for the app's next one")
        user.totp_last_step = step
        return "app"
    used = session.scalar(
        update(RecoveryCode)
        .where(RecoveryCode.user_id == user.id, RecoveryCode.code_sha256 == _digest(typed))
        .where(RecoveryCode.used_at.is_(None))
        .values(used_at=utcnow())
        .returning(RecoveryCode.id)
    )
    if used is None:
        raise CodeRefused("that is neither the app's code nor an unused recovery code")
    return "recovery code"
