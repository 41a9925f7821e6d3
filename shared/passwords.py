"""Passwords: Argon2id hashes, the strength rule, and one-time passwords."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn

MIN_LENGTH = 12
MAX_LENGTH = 256
MIN_SCORE = 3  # zxcvbn's 0-4: 3 is "safely unguessable: moderate protection from an offline slow-hash scenario"
PRODUCT = "cytoscore"
_ZXCVBN_MAX = 72  # zxcvbn refuses longer input; a password is at least as strong as its first 72 characters

_hasher = PasswordHasher()  # Argon2id with the library's current defaults
_DUMMY_HASH = _hasher.hash("a password nobody has")  # spend the same time whether or not the email exists


class WeakPassword(ValueError):
    """A password the rule refuses; the message says why, in words a person can act on."""


def check(password: str, email: str) -> None:
    """Refuse a password that is short, long, guessable, or holds the email or the product's name."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"use at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"use at most {MAX_LENGTH} characters")
    lowered, email = password.lower(), email.strip().lower()
    local = email.partition("@")[0]  # zxcvbn scores a password built on it as guessable
    if email and email in lowered:
        raise WeakPassword("the password must not contain your email address")
    if PRODUCT in lowered:
        raise WeakPassword(f"the password must not contain “{PRODUCT}”")
    verdict = zxcvbn(password[:_ZXCVBN_MAX], user_inputs=[email, local, PRODUCT])
    if verdict["score"] < MIN_SCORE:
        advice = " ".join(filter(None, [verdict["feedback"]["warning"], *verdict["feedback"]["suggestions"]]))
        raise WeakPassword(f"too easy to guess. {advice}".strip())


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify(password_hash: str | None, password: str) -> bool:
    """Whether the password matches; with no hash (no such account) it takes as long and says no."""
    try:
        _hasher.verify(password_hash or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return password_hash is not None


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def one_time() -> str:
    """A random password to hand over once (about 96 bits); its holder must change it at the first sign-in."""
    return secrets.token_urlsafe(12)
