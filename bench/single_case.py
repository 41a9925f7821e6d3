"""Time single cases and row-by-row lab work in cytoscore beside the tutorial's synchronous route.

- cytoscore: `POST /api/v1/jobs?wait=30` with one case, answered with its result and its explanation, against a
  real `cytoscore web` and one warm `cytoscore worker`; and the same with `explain=0`, to see what the explanation
  costs.
- tutorial: a form POST to bench.tutorial_app (gunicorn, 2 workers), serving cytoscore's wdbc-rf4 forest (the
  yardstick the goal is judged on) and, beside it, the tutorial's own 500-tree forest.
- lab work: a 10,000-row upload to cytoscore against the same rows posted one by one to the tutorial route.

The single-case series are measured in turns, case by case, so a busy machine slows all of them alike.

Usage: python -m bench.single_case [--cases 200] [--rowwise 1000] [--json PATH]
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

from bench.stack import FINISHED, SCORED, save_json, throwaway_stack
from shared.features import FEATURES
from shared.settings import ROOT
from testkit.support import RF4, WORKER_NODES, ServiceProcess, free_port, jittered_csv, make_person, multipart, wdbc

# Sequential cases never meet the per-person limits; one warm pool process, as a clinic's quiet hour has.
SETTINGS = {"CYTOSCORE_MAX_JOBS_IN_FLIGHT": "1000", "CYTOSCORE_JOBS_RATE_LIMIT": "100000/minute",
            "CYTOSCORE_WORKER_CONCURRENCY": "1"}  # fmt: skip
BIN = Path(sys.executable).parent


def call(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> bytes:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(request, timeout=120) as response:
        return bytes(response.read())


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


def cytoscore_case(base: str, headers: dict[str, str], i: int, case: dict[str, float], explain: bool = True) -> float:
    start = time.perf_counter()
    body = json.dumps({"cases": [{"case_id": f"b{i}", **case}]}).encode()
    done = json.loads(call(f"{base}/api/v1/jobs?wait=30{'' if explain else '&explain=0'}", body, headers))
    elapsed = time.perf_counter() - start
    (result,) = done["results"]
    assert done["status"] == "succeeded" and result["diagnosis"] in ("M", "B"), done  # the answer itself
    assert (result["explanation"] is not None) == explain, result
    return elapsed


def tutorial_case(base: str, case: dict[str, float]) -> float:
    start = time.perf_counter()
    answer = call(base, urllib.parse.urlencode({k: repr(v) for k, v in case.items()}).encode())
    elapsed = time.perf_counter() - start
    assert answer in (b"M", b"B")
    return elapsed


def single_cases(base: str, token: str, tutorials: list[str], sample: list[dict[str, float]]) -> list[list[float]]:
    """Each case through cytoscore (explained, then not), then through each tutorial server: one series per
    system, in turns."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    series: list[list[float]] = [[] for _ in range(2 + len(tutorials))]
    for i, case in enumerate(sample):
        series[0].append(cytoscore_case(base, headers, i, case))
        series[1].append(cytoscore_case(base, headers, i, case, explain=False))
        for k, tbase in enumerate(tutorials, start=2):
            series[k].append(tutorial_case(tbase, case))
    return series


def tutorial_rows(base: str, sample: list[dict[str, float]]) -> list[float]:
    return [tutorial_case(base, case) for case in sample]


def cytoscore_upload(base: str, token: str, content: bytes) -> float:
    body, content_type = multipart({}, content, "lab.csv")
    headers = {"Authorization": f"Bearer {token}"}
    start = time.perf_counter()
    job = json.loads(call(f"{base}/api/v1/jobs", body, {**headers, "Content-Type": content_type}))
    while (state := json.loads(call(f"{base}/api/v1/jobs/{job['id']}?wait=60", headers=headers)))["status"] not in (
        FINISHED
    ):
        pass
    assert state["status"] in SCORED, state
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--rowwise", type=int, default=1000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    with throwaway_stack(**SETTINGS) as (env, _, tmp):
        token = make_person(env, "lab").token
        port, tport, t500port = free_port(), free_port(), free_port()
        worker = ServiceProcess(["worker"], env, tmp / "worker.log")
        web = ServiceProcess(["web"], {**env, "PORT": str(port)}, tmp / "web.log")
        tutorial = tutorial_server(tport, env, tmp / "tutorial.log")
        tutorial500 = tutorial_server(t500port, {**env, "CYTOSCORE_BENCH_TUTORIAL_FOREST": "500"}, tmp / "t500.log")
        try:
            worker.wait_for_log("ready.", 120, count=WORKER_NODES)
            base, tbase, t500base = (f"http://127.0.0.1:{p}" for p in (port, tport, t500port))
            wait_http(f"{base}/healthz", web)
            wait_http(tbase, tutorial)
            wait_http(t500base, tutorial500)
            sample = cases(args.cases)
            single_cases(base, token, [tbase, t500base], sample[:20])  # warm all three up
            ours, plain, theirs, theirs500 = single_cases(base, token, [tbase, t500base], sample)
            rowwise = tutorial_rows(tbase, cases(args.rowwise))
            upload = cytoscore_upload(base, token, jittered_csv(10_000))
        finally:
            for proc in (tutorial500, tutorial, web, worker):
                proc.stop()

    figures = {
        "single_p50_ms": percentile(ours, 50) * 1e3,
        "single_p99_ms": percentile(ours, 99) * 1e3,
        "single_unexplained_p50_ms": percentile(plain, 50) * 1e3,
        "single_unexplained_p99_ms": percentile(plain, 99) * 1e3,
        "tutorial_p50_ms": percentile(theirs, 50) * 1e3,
        "tutorial_p99_ms": percentile(theirs, 99) * 1e3,
        "tutorial500_p50_ms": percentile(theirs500, 50) * 1e3,
        "tutorial500_p99_ms": percentile(theirs500, 99) * 1e3,
        "upload_10k_s": upload,
        "tutorial_rowwise_10k_s": statistics.fmean(rowwise) * 10_000,
    }
    print_table(figures, args.cases)
    save_json(args.json, figures)


def tutorial_server(port: int, env: dict[str, str], log: Path) -> ServiceProcess:
    argv = ["--bind", f"127.0.0.1:{port}", "--workers", "2", "--chdir", str(ROOT), "bench.tutorial_app:app"]
    return ServiceProcess(argv, env, log, program=str(BIN / "gunicorn"))


def print_table(f: dict[str, float], n: int) -> None:
    """The goal is judged against the tutorial serving the same model; its own 500-tree forest is shown beside."""
    p50, p99, t50, t500 = f["single_p50_ms"], f["single_p99_ms"], f["tutorial_p50_ms"], f["tutorial500_p50_ms"]
    speedup = f["tutorial_rowwise_10k_s"] / f["upload_10k_s"]
    rows = [
        ("single case p50 (ms)", p50, t50, t50 / p50, "≥ 1", p50 <= t50, f"{t500:.2f}", f"{t500 / p50:.2f}"),
        ("single case p99 (ms)", p99, f["tutorial_p99_ms"], 3 * t50 / p99, "p99 ≤ 3 × tutorial p50", p99 <= 3 * t50,
         f"{f['tutorial500_p99_ms']:.2f}", f"{3 * t500 / p99:.2f}"),
        ("10k rows (s): one upload vs posting row by row", f["upload_10k_s"], f["tutorial_rowwise_10k_s"], speedup,
         "≥ 200", speedup >= 200, "–", "–"),
    ]  # fmt: skip
    print(f"\n{n} sequential single cases, model wdbc-rf4, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}\n")
    print("| figure | cytoscore | tutorial, same model | ratio | goal | pass | tutorial's own forest (500 trees) "
          "| ratio |\n|---|---|---|---|---|---|---|---|")  # fmt: skip
    for figure, mine, yard, ratio, goal, ok, yard500, ratio500 in rows:
        print(f"| {figure} | {mine:.2f} | {yard:.2f} | {ratio:.2f} | {goal} | {'yes' if ok else 'no'} | {yard500} "
              f"| {ratio500} |")  # fmt: skip


if __name__ == "__main__":
    main()
