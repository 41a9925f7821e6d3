"""The reliability tests' own helpers: a private PostgreSQL cluster, a job read from the database, processes killed.

The scenario, its database and broker, the crowd and the exactly-once checks are in testkit.reliability.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from testkit.reliability import query, wait_until
from testkit.support import free_port


class PostgresCluster:
    """A private PostgreSQL cluster in a temporary folder, run as the postgres user, on a free port."""

    def __init__(self) -> None:
        (bindir,) = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1:]
        self.bin = Path(bindir)
        self.root = Path(tempfile.mkdtemp(prefix="cytoscore-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        shutil.chown(self.root, "postgres", "postgres")
        self._as_postgres([self.bin / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                           "--no-sync"])  # fmt: skip
        self.start()

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, argv: list[Any], timeout: float = 120) -> None:
        argv = ["runuser", "-u", "postgres", "--", *map(str, argv)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"

    def _ctl(self, *args: str) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres([self.bin / "pg_ctl", "-D", self.data, "-l", self.root / "pg.log", "-o", opts, "-w",
                           "-t", "60", *args])  # fmt: skip

    def start(self) -> None:
        self._ctl("start")

    def restart(self) -> None:
        self._ctl("restart", "-m", "fast")

    def destroy(self) -> None:
        with contextlib.suppress(AssertionError):
            self._ctl("stop", "-m", "immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def job(db_url: str, job_id: str) -> dict[str, Any]:
    rows = query(db_url, "SELECT status, attempts, rows_total, rows_scored, rows_rejected, error, "
                 "extract(epoch FROM heartbeat_at) FROM jobs WHERE id = %s", [job_id])  # fmt: skip
    status, attempts, total, scored, rejected, error, beat = rows[0]
    return {"id": job_id, "status": status, "attempts": attempts, "rows_total": total, "done": scored + rejected,
            "error": error, "heartbeat": beat}  # fmt: skip


def wait_running_midway(db_url: str, job_id: str, timeout: float = 120, attempt: int | None = None) -> dict[str, Any]:
    """Until the job is running with at least one batch stored and more to come."""

    def midway() -> dict[str, Any] | None:
        j = job(db_url, job_id)
        ok = j["status"] == "running" and 0 < j["done"] < j["rows_total"]
        return j if ok and (attempt is None or j["attempts"] == attempt) else None

    return wait_until(midway, timeout, f"job {job_id} running midway: {job(db_url, job_id)}")  # type: ignore[no-any-return]


def _children(pid: int) -> list[int]:
    with contextlib.suppress(FileNotFoundError):
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def pool_children(pid: int) -> list[int]:
    """The pool processes that score files under a `cytoscore worker` process: those of its Celery node for files
    (its other node, for single cases, keeps a pool process of its own)."""
    for node in _children(pid):
        with contextlib.suppress(FileNotFoundError):
            if b"CYTOSCORE_WORKER_ROLE=files" in Path(f"/proc/{node}/environ").read_bytes().split(b"\0"):
                return _children(node)
    return []


def kill(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
