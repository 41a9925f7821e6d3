"""Time downloading a finished job's results as CSV, JSON and XLSX, as lab staff do from the job page.

A CSV in the Kaggle layout (`--rows`, the same jittered file as bench.upload_throughput) is scored by a real
`cytoscore web` and one `cytoscore worker`; held for review (the jittered rows include implausible ones), it is
confirmed; then each format is downloaded `--repeats` times, in turns, timing the first byte and the last. Needs
PostgreSQL (CYTOSCORE_TEST_PG) and Redis (CYTOSCORE_TEST_REDIS).

Usage: python -m bench.downloads [--rows 100000] [--repeats 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import statistics
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.stack import save_json, throwaway_stack
from bench.upload_throughput import get_json, services, upload
from shared.schema import JobStatus
from testkit.files import csv_file
from testkit.support import make_person

FORMATS = ("csv", "json", "xlsx")


def download(url: str, token: str) -> dict[str, float]:
    """GET the url and read its body to the end: seconds to the first byte and to the last, and the megabytes."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=3600) as response:
        first = response.read(1 << 16)
        first_s = time.perf_counter() - start
        size = len(first)
        while piece := response.read(1 << 20):
            size += len(piece)
    return {"first_byte_s": first_s, "total_s": time.perf_counter() - start, "mb": size / 1e6}


def measure(rows: int, repeats: int, seed: int = 11) -> dict[str, Any]:
    path = csv_file(rows, seed)
    runs: dict[str, list[dict[str, float]]] = {fmt: [] for fmt in FORMATS}
    with throwaway_stack() as (env, _dsn, tmp):
        token = make_person(env, "lab").token
        with services(env, tmp, workers=1) as running:
            job_id = upload(running.base, path, token)["job_id"]
            if get_json(f"{running.base}/api/v1/jobs/{job_id}", token)["status"] == JobStatus.NEEDS_REVIEW.value:
                confirm = urllib.request.Request(
                    f"{running.base}/api/v1/jobs/{job_id}/confirm", method="POST",
                    headers={"Authorization": f"Bearer {token}"},
                )  # fmt: skip
                urllib.request.urlopen(confirm, timeout=60).close()  # an answer other than 200 raises
            for _ in range(repeats):
                for fmt in FORMATS:
                    runs[fmt].append(download(f"{running.base}/api/v1/jobs/{job_id}/results?format={fmt}", token))
    figures = {
        fmt: {key: statistics.median(run[key] for run in each) for key in ("first_byte_s", "total_s", "mb")}
        for fmt, each in runs.items()
    }
    return {"date": time.strftime("%Y-%m-%d"), "rows": rows, "repeats": repeats, "formats": figures, "runs": runs}


def print_table(m: dict[str, Any]) -> None:
    print(f"\nResults of a {m['rows']:,}-row job, downloaded; medians of {m['repeats']} runs each, in turns\n")
    print("| format | first byte (s) | whole file (s) | size (MB) | rows per second |")
    print("|---|---|---|---|---|")
    for fmt, f in m["formats"].items():
        rate = m["rows"] / f["total_s"]
        print(f"| {fmt} | {f['first_byte_s']:.2f} | {f['total_s']:.2f} | {f['mb']:.1f} | {rate:,.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    figures = measure(args.rows, args.repeats, args.seed)
    print_table(figures)
    save_json(args.json, figures)


if __name__ == "__main__":
    main()
