"""Real processes, accounts made with the real CLI, and the bundled data as spreadsheets."""

from __future__ import annotations

import csv
import ctypes
import io
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer

from shared.features import FEATURES

BIN = Path(sys.executable).parent
#: The Celery nodes one `cytoscore worker` runs: one for single cases and small jobs, one for files.
WORKER_NODES = 2


#: Every queue name this test process made (`fresh_queue`): its Redis keys are deleted when the run ends.
QUEUES: set[str] = set()


def fresh_queue(prefix: str = "cytoscore-test") -> str:
    """A queue name of this run's own (no other run's worker reads it), remembered for `forget_queues`."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    QUEUES.add(name)
    return name


def forget_queues(redis_url: str, names: set[str] | None = None) -> int:
    """Delete every Redis key that names one of our queues (the lists, kombu's bindings); never FLUSHDB: other
    runs share the database. Returns how many keys were deleted."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_connect_timeout=3)
    deleted = 0
    try:
        for name in sorted(QUEUES if names is None else names):
            keys = list(client.scan_iter(match=f"*{name}*", count=1000))
            deleted += client.delete(*keys) if keys else 0
    finally:
        client.close()
    return deleted


def cli_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BROKER_URL")}
    env.update(extra)
    return env


def run_cli(args: list[str], extra_env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(BIN / "cytoscore"), *args],
        env=cli_env(extra_env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise AssertionError(f"cytoscore {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def _die_with_parent() -> None:
    """Linux: SIGTERM this child when the test process dies, so no stray worker outlives an aborted run."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class ServiceProcess:
    """A `cytoscore <command>` (or another program's) child process with its output in a log file."""

    def __init__(
        self, args: list[str], extra_env: dict[str, str], log: Path, program: str | None = None, cwd: Path | None = None
    ) -> None:
        self.log = log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            [program or str(BIN / "cytoscore"), *args],
            env=cli_env(extra_env),
            cwd=cwd,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # the child has no threads yet, so preexec_fn is safe
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float, count: int = 1) -> None:
        """Until the output holds `text` `count` times (a `cytoscore worker` says "ready." once per Celery node)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.output().count(text) >= count:
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"process exited with {self.proc.returncode}:\n{self.output()[-4000:]}")
            time.sleep(0.2)
        raise AssertionError(f"no {text!r} within {timeout} s:\n{self.output()[-4000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._out.close()
        return self.proc.returncode


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wdbc() -> tuple[np.ndarray, np.ndarray]:
    """The 569 bundled cases (features in published order) and their diagnoses as M/B."""
    data = load_breast_cancer()
    return data.data, np.where(data.target == 0, "M", "B")


def case_ids(n: int) -> list[str]:
    return [f"{i:06d}" for i in range(1, n + 1)]  # leading zeros must survive


def wdbc_csv(rows: slice | None = None) -> bytes:
    """The bundled cases in the Kaggle layout: id, diagnosis, the 30 features (values written exactly)."""
    X, y = wdbc()
    ids = case_ids(len(X))
    sel = range(len(X))[rows or slice(None)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "diagnosis", *FEATURES])
    for i in sel:
        writer.writerow([ids[i], y[i], *(repr(float(v)) for v in X[i])])
    return out.getvalue().encode()


def multipart(fields: dict[str, str], file: bytes, filename: str = "cases.csv") -> tuple[bytes, str]:
    """A multipart/form-data body built in memory.

    (werkzeug's test client spools large file bodies to a temporary file it never closes.)
    """
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n\r\n'.encode()
    body = b"".join(parts) + head + file + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


@dataclass(frozen=True)
class Person:
    email: str
    password: str
    role: str
    token: str

    def client(self, app: Any) -> Any:
        """A test client that authenticates every request with this person's bearer token."""
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {self.token}"
        return client


def make_person(env: dict[str, str], role: str, email: str | None = None) -> Person:
    """An account made the way an admin makes one: `cytoscore users add` and `cytoscore tokens add`."""
    email = email or f"{role}-{uuid.uuid4().hex[:6]}@example.org"
    password = f"correct horse {uuid.uuid4().hex[:8]}"
    subprocess.run(
        [str(BIN / "cytoscore"), "users", "add", email, "--role", role],
        input=password + "\n", env=cli_env(env), check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    token = run_cli(["tokens", "add", email], env).stdout.strip()
    return Person(email, password, role, token)


# The four features of the default model, wdbc-rf4.
RF4 = ["radius_mean", "texture_mean", "smoothness_mean", "compactness_mean"]


def jittered_csv(n: int, seed: int = 7) -> bytes:
    """n cases drawn from the bundled ones with 2 % multiplicative noise, four-feature layout."""
    X, _ = wdbc()
    rng = np.random.default_rng(seed)
    base = X[rng.integers(0, len(X), n)][:, [FEATURES.index(f) for f in RF4]]
    values = base * rng.normal(1.0, 0.02, base.shape)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", *RF4])
    writer.writerows([f"J{i}", *map(repr, row.tolist())] for i, row in enumerate(values, 1))
    return out.getvalue().encode()
