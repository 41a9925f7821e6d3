"""Single cases and row-by-row lab work: cytoscore beside the tutorial's synchronous route, same run, same model.

- cytoscore: `POST /api/v1/jobs` (one case, JSON) then `GET /api/v1/jobs/<id>?wait=30`, against a real
  `cytoscore web` and one warm `cytoscore worker` (PostgreSQL + Redis).
- tutorial: one form POST to bench/tutorial_app.py (gunicorn, 2 workers) → `pipe.predict` → "M" or "B".
- lab work: a 10,000-row upload to cytoscore (submit → succeeded) against the same rows posted one by one
  to the tutorial route (measured on `--rowwise` rows and scaled to 10,000).

Usage: .venv/bin/python bench/single_case.py [--cases 200] [--rowwise 1000]
Prints a table; `--json PATH` also writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stack import throwaway_stack
from shared.features import FEATURES
from tests.support import ServiceProcess, free_port, make_person, multipart, wdbc
from tests.test_progress import jittered_csv

RF4 = ["radius_mean", "texture_mean", "smoothness_mean", "compactness_mean"]
BIN = Path(sys.executable).parent


def call(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> bytes:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.read()


def wait_http(url: str, proc: ServiceProcess) -> None:
    for _ in range(300):
        try:
            call(url)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            assert proc.proc.poll() is None, proc.output()[-3000:]
            time.sleep(0.1)
    raise RuntimeError(f"{url} never answered")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def cases(n: int) -> list[dict[str, float]]:
    X, _ = wdbc()
    rng = np.random.default_rng(3)
    rows = X[rng.integers(0, len(X), n)][:, [FEATURES.index(f) for f in RF4]]
    return [dict(zip(RF4, map(float, row), strict=True)) for row in rows]


def cytoscore_single(base: str, token: str, sample: list[dict[str, float]]) -> list[float]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    times = []
    for i, case in enumerate(sample):
        start = time.perf_counter()
        body = json.dumps({"cases": [{"case_id": f"b{i}", **case}]}).encode()
        job = json.loads(call(f"{base}/api/v1/jobs", body, headers))
        done = json.loads(call(f"{base}/api/v1/jobs/{job['id']}?wait=30", headers=headers))
        times.append(time.perf_counter() - start)
        assert done["status"] == "succeeded", done
    return times


def tutorial_rows(base: str, sample: list[dict[str, float]]) -> list[float]:
    times = []
    for case in sample:
        start = time.perf_counter()
        answer = call(base, urllib.parse.urlencode({k: repr(v) for k, v in case.items()}).encode())
        times.append(time.perf_counter() - start)
        assert answer in (b"M", b"B")
    return times


def cytoscore_upload(base: str, token: str, content: bytes) -> float:
    body, content_type = multipart({}, content, "lab.csv")
    headers = {"Authorization": f"Bearer {token}"}
    start = time.perf_counter()
    job = json.loads(call(f"{base}/api/v1/jobs", body, {**headers, "Content-Type": content_type}))
    while (state := json.loads(call(f"{base}/api/v1/jobs/{job['id']}?wait=60", headers=headers)))["status"] not in (
        "succeeded",
        "failed",
    ):
        pass
    assert state["status"] == "succeeded", state
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--rowwise", type=int, default=1000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    settings = {"CYTOSCORE_MAX_JOBS_IN_FLIGHT": "1000", "CYTOSCORE_JOBS_RATE_LIMIT": "100000/minute",
                "CYTOSCORE_WORKER_CONCURRENCY": "1"}  # fmt: skip
    with throwaway_stack(**settings) as (env, _, tmp):
        token = make_person(env, "lab").token
        port, tport = free_port(), free_port()
        worker = ServiceProcess(["worker"], env, tmp / "worker.log")
        web = ServiceProcess(["web"], {**env, "PORT": str(port)}, tmp / "web.log")
        tutorial = ServiceProcess(
            ["--bind", f"127.0.0.1:{tport}", "--workers", "2", "--chdir", str(Path(__file__).parent),
             "tutorial_app:app"], {**env, "PYTHONPATH": str(Path(__file__).parent.parent)},
            tmp / "tutorial.log", program=str(BIN / "gunicorn"))  # fmt: skip
        try:
            worker.wait_for_log("ready.", 120)
            base, tbase = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{tport}"
            wait_http(f"{base}/healthz", web)
            wait_http(tbase, tutorial)
            sample = cases(args.cases)
            cytoscore_single(base, token, sample[:20])  # warm both up
            tutorial_rows(tbase, sample[:20])
            ours, theirs = cytoscore_single(base, token, sample), tutorial_rows(tbase, sample)
            rowwise = tutorial_rows(tbase, cases(args.rowwise))
            upload = cytoscore_upload(base, token, jittered_csv(10_000))
        finally:
            for proc in (tutorial, web, worker):
                proc.stop()

    figures = {
        "single_p50_ms": percentile(ours, 50) * 1e3,
        "single_p99_ms": percentile(ours, 99) * 1e3,
        "tutorial_p50_ms": percentile(theirs, 50) * 1e3,
        "tutorial_p99_ms": percentile(theirs, 99) * 1e3,
        "upload_10k_s": upload,
        "tutorial_rowwise_10k_s": statistics.fmean(rowwise) * 10_000,
    }
    speedup = figures["tutorial_rowwise_10k_s"] / figures["upload_10k_s"]
    p50, t50 = figures["single_p50_ms"], figures["tutorial_p50_ms"]
    rows = [
        ("single case p50 (ms)", p50, t50, t50 / p50, "≥ 1", p50 <= t50),
        ("single case p99 (ms)", figures["single_p99_ms"], figures["tutorial_p99_ms"],
         3 * figures["tutorial_p50_ms"] / figures["single_p99_ms"], "p99 ≤ 3 × tutorial p50",
         figures["single_p99_ms"] <= 3 * figures["tutorial_p50_ms"]),
        ("10k rows (s): upload vs row by row", figures["upload_10k_s"], figures["tutorial_rowwise_10k_s"],
         speedup, "≥ 200", speedup >= 200),
    ]  # fmt: skip
    print(
        f"\n{args.cases} sequential single cases, model wdbc-rf4, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}\n"
    )
    print("| figure | cytoscore | tutorial | ratio | goal | pass |\n|---|---|---|---|---|---|")
    for figure, mine, yard, ratio, goal, ok in rows:
        print(f"| {figure} | {mine:.2f} | {yard:.2f} | {ratio:.2f} | {goal} | {'yes' if ok else 'no'} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
