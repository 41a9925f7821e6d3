"""`cytoscore users | tokens | audit | purge`: accounts, API tokens, the audit trail and retention. Every change
is audited, with "cli" as the actor."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from datetime import timedelta

import click
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared import accounts, jobs, signins, two_step
from shared.db import database_url, make_engine, make_sessionmaker
from shared.schema import AuditEvent, Role, User
from shared.settings import get_settings
from shared.times import day, written

_ACTOR = "cli"


def _sessions() -> sessionmaker[Session]:
    return make_sessionmaker(make_engine(database_url(get_settings())))


def _fail(exc: Exception) -> None:
    raise click.ClickException(str(exc)) from exc


def _read_password(confirm: bool) -> str:
    if sys.stdin.isatty():
        return str(click.prompt("Password", hide_input=True, confirmation_prompt=confirm))
    return sys.stdin.readline().rstrip("\r\n")


def _one_time(email: str, password: str) -> None:
    click.echo(password)
    click.echo(f"the one-time password of {email}: shown once; it must be changed at the first sign-in", err=True)


@click.group()
def users() -> None:
    """Manage accounts (clinician: single cases; lab: uploads too; admin: everything)."""


@users.command("add")
@click.argument("email")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--one-time", "one_time", is_flag=True, help="Print a one-time password instead of reading one.")
def users_add(email: str, role: str, one_time: bool) -> None:
    """Add an account. The password is read from a prompt, or from the first line of stdin; with --one-time, a
    one-time password is printed, to be changed at the first sign-in."""
    password = None if one_time else _read_password(confirm=True)
    try:
        with _sessions().begin() as session:
            user, made = accounts.add_user(session, email, password, Role(role))
            accounts.audit(session, "user.add", actor=_ACTOR, target=user.email, detail=f"as {role}")
    except accounts.AccountError as exc:
        _fail(exc)
    click.echo(f"added {user.email} ({role})", err=made is not None)
    if made:
        _one_time(user.email, made)


def _change(email: str, action: str, change: Callable[[Session, User], str | None]) -> str:
    """Carry out one change of an account in one transaction, with its audit event; what it said."""
    try:
        with _sessions().begin() as session:
            user = accounts.get_user(session, email)
            said = change(session, user)
            accounts.audit(session, action, actor=_ACTOR, target=user.email, detail=said)
    except accounts.AccountError as exc:
        _fail(exc)
    return said or ""


@users.command("disable")
@click.argument("email")
def users_disable(email: str) -> None:
    """Disable an account: its sessions end and its tokens are revoked, at once."""

    def change(session: Session, user: User) -> str:
        accounts.disable_user(session, user)
        return "sessions ended, tokens revoked"

    _change(email, "user.disable", change)
    click.echo(f"disabled {email.strip().lower()}")


@users.command("enable")
@click.argument("email")
def users_enable(email: str) -> None:
    """Enable a disabled account (its old tokens stay revoked)."""
    _change(email, "user.enable", lambda _session, user: accounts.enable_user(user))
    click.echo(f"enabled {email.strip().lower()}")


@users.command("set-role")
@click.argument("email")
@click.argument("role", type=click.Choice([r.value for r in Role]))
def users_set_role(email: str, role: str) -> None:
    """Change an account's role (the last active admin keeps theirs)."""

    def change(session: Session, user: User) -> str:
        before = user.role
        accounts.set_role(session, user, role)
        return f"{before} to {role}"

    _change(email, "user.role", change)
    click.echo(f"{email.strip().lower()} is now {role}")


@users.command("reset-password")
@click.argument("email")
def users_reset_password(email: str) -> None:
    """Print a one-time password for the account, to be changed at its next sign-in; its sessions end."""
    made: list[str] = []

    def change(session: Session, user: User) -> str:
        made.append(accounts.reset_password(session, user))
        return "one-time password; sessions ended"

    _change(email, "user.reset_password", change)
    _one_time(email.strip().lower(), made[0])


@users.command("two-step-off")
@click.argument("email")
def users_two_step_off(email: str) -> None:
    """Turn off two-step sign-in for someone who lost their phone and their recovery codes."""

    def change(session: Session, user: User) -> str:
        two_step.turn_off(session, user)
        return two_step.TURNED_OFF_FOR

    _change(email, "user.two_step_off", change)
    click.echo(f"two-step sign-in of {email.strip().lower()} is off: the password alone signs in")


@users.command("list")
def users_list() -> None:
    """Every account: role, status, last sign-in, two-step sign-in, jobs and live tokens."""
    from shared.cli import _table

    zone = get_settings().zone
    with _sessions().begin() as session:
        rows = [
            (row.user.email, row.user.role,
             ("active" if row.user.active else "disabled") + (", one-time password" if row.user.must_change_password
                                                               else ""),
             written(row.user.last_login_at, zone) if row.user.last_login_at else "never",
             "on" if row.user.totp_secret else "off", str(row.jobs), str(row.tokens))
            for row in accounts.list_users(session)
        ]  # fmt: skip
    _table(("email", "role", "status", "last sign-in", "two-step", "jobs", "live tokens"), rows)


@click.group()
def tokens() -> None:
    """Manage API tokens (sent as `Authorization: Bearer <token>`)."""


@tokens.command("add")
@click.argument("email")
@click.option("--name", default="command line", show_default=True, help="What the token is for.")
@click.option(
    "--days",
    type=int,
    default=90,
    show_default=True,
    help=f"Days until it expires (at most {max(accounts.TOKEN_DAYS)}).",
)
@click.option("--read-only", "read_only", is_flag=True, help="It may only read (GET): jobs, results, models.")
def tokens_add(email: str, name: str, days: int, read_only: bool) -> None:
    """Create a token and print it once; only its hash is stored."""
    try:
        with _sessions().begin() as session:
            user = accounts.get_user(session, email)
            token, plain = accounts.add_token(session, user, name, days, read_only)
            accounts.audit(session, "token.add", actor=_ACTOR, target=user.email, detail=accounts.described(token))
    except accounts.AccountError as exc:
        _fail(exc)
    click.echo(plain)
    expires = day(token.expires_at, get_settings().zone)
    click.echo(f"token {token.id} for {user.email}, expires {expires}: shown once, store it now", err=True)


@tokens.command("revoke")
@click.argument("token_id", type=int)
def tokens_revoke(token_id: int) -> None:
    try:
        with _sessions().begin() as session:
            token = accounts.revoke_token(session, token_id)
            owner = session.get(User, token.user_id)
            accounts.audit(session, "token.revoke", actor=_ACTOR, target=owner.email if owner else None,
                           detail=accounts.described(token))  # fmt: skip
    except accounts.AccountError as exc:
        _fail(exc)
    click.echo(f"revoked token {token_id}")


@tokens.command("list")
@click.option("--email", default=None, help="Only this account's tokens.")
def tokens_list(email: str | None) -> None:
    """Tokens, newest first: id, account, state, expiry, last use, what it may do, and name."""
    from shared.cli import _table

    zone = get_settings().zone
    try:
        with _sessions().begin() as session:
            owner = accounts.get_user(session, email).id if email else None
            rows = [
                (str(token.id), owner_email, accounts.token_state(token), day(token.expires_at, zone),
                 written(token.last_used_at, zone) if token.last_used_at else "never",
                 "read" if token.read_only else "read/write", token.name)
                for token, owner_email in accounts.tokens_of(session, owner)
            ]  # fmt: skip
    except accounts.AccountError as exc:
        _fail(exc)
    _table(("id", "email", "state", "expires", "last used", "may", "name"), rows)


@click.command()
@click.option("--limit", default=200, show_default=True)
def audit(limit: int) -> None:
    """Print the audit trail, newest first: time (in CYTOSCORE_TIME_ZONE), who, from where, what, which job."""
    zone = get_settings().zone
    with _sessions().begin() as session:
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit))
        for e in events:
            click.echo(
                f"{written(e.at, zone, seconds=True)}  {e.actor or '-':30} {e.address or '-':15} {e.action:14} "
                f"{e.job_id or '-'}  {e.target or ''}  {e.detail or ''}".rstrip()
            )


def _age(text: str) -> timedelta:
    match = re.fullmatch(r"(\d+)([dh])", text.strip())
    if not match:
        raise click.BadParameter("use days or hours, e.g. 30d or 12h")
    n, unit = int(match.group(1)), match.group(2)
    return timedelta(days=n) if unit == "d" else timedelta(hours=n)


@click.command()
@click.option("--older-than", "older_than", default=None, help="e.g. 30d (default: CYTOSCORE_RETENTION_DAYS).")
def purge(older_than: str | None) -> None:
    """Remove old jobs' inputs and results; the job rows and the audit trail record that it happened."""
    age = _age(older_than) if older_than else timedelta(days=get_settings().retention_days)
    settings = get_settings()
    with _sessions().begin() as session:
        ids = jobs.purge(session, age)
        signins.forget_failures(session, signins.Backoff.parse(settings.login_account_limit))
        accounts.audit(session, "purge", actor=_ACTOR, detail=f"{len(ids)} jobs older than {age} purged")
    click.echo(f"purged the inputs and results of {len(ids)} jobs older than {age}")


COMMANDS = (users, tokens, audit, purge)
