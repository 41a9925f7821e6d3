"""Time a clinician's single case, idle and then while the lab's files are being scored.

A real `cytoscore web` and two `cytoscore worker` processes on a throwaway database. First `--idle` single cases one
after the other (`POST /api/v1/jobs?wait=30`, answered with the result), then `--cases` from `--clients` clients with
nothing else running (what the crowd alone costs: the machine's CPU seconds per case bound its rate). Then a 1M-row
upload and ten 10k-row uploads are sent, and the crowd's cases are timed in two halves: one a second after the files
start to arrive (the web checks and stores them, the 10k-row jobs are scored), the other once the 1M-row job is
being scored. Each case's time runs from the request sent to its answer received.

With `--rate R` the crowd is open instead, as a clinic's cases come: one case sent every 1/R s whatever the
answers before it, `--cases` of them with nothing else running, then from a second after the files start until the
1M-row job has finished (not part of `make bench`, whose rows follow issue 22's closed crowd).

Usage: python -m bench.clinicians_first [--cases 200] [--clients 10 | --rate R] [--idle 100] [--big 1000000]
       [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from bench.single_case import cases
from bench.stack import FINISHED, file_upload, machine_busy_seconds, save_json, throwaway_stack
from bench.upload_throughput import services
from testkit.files import csv_file
from testkit.support import make_person

# One account is the whole crowd here: its throttles are lifted, nothing else.
SETTINGS = {"CYTOSCORE_MAX_JOBS_IN_FLIGHT": "10000", "CYTOSCORE_JOBS_RATE_LIMIT": "100000/minute"}


def one_case(base: str, token: str, case: dict[str, float]) -> float:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = json.dumps({"cases": [case]}).encode()
    start = time.perf_counter()
    request = urllib.request.Request(f"{base}/api/v1/jobs?wait=30", data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = json.loads(response.read())
    elapsed = time.perf_counter() - start
    assert answer["status"] == "succeeded" and answer["results"][0]["diagnosis"] in ("M", "B"), answer
    return elapsed


def crowd(base: str, token: str, sample: list[dict[str, float]], clients: int) -> list[float]:
    times: list[float] = []
    lock = threading.Lock()

    def client(share: list[dict[str, float]]) -> None:
        for case in share:
            took = one_case(base, token, case)
            with lock:
                times.append(took)

    threads = [threading.Thread(target=client, args=(sample[i::clients],)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return times


def arrivals(
    base: str, token: str, sample: list[dict[str, float]], rate: float, until: Callable[[], bool] | None = None
) -> list[tuple[float, float]]:
    """Send a case every 1/rate s, each on a thread of its own, until `until()` (or, without it, the whole sample);
    (when it was sent, on the monotonic clock; how long its answer took) for each."""
    with ThreadPoolExecutor(max_workers=64) as pool:
        start, sent = time.monotonic(), []
        for k, case in enumerate(sample):
            if until is not None and until():
                break
            time.sleep(max(0.0, start + k / rate - time.monotonic()))
            sent.append((time.monotonic(), pool.submit(one_case, base, token, case)))
        else:
            if until is not None:
                raise RuntimeError(f"{len(sample)} cases were not enough at {rate:g} per second")
        return [(at, future.result()) for at, future in sent]


def lab_files(base: str, token: str, paths: list[Path]) -> list[str]:
    """Send the files at once, each from a thread of its own; return their job ids as the POSTs answer."""
    ids: list[str] = []

    def send(path: Path) -> None:
        request = file_upload(f"{base}/api/v1/jobs", path, {"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=900) as response:
            ids.append(json.loads(response.read())["id"])

    threads = [threading.Thread(target=send, args=(p,)) for p in paths]
    for t in threads:
        t.start()
    for t in threads:
        t.join(900)
    return ids


@dataclass
class Stack:
    base: str
    token: str
    conn: psycopg.Connection[Any]
    sample: list[dict[str, float]]  # the cases after the idle ones
    idle: list[float]  # the idle cases' times
    files: list[Path]  # the lab's: one `--big`-row upload and ten of 10k rows


@contextmanager
def stack(args: argparse.Namespace, cases_after_idle: int) -> Iterator[Stack]:
    """A web and 2 workers on a throwaway database, warmed up, after `--idle` single cases one after the other."""
    files = [csv_file(args.big), *(csv_file(10_000, seed=100 + i) for i in range(10))]
    with throwaway_stack(**SETTINGS) as (env, dsn, tmp):
        token = make_person(env, "lab").token
        with services(env, tmp, 2) as running, psycopg.connect(dsn, autocommit=True) as conn:
            sample = cases(args.idle + cases_after_idle)
            for case in sample[:20]:  # warm up
                one_case(running.base, token, case)
            idle = [one_case(running.base, token, case) for case in sample[: args.idle]]
            yield Stack(running.base, token, conn, sample[args.idle :], idle, files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--idle", type=int, default=100)
    parser.add_argument("--big", type=int, default=1_000_000, help="rows of the one large upload")
    parser.add_argument("--rate", type=float, default=None, help="open arrivals: cases sent per second")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.rate is not None:
        open_crowd(args)
        return

    half = args.cases // 2
    with stack(args, 2 * args.cases) as run:
        base, token, conn, idle = run.base, run.token, run.conn, run.idle
        busy_before = machine_busy_seconds()
        crowd_started = time.monotonic()
        alone = crowd(base, token, run.sample[: args.cases], args.clients)
        crowd_cpu = (machine_busy_seconds() - busy_before) / len(alone)
        crowd_rate = len(alone) / (time.monotonic() - crowd_started)
        loaded = run.sample[args.cases :]
        uploading = threading.Thread(target=lab_files, args=(base, token, run.files))
        uploading.start()
        time.sleep(1)  # the files arrive, are checked and stored; the small ones are scored
        arriving = crowd(base, token, loaded[:half], args.clients)
        big_job = wait_for_big_job(conn, args.big)
        scoring = crowd(base, token, loaded[half:], args.clients)
        still_scoring = big_job_status(conn, args.big) == "running"
        uploading.join(900)
    busy = arriving + scoring
    figures: dict[str, Any] = {
        "idle_p50_ms": _ms(idle, 50),
        "idle_p99_ms": _ms(idle, 99),
        "crowd_alone_p50_ms": _ms(alone, 50),
        "crowd_alone_p99_ms": _ms(alone, 99),
        "crowd_alone_cases_per_s": crowd_rate,
        "machine_cpu_ms_per_case": crowd_cpu * 1e3,
        "load_p50_ms": _ms(busy, 50),
        "load_p99_ms": _ms(busy, 99),
        "arriving_p50_ms": _ms(arriving, 50),
        "arriving_p99_ms": _ms(arriving, 99),
        "scoring_p50_ms": _ms(scoring, 50),
        "scoring_p99_ms": _ms(scoring, 99),
        "big_job_waited_s": big_job,
        "big_job_running_at_end": still_scoring,
        "load_cases": len(busy),
        "load_clients": args.clients,
        "big_rows": args.big,
    }
    print(f"\n{args.idle} idle single cases; {len(alone)} from {args.clients} clients with nothing else running; "
          f"then {len(busy)} from {args.clients} clients while a {args.big:,}-row upload and ten 10,000-row uploads "
          "arrive and are scored by 2 workers\n")  # fmt: skip
    print("| figure | p50 (ms) | p99 (ms) |\n|---|---|---|")
    for label, key in (("idle, one client", "idle"), (f"{args.clients} clients, nothing else running", "crowd_alone"),
                       ("while the files arrive", "arriving"), ("while the 1M-row job is scored", "scoring"),
                       ("under load, both halves", "load")):  # fmt: skip
        print(f"| {label} | {figures[key + '_p50_ms']:.2f} | {figures[key + '_p99_ms']:.2f} |")
    print(f"\nWith nothing else running: {crowd_rate:.0f} cases/s, {crowd_cpu * 1e3:.1f} ms of machine CPU per case "
          f"({os.cpu_count()} cores). The 1M-row job was {'still' if still_scoring else 'no longer'} being scored when "
          "the last case was answered.")  # fmt: skip
    save_json(args.json, figures)


def open_crowd(args: argparse.Namespace) -> None:
    """The `--rate` run: idle cases, then open arrivals alone, then open arrivals while the lab's files arrive and
    are scored (split at the moment the last upload's POST was answered)."""
    with stack(args, args.cases + 20_000) as run:
        idle = run.idle
        alone = [took for _, took in arrivals(run.base, run.token, run.sample[: args.cases], args.rate)]
        stored: list[float] = []  # when the last upload's POST was answered

        def upload() -> None:
            lab_files(run.base, run.token, run.files)
            stored.append(time.monotonic())

        uploading = threading.Thread(target=upload)
        uploading.start()
        time.sleep(1)  # as the closed crowd: the files are arriving
        loaded = arrivals(run.base, run.token, run.sample[args.cases :], args.rate,
                          lambda: big_job_status(run.conn, args.big) in FINISHED)  # fmt: skip
        uploading.join(900)
    if not stored:
        raise RuntimeError("the lab's uploads did not all finish")
    arriving = [took for at, took in loaded if at < stored[0]]
    scoring = [took for at, took in loaded if at >= stored[0]]
    figures: dict[str, Any] = {"rate_per_s": args.rate, "idle_p50_ms": _ms(idle, 50), "idle_p99_ms": _ms(idle, 99),
                               "big_rows": args.big}  # fmt: skip
    rows = [("idle, one client", "idle", idle), (f"{args.rate:g} cases/s, nothing else running", "open_alone", alone),
            ("the same while the files arrive", "open_arriving", arriving),
            ("the same while only scoring is left", "open_scoring", scoring),
            ("the same, both", "open_load", arriving + scoring)]  # fmt: skip
    print(f"\n{args.idle} idle single cases; {len(alone)} sent at {args.rate:g} per second with nothing else running; "
          f"then {len(loaded)} at the same rate from a second after a {args.big:,}-row upload and ten 10,000-row "
          "uploads started until the large job finished (2 workers)\n")  # fmt: skip
    print("| figure | cases | p50 (ms) | p99 (ms) |\n|---|---|---|---|")
    for label, key, times in rows:
        figures.update({f"{key}_cases": len(times), f"{key}_p50_ms": _ms(times, 50), f"{key}_p99_ms": _ms(times, 99)})
        print(f"| {label} | {len(times)} | {figures[key + '_p50_ms']:.2f} | {figures[key + '_p99_ms']:.2f} |")
    save_json(args.json, figures)


def _ms(times: list[float], q: int) -> float:
    return float(np.percentile(times, q)) * 1e3 if times else float("nan")


def big_job_status(conn: psycopg.Connection[Any], rows: int) -> str | None:
    found = conn.execute("SELECT status FROM jobs WHERE rows_total = %s", (rows,)).fetchone()
    return found[0] if found else None


def wait_for_big_job(conn: psycopg.Connection[Any], rows: int, timeout: float = 300) -> float:
    """Wait until the large upload's job is being scored; return how long that took (s)."""
    started = time.monotonic()
    while big_job_status(conn, rows) != "running":
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"the {rows:,}-row job was not being scored within {timeout:.0f} s")
        time.sleep(0.05)
    return time.monotonic() - started


if __name__ == "__main__":
    main()
