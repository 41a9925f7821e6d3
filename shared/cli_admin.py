"""`cytoscore users | tokens | audit | purge`: accounts, API tokens, the audit trail and retention."""

from __future__ import annotations

import re
import sys
from datetime import timedelta

import click
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared import accounts, jobs
from shared.db import database_url, make_engine, make_sessionmaker
from shared.schema import ApiToken, AuditEvent, Role, User
from shared.settings import get_settings

_ACTOR = "cli"


def _sessions() -> sessionmaker[Session]:
    return make_sessionmaker(make_engine(database_url(get_settings())))


def _fail(exc: Exception) -> None:
    raise click.ClickException(str(exc)) from exc


def _read_password(confirm: bool) -> str:
    if sys.stdin.isatty():
        return str(click.prompt("Password", hide_input=True, confirmation_prompt=confirm))
    return sys.stdin.readline().rstrip("\r\n")


@click.group()
def users() -> None:
    """Manage accounts (clinician: single cases; lab: uploads too; admin: everything)."""


@users.command("add")
@click.argument("email")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
def users_add(email: str, role: str) -> None:
    """Add an account; the password is read from a prompt, or from the first line of stdin."""
    password = _read_password(confirm=True)
    try:
        with _sessions().begin() as session:
            user = accounts.add_user(session, email, password, Role(role))
            accounts.audit(session, "user.add", actor=_ACTOR, detail=f"{user.email} as {role}")
    except accounts.AccountError as exc:
        _fail(exc)
    click.echo(f"added {email.strip().lower()} ({role})")


@users.command("disable")
@click.argument("email")
def users_disable(email: str) -> None:
    """Disable an account: its sessions and tokens stop working at once."""
    try:
        with _sessions().begin() as session:
            user = accounts.disable_user(session, email)
            accounts.audit(session, "user.disable", actor=_ACTOR, detail=user.email)
    except accounts.AccountError as exc:
        _fail(exc)
    click.echo(f"disabled {email.strip().lower()}")


@users.command("list")
def users_list() -> None:
    with _sessions().begin() as session:
        for user in session.scalars(select(User).order_by(User.email)):
            click.echo(f"{user.email:40} {user.role:10} {'active' if user.active else 'disabled'}")


@click.group()
def tokens() -> None:
    """Manage API tokens (sent as `Authorization: Bearer <token>`)."""


@tokens.command("add")
@click.argument("email")
@click.option("--label", default=None, help="What the token is for.")
def tokens_add(email: str, label: str | None) -> None:
    """Create a token and print it once; only its hash is stored."""
    try:
        with _sessions().begin() as session:
            token, plain = accounts.add_token(session, email, label)
            accounts.audit(session, "token.add", actor=_ACTOR, detail=f"token {token.id} for {email}")
    except accounts.AccountError as exc:
        _fail(exc)
    click.echo(plain)
    click.echo(f"token {token.id} for {email}: shown once, store it now", err=True)


@tokens.command("revoke")
@click.argument("token_id", type=int)
def tokens_revoke(token_id: int) -> None:
    try:
        with _sessions().begin() as session:
            accounts.revoke_token(session, token_id)
            accounts.audit(session, "token.revoke", actor=_ACTOR, detail=f"token {token_id}")
    except accounts.AccountError as exc:
        _fail(exc)
    click.echo(f"revoked token {token_id}")


@tokens.command("list")
def tokens_list() -> None:
    with _sessions().begin() as session:
        rows = session.execute(select(ApiToken, User.email).join(User).order_by(ApiToken.id))
        for token, email in rows:
            state = "revoked" if token.revoked_at else "active"
            click.echo(f"{token.id:5} {email:40} {state:8} {token.label or ''}")


@click.command()
@click.option("--limit", default=200, show_default=True)
def audit(limit: int) -> None:
    """Print the audit trail, newest first: time, who, from where, what, which job."""
    with _sessions().begin() as session:
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit))
        for e in events:
            click.echo(
                f"{e.at:%Y-%m-%d %H:%M:%S}  {e.actor or '-':30} {e.address or '-':15} {e.action:14} "
                f"{e.job_id or '-'}  {e.detail or ''}"
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
    with _sessions().begin() as session:
        ids = jobs.purge(session, age)
        accounts.audit(session, "purge", actor=_ACTOR, detail=f"{len(ids)} jobs older than {age} purged")
    click.echo(f"purged the inputs and results of {len(ids)} jobs older than {age}")


COMMANDS = (users, tokens, audit, purge)
