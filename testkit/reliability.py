"""Private services for a scenario of its own (database, queue, broker, processes), a crowd of jobs, the checks.

Everything here is real: a database built by `cytoscore migrate`, a redis-server that keeps nothing on disk, and
`cytoscore` worker and web processes. The reliability tests break them; bench/load.py measures a crowd on them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from shared.features import FEATURES
from shared.settings import Settings
from testkit.support import (
    RF4,
    WORKER_NODES,
    Person,
    ServiceProcess,
    free_port,
    fresh_queue,
    jittered_csv,
    make_person,
    multipart,
    run_cli,
    wdbc,
)

ADMIN_URL = os.environ.get("CYTOSCORE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")

# Short enough that a killed worker's job is back within seconds, long enough for a busy 2-core machine.
FAST = {
    "CYTOSCORE_RECONCILE_INTERVAL": "1",
    "CYTOSCORE_HEARTBEAT_INTERVAL": "1",
    "CYTOSCORE_HEARTBEAT_STALE_AFTER": "6",
    "CYTOSCORE_QUEUED_RESEND_AFTER": "5",
    "CYTOSCORE_MAX_ATTEMPTS": "3",
    "CYTOSCORE_BATCH_ROWS": "10000",
    "CYTOSCORE_WORKER_CONCURRENCY": "1",
    "CYTOSCORE_DB_RETRY_FOR": "60",
    "SECRET_KEY": "reliability-tests-only",
    # A crowd from one account on one address is the point here, not something to throttle.
    "CYTOSCORE_JOBS_RATE_LIMIT": "100000 per minute",
    "CYTOSCORE_MAX_JOBS_IN_FLIGHT": "100000",
}
_SETTINGS_FROM_FAST = {"secret_key": "SECRET_KEY", "jobs_rate_limit": "CYTOSCORE_JOBS_RATE_LIMIT",
                       "max_jobs_in_flight": "CYTOSCORE_MAX_JOBS_IN_FLIGHT"}  # fmt: skip
TERMINAL = ("succeeded", "failed", "needs_review")


def sqlalchemy_url(libpq_url: str) -> str:
    return libpq_url.replace("postgresql://", "postgresql+psycopg://", 1)


def libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@contextlib.contextmanager
def private_database(admin_url: str = ADMIN_URL) -> Iterator[str]:
    """A database of its own, built by `cytoscore migrate`, dropped afterwards; yields a SQLAlchemy URL."""
    name = f"cytoscore_rel_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = sqlalchemy_url(admin_url.rsplit("/", 1)[0] + f"/{name}")
    try:
        run_cli(["migrate"], {"DATABASE_URL": url})
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class RedisServer:
    """A private redis-server that keeps nothing on disk: a restart empties it, like the production one here."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.workdir)]  # fmt: skip
        log = (self.workdir / "redis.log").open("ab")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 20
        while self.cli("PING").strip() != "PONG":
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def cli(self, *args: str) -> str:
        done = subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True, timeout=10)
        return done.stdout

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # no save, no goodbye: the broker just vanishes
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass
class Scenario:
    """One scenario's database, queue and broker, its worker processes, and the Flask app pointed at them."""

    db_url: str
    broker_url: str
    tmp: Path
    extra: dict[str, str] = field(default_factory=dict)
    queue: str = field(default_factory=lambda: fresh_queue("cytoscore-rel"))
    processes: list[ServiceProcess] = field(default_factory=list)
    _apps: list[Any] = field(default_factory=list)
    _person: Person | None = None

    @property
    def env(self) -> dict[str, str]:
        return {
            "DATABASE_URL": self.db_url,
            "BROKER_URL": self.broker_url,
            "CYTOSCORE_QUEUE": self.queue,
            "CYTOSCORE_VAR_DIR": str(self.tmp / "var"),
            **FAST,
            **self.extra,
        }

    def settings(self) -> Settings:
        known = {k: FAST[v] for k, v in _SETTINGS_FROM_FAST.items() if k in Settings.model_fields}
        known |= {k: v for k, v in ((k.removeprefix("CYTOSCORE_").lower(), v) for k, v in self.extra.items())
                  if k in Settings.model_fields}  # fmt: skip
        return Settings(database_url=self.db_url, broker_url=self.broker_url, queue=self.queue,
                        var_dir=self.tmp / "var", broker_timeout=1.0, **known)  # fmt: skip

    @property
    def person(self) -> Person:
        """A lab account of this scenario's database, with an API token (made once, with the real CLI)."""
        if self._person is None:
            self._person = make_person(self.env, "lab")
        return self._person

    def client(self) -> Any:
        """The Flask app on this scenario's database and queue; a client signed in with the lab token."""
        from api import create_app

        app = create_app(self.settings())
        app.config.update(TESTING=True)
        self._apps.append(app)
        return self.person.client(app)

    def start(self, command: str, name: str, **env: str) -> ServiceProcess:
        proc = ServiceProcess([command], {**self.env, **env}, self.tmp / f"{name}.log")
        self.processes.append(proc)
        return proc

    def worker(self, name: str = "worker", **env: str) -> ServiceProcess:
        proc = self.start("worker", name, **env)
        proc.wait_for_log("ready.", timeout=90, count=WORKER_NODES)
        return proc

    def close(self) -> None:
        for proc in self.processes:
            proc.stop(signal.SIGKILL)
        for app in self._apps:
            app.extensions["cytoscore.engine"].dispose()
            app.extensions["cytoscore.celery"].close()


# --- reading the truth -----------------------------------------------------------------------------------------


def query(db_url: str, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq_url(db_url), autocommit=True, connect_timeout=10) as conn:
        return list(conn.execute(sql, tuple(params)).fetchall())  # type: ignore[arg-type]


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"not within {timeout} s: {what}")


def wait_terminal(db_url: str, job_ids: list[str], timeout: float, env: dict[str, str] | None = None) -> None:
    """Every job reaches a terminal state in time; if not, say which, with `cytoscore jobs stuck`'s view."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        open_ = query(db_url, "SELECT count(*) FROM jobs WHERE id = ANY(%s) AND status NOT IN ('succeeded', 'failed')",
                      [job_ids])[0][0]  # fmt: skip
        if open_ == 0:
            return
        time.sleep(0.2)
    left = query(db_url, "SELECT id, status, attempts, error FROM jobs WHERE id = ANY(%s) "
                 "AND status NOT IN ('succeeded', 'failed')", [job_ids])  # fmt: skip
    stuck = run_cli(["jobs", "stuck"], env).stdout if env else ""
    raise AssertionError(f"{len(left)} jobs not finished within {timeout} s: {left[:5]}\n{stuck}")


def assert_exactly_once(db_url: str, job_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each job terminal; a succeeded job has one result per input row, none lost, none doubled."""
    rows = query(
        db_url,
        "SELECT j.id::text, j.status, j.attempts, j.rows_total, j.rows_scored + j.rows_rejected, j.error, "
        "count(r.row_number), count(DISTINCT r.row_number), coalesce(min(r.row_number), 1), "
        "coalesce(max(r.row_number), 0) "
        "FROM jobs j LEFT JOIN results r ON r.job_id = j.id WHERE j.id = ANY(%s) GROUP BY j.id",
        [job_ids],
    )
    assert len(rows) == len(set(job_ids)), "a job row is missing"
    found = {}
    for jid, status, attempts, total, done, error, n, distinct, lo, hi in rows:
        assert status in TERMINAL, (jid, status)
        assert n == distinct, f"job {jid}: {n} results for {distinct} rows: some row doubled"
        if status == "succeeded":
            assert n == distinct == total == done, f"job {jid}: {n} results, {distinct} rows, {total} in the input"
            assert (lo, hi) == (1, total), f"job {jid}: rows {lo}..{hi} of {total}"
        found[jid] = {"status": status, "attempts": attempts, "error": error}
    return found


# --- a crowd ---------------------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    single_seconds: list[float]  # POST sent -> job finished, per single case
    upload_seconds: list[float]  # the same per upload
    errors: list[str]
    wall: float  # first POST -> last job finished
    rows: int
    found: dict[str, dict[str, Any]]

    def table(self) -> list[tuple[str, str]]:
        def pct(values: list[float], q: float) -> str:
            return f"{np.percentile(values, q):.2f} s" if values else "-"

        jobs = len(self.single_seconds) + len(self.upload_seconds)
        return [
            ("jobs accepted", str(jobs)),
            ("request errors", str(len(self.errors))),
            ("jobs succeeded", str(sum(f["status"] == "succeeded" for f in self.found.values()))),
            ("jobs needing a second attempt", str(sum(f["attempts"] > 1 for f in self.found.values()))),
            ("results stored exactly once", "yes"),  # assert_exactly_once raised otherwise
            ("wall time, first POST to last result", f"{self.wall:.1f} s"),
            ("throughput, jobs", f"{jobs / self.wall:.1f} jobs/s"),
            ("throughput, rows", f"{self.rows / self.wall:,.0f} rows/s"),
            ("single case: time to result p50", pct(self.single_seconds, 50)),
            ("single case: time to result p99", pct(self.single_seconds, 99)),
            ("upload: time to result p50", pct(self.upload_seconds, 50)),
            ("upload: time to result p99", pct(self.upload_seconds, 99)),
        ]


def print_table(rows: list[tuple[str, str]], title: str) -> None:
    width = max(len(name) for name, _ in rows)
    print(f"\n{title}\n{'figure'.ljust(width)}  value\n{'-' * width}  {'-' * 12}")
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")


def run_load(base: str, token: str, db_url: str, *, singles: int, clients: int, uploads: int, upload_rows: int,
             timeout: float, env: dict[str, str] | None = None) -> LoadResult:  # fmt: skip
    """`singles` JSON cases from `clients` concurrent clients plus `uploads` concurrent files, against a real server.

    Time to result is measured from the moment a POST is sent to the job's finished_at in the database (one clock:
    the same machine), so the clients do not poll the server and skew what they measure.
    """
    cases = _single_cases(singles)
    files = [jittered_csv(upload_rows, seed=100 + i) for i in range(uploads)]
    sent: dict[str, tuple[str, float]] = {}
    errors: list[str] = []
    lock = threading.Lock()
    auth = {"Authorization": f"Bearer {token}"}

    def post(kind: str, body: bytes, content_type: str) -> None:
        headers = {**auth, "Content-Type": content_type}
        started = time.time()
        try:
            request = urllib.request.Request(f"{base}/api/v1/jobs", data=body, headers=headers)
            with urllib.request.urlopen(request, timeout=60) as response:
                status, answer = response.status, json.loads(response.read())
            with lock:
                if status == 202 and answer.get("status") == "queued":
                    sent[answer["id"]] = (kind, started)
                else:
                    errors.append(f"{status}: {answer}")
        except Exception as exc:  # counted, not raised: the figure to report is how many
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}")

    def client(share: list[dict[str, Any]]) -> None:
        for case in share:
            post("single", json.dumps({"cases": [case]}).encode(), "application/json")

    def uploader(content: bytes, i: int) -> None:
        body, content_type = multipart({}, content, f"load-{i}.csv")
        post("upload", body, content_type)

    threads = [threading.Thread(target=client, args=(cases[i::clients],)) for i in range(clients)]
    threads += [threading.Thread(target=uploader, args=(content, i)) for i, content in enumerate(files)]
    first = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    ids = list(sent)
    if ids:
        wait_terminal(db_url, ids, timeout, env)
    found = assert_exactly_once(db_url, ids) if ids else {}
    finished = dict(query(db_url, "SELECT id::text, extract(epoch FROM finished_at)::float8 FROM jobs "
                          "WHERE id = ANY(%s)", [ids]))  # fmt: skip
    by_kind: dict[str, list[float]] = {"single": [], "upload": []}
    for job_id, (kind, started) in sent.items():
        by_kind[kind].append(finished[job_id] - started)
    last = max(finished.values(), default=first)
    rows = len(by_kind["single"]) + upload_rows * len(by_kind["upload"])
    return LoadResult(by_kind["single"], by_kind["upload"], errors, last - first, rows, found)


def _single_cases(n: int, seed: int = 5) -> list[dict[str, Any]]:
    """n cases near the bundled ones (2 % noise), in the default model's four features."""
    X, _ = wdbc()
    rng = np.random.default_rng(seed)
    base = X[rng.integers(0, len(X), n)][:, [FEATURES.index(f) for f in RF4]]
    values = base * rng.normal(1.0, 0.02, base.shape)
    return [{"case_id": f"L{i}", **dict(zip(RF4, map(float, row), strict=True))} for i, row in enumerate(values, 1)]
