"""The `cytoscore` command: run | web | worker | migrate | train."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from shared.settings import ROOT, Settings, get_settings


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

    settings = get_settings()
    if settings.database_url.startswith("sqlite"):
        settings.var_dir.mkdir(parents=True, exist_ok=True)
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
    """The whole system on one machine: SQLite and a file broker under ./var/, one web server, one worker."""
    settings = get_settings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DATABASE_URL": settings.database_url, "BROKER_URL": settings.broker_url}
    subprocess.run([_bin("cytoscore"), "migrate"], env=env, check=True)
    from shared.modelstore import list_models

    if not list_models(settings.models_dir):
        subprocess.run([_bin("cytoscore"), "train"], env=env, check=True)
    children = [
        subprocess.Popen(_web_argv(settings, "127.0.0.1", 1), env=env),
        subprocess.Popen(_worker_argv(settings, 1), env=env),
    ]
    click.echo(f"\ncytoscore is running at http://127.0.0.1:{settings.port}/  (Ctrl-C stops it)\n", err=True)
    _supervise(children)


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
