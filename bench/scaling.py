"""Measure how a 1M-row upload scales from one worker to two.

Runs alternate (1, 2, then 2, 1, ...) on one throwaway installation and the ratio is taken between medians, since
single runs move by 10-30 %. Each is timed from the HTTP request to `succeeded`, its rows counted in PostgreSQL,
and the results table emptied before the next. Also reported: the time from the POST's answer to `succeeded`.

The CPU-bound maximum: a run that kept every core busy from the request to `succeeded` would take the CPU seconds
the whole machine spent in it (web, workers, PostgreSQL, Redis, this client) divided by the number of cores. Each
2-worker run's share of that maximum is that time divided by the time it took; the median share is reported.

Usage: python -m bench.scaling [--rows 1000000] [--repeats 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.stack import save_json, throwaway_stack
from bench.upload_throughput import count_results, end_to_end
from shared.settings import Settings
from testkit.files import csv_file
from testkit.support import make_person

CORES = os.cpu_count() or 1


def measure(rows: int, repeats: int, model: str = "wdbc-rf4", seed: int = 11) -> dict[str, Any]:
    path = csv_file(rows, seed)
    cap = max(Settings().max_upload_bytes, 2 * path.stat().st_size)
    runs: list[dict[str, Any]] = []
    with throwaway_stack(CYTOSCORE_DEFAULT_MODEL=model, CYTOSCORE_MAX_UPLOAD_BYTES=str(cap)) as (env, dsn, tmp):
        token = make_person(env, "lab").token
        for repeat in range(repeats):
            for workers in (1, 2) if repeat % 2 == 0 else (2, 1):
                figures = end_to_end(path, dsn, env, tmp, token, workers, None)
                stored = count_results(dsn, figures["job_id"])
                if stored != rows:
                    raise RuntimeError(f"job {figures['job_id']} succeeded with {stored} of {rows} rows stored")
                total, post = figures["end_to_end_s"], figures["post_s"]
                cpu_bound = figures["machine_cpu_s"] / CORES
                runs.append({"workers": workers, "end_to_end_s": total, "post_s": post, "after_post_s": total - post,
                             "machine_cpu_s": figures["machine_cpu_s"], "cpu_bound_s": cpu_bound,
                             "share_of_cpu_bound": cpu_bound / total})  # fmt: skip
                print(f"run {len(runs)}: {workers} worker(s), {figures['end_to_end_s']:.2f} s end to end, "
                      f"POST answered after {figures['post_s']:.2f} s", flush=True)  # fmt: skip
                with psycopg.connect(dsn) as conn:
                    conn.execute("TRUNCATE results")

    def median(workers: int, figure: str) -> float:
        return statistics.median(run[figure] for run in runs if run["workers"] == workers)

    one, two = median(1, "end_to_end_s"), median(2, "end_to_end_s")
    one_after, two_after = median(1, "after_post_s"), median(2, "after_post_s")
    return {
        "date": time.strftime("%Y-%m-%d"),
        "rows": rows,
        "repeats": repeats,
        "model": model,
        "runs": runs,
        "median_1_worker_s": one,
        "median_2_workers_s": two,
        "ratio": one / two,
        "median_1_worker_after_post_s": one_after,
        "median_2_workers_after_post_s": two_after,
        "after_post_ratio": one_after / two_after,
        "cores": CORES,
        "median_2_workers_cpu_bound_s": median(2, "cpu_bound_s"),
        "median_2_workers_share_of_cpu_bound": median(2, "share_of_cpu_bound"),
    }


def print_table(m: dict[str, Any]) -> None:
    print(f"\n{m['rows']:,} rows, {m['repeats']} runs with each number of workers, {m['date']}\n")
    print("| run | workers | end to end (s) | POST answered (s) | after the POST (s) | machine CPU (s) | "
          f"CPU-bound maximum: CPU ÷ {m['cores']} cores (s) | share |\n|---|---|---|---|---|---|---|---|")  # fmt: skip
    for number, run in enumerate(m["runs"], 1):
        print(f"| {number} | {run['workers']} | {run['end_to_end_s']:.2f} | {run['post_s']:.2f} | "
              f"{run['after_post_s']:.2f} | {run['machine_cpu_s']:.2f} | {run['cpu_bound_s']:.2f} | "
              f"{run['share_of_cpu_bound']:.2f} |")  # fmt: skip
    print(f"\nmedians, end to end: 1 worker {m['median_1_worker_s']:.2f} s, 2 workers {m['median_2_workers_s']:.2f} s:"
          f" {m['ratio']:.2f}x")  # fmt: skip
    print(f"medians, after the POST: 1 worker {m['median_1_worker_after_post_s']:.2f} s, 2 workers "
          f"{m['median_2_workers_after_post_s']:.2f} s: {m['after_post_ratio']:.2f}x")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3, help="runs with each number of workers")
    parser.add_argument("--model", default="wdbc-rf4")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    figures = measure(args.rows, args.repeats, args.model)
    print_table(figures)
    save_json(args.json, figures)


if __name__ == "__main__":
    main()
