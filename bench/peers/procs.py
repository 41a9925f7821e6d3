"""Peer servers as child processes: their own session, a readiness poll, and a stop that leaves nothing running.

BentoML's workers put themselves in sessions of their own, so a process-group kill alone would miss them: the stop
also signals every descendant it found before the group went down.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), or None if it has ended."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def descendants(pid: int) -> dict[int, str]:
    """Every process below pid, with its start time, so a later signal cannot reach a reused pid."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))):
            tree.setdefault(int(fields[1]), []).append(int(entry.name))
    found: dict[int, str] = {}
    todo = [pid]
    while todo:
        for kid in tree.get(todo.pop(), []):
            if fields := _stat(kid):
                found[kid] = fields[19]
                todo.append(kid)
    return found


def _signal(family: dict[int, str], sig: signal.Signals) -> None:
    for pid, started in family.items():
        fields = _stat(pid)
        if fields and fields[19] == started and fields[0] != "Z":
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


class Server:
    """`with Server(...) as s:` starts argv, waits until ready_url answers 200, and stops it on the way out."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str], cwd: Path, log: Path, ready_url: str):
        self.name, self.argv, self.env, self.cwd, self.log, self.ready_url = name, argv, env, cwd, log, ready_url
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)  # fmt: skip
        try:
            self._wait_ready(timeout=300)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def _wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log}")
            try:
                with urllib.request.urlopen(self.ready_url, timeout=5) as response:
                    if response.status == 200:
                        return
            except (OSError, urllib.error.HTTPError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s; see {self.log}")

    def stop(self) -> None:
        if self.proc is None:
            return
        family = descendants(self.proc.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        _signal(family, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=30)
        _signal({**family, **descendants(self.proc.pid)}, signal.SIGKILL)
        self.proc.kill()  # no-op if it has exited
        self.proc.wait()
        self.proc = None
