"""Time a clinician's single case, idle and then while the lab's files are being scored.

A real `cytoscore web` and two `cytoscore worker` processes on a throwaway database. First `--idle` single cases one
after the other (`POST /api/v1/jobs?wait=30`, answered with the result); then a 1M-row upload and ten 10k-row uploads
are sent, and once they are all in flight, `--cases` single cases from `--clients` clients. Each case's time runs from
the request sent to its answer received.

Usage: python -m bench.clinicians_first [--cases 200] [--clients 10] [--idle 100] [--big 1000000] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from bench.single_case import cases
from bench.stack import file_upload, save_json, throwaway_stack
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--idle", type=int, default=100)
    parser.add_argument("--big", type=int, default=1_000_000, help="rows of the one large upload")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    files = [csv_file(args.big), *(csv_file(10_000, seed=100 + i) for i in range(10))]
    with throwaway_stack(**SETTINGS) as (env, _, tmp):
        token = make_person(env, "lab").token
        with services(env, tmp, 2) as running:
            base = running.base
            sample = cases(args.idle + args.cases)
            for case in sample[:20]:  # warm up
                one_case(base, token, case)
            idle = [one_case(base, token, case) for case in sample[: args.idle]]
            uploading = threading.Thread(target=lab_files, args=(base, token, files))
            uploading.start()
            time.sleep(3)  # the files arrive and are being scored
            loaded_at = time.monotonic()
            busy = crowd(base, token, sample[args.idle :], args.clients)
            took = time.monotonic() - loaded_at
            uploading.join(900)
    figures: dict[str, Any] = {
        "idle_p50_ms": float(np.percentile(idle, 50)) * 1e3,
        "idle_p99_ms": float(np.percentile(idle, 99)) * 1e3,
        "load_p50_ms": float(np.percentile(busy, 50)) * 1e3,
        "load_p99_ms": float(np.percentile(busy, 99)) * 1e3,
        "load_cases": len(busy),
        "load_clients": args.clients,
        "load_seconds": took,
        "big_rows": args.big,
    }
    print(f"\n{args.idle} idle single cases, then {len(busy)} from {args.clients} clients while a {args.big:,}-row "
          "upload and ten 10,000-row uploads are scored by 2 workers\n")  # fmt: skip
    print("| figure | ms |\n|---|---|")
    for key in ("idle_p50_ms", "idle_p99_ms", "load_p50_ms", "load_p99_ms"):
        print(f"| single case {key[:-3].replace('_', ' ')} | {figures[key]:.2f} |")
    save_json(args.json, figures)


if __name__ == "__main__":
    main()
