"""Give a benchmark a throwaway cytoscore installation (its own database, queue, folder) and read its processes."""

from __future__ import annotations

import json
import os
import tempfile
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from shared.schema import JobStatus
from testkit.support import run_cli

#: A job whose rows are all scored and stored: held for review too (the jittered files have rows refused as
#: implausible, a worst value below its mean).
SCORED = (JobStatus.SUCCEEDED.value, JobStatus.NEEDS_REVIEW.value)
FINISHED = tuple(status.value for status in JobStatus if status.terminal)
ADMIN_URL = os.environ.get("CYTOSCORE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("CYTOSCORE_TEST_REDIS", "redis://127.0.0.1:6379/14")


def save_json(path: Path | None, figures: dict[str, Any]) -> None:
    """Write a bench's figures where `--json` asked for them (bench.report reads them back); nothing without it."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(figures, indent=2) + "\n")


@contextmanager
def throwaway_stack(**settings: str) -> Iterator[tuple[dict[str, str], str, Path]]:
    """Yield (environment for `cytoscore` commands, libpq DSN of the database, a scratch folder)."""
    name = f"cytoscore_bench_{uuid.uuid4().hex[:8]}"
    dsn = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            with tempfile.TemporaryDirectory() as tmp:
                env = {
                    "DATABASE_URL": dsn.replace("postgresql://", "postgresql+psycopg://"),
                    "BROKER_URL": REDIS_URL,
                    "CYTOSCORE_VAR_DIR": tmp,
                    "SECRET_KEY": uuid.uuid4().hex,
                    "CYTOSCORE_QUEUE": f"bench-{uuid.uuid4().hex[:6]}",
                    **settings,
                }
                run_cli(["migrate"], env)
                yield env, dsn, Path(tmp)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants that are alive now (Linux /proc; no psutil)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo.extend(int(child) for child in children.read_text().split())
            except OSError:
                continue  # the thread or process ended while we looked
    return found


def peak_rss_kb(pid: int) -> int:
    """VmHWM: the most resident memory the process has ever had, in kB (0 once it has gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class PeakRss:
    """The highest VmHWM of each process in some process trees, sampled while they run and read once at the end.

    Sampling keeps the peak of a pool child that is replaced mid-run; the final read catches the last moments.
    """

    def __init__(self, roots: dict[str, list[int]], interval: float = 0.25) -> None:
        self.roots = roots
        self.interval = interval
        self.peaks: dict[tuple[str, int], int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-rss", daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.read()

    def sample(self) -> None:
        for role, pids in self.roots.items():
            for root in pids:
                for pid in process_tree(root):
                    key = (role, pid)
                    self.peaks[key] = max(self.peaks.get(key, 0), peak_rss_kb(pid))

    def read(self) -> dict[str, float]:
        """Stop sampling, take a last reading, and return each role's highest peak in MB (10^6 bytes)."""
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join()
            self.sample()
        by_role: dict[str, float] = {}
        for (role, _), kb in self.peaks.items():
            by_role[role] = max(by_role.get(role, 0.0), kb * 1024 / 1e6)
        return by_role

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()


def cpu_seconds(root: int) -> float:
    """User + system CPU time of a process tree's live processes, in seconds."""
    total = 0
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of proc(5)
    return total / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot, all cores together: /proc/stat's first line, less
    idle and iowait. Every process counts, the benchmark's own client and PostgreSQL's background writers too."""
    ticks = [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def file_upload(url: str, path: Path, headers: dict[str, str] | None = None) -> urllib.request.Request:
    """A POST of the file as multipart/form-data field `file`, its body streamed from disk a block at a time."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body() -> Iterator[bytes]:
        yield head
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                yield block
        yield tail

    length = str(len(head) + path.stat().st_size + len(tail))
    sent = {**(headers or {}), "Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": length}
    return urllib.request.Request(url, data=body(), headers=sent, method="POST")
