"""Measure throughput and time to result under a crowd of single cases and concurrent uploads.

A real `cytoscore web` and two `cytoscore worker` processes on a throwaway PostgreSQL database and a private
redis-server; every job is waited for and each input row checked to have exactly one result. Time to result runs
from the POST sent to the job finished in the database. Needs PostgreSQL (CYTOSCORE_TEST_PG) and redis-server.

Usage: python -m bench.load [--singles 2000] [--clients 50] [--uploads 10] [--upload-rows 10000] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from bench.stack import save_json
from testkit.reliability import LoadResult, RedisServer, Scenario, print_table, private_database, run_load, wait_until
from testkit.support import WORKER_NODES, free_port


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except OSError:
        return False


def figures(result: LoadResult, args: argparse.Namespace) -> dict[str, object]:
    """The run's numbers for bench.report: throughput and times to result in seconds."""

    def pct(values: list[float], q: float) -> float | None:
        return float(np.percentile(values, q)) if values else None

    jobs = len(result.single_seconds) + len(result.upload_seconds)
    return {
        "singles": args.singles, "clients": args.clients, "uploads": args.uploads, "upload_rows": args.upload_rows,
        "worker_concurrency": args.worker_concurrency, "jobs": jobs, "errors": len(result.errors),
        "wall_s": result.wall, "jobs_per_s": jobs / result.wall, "rows_per_s": result.rows / result.wall,
        "single_p50_s": pct(result.single_seconds, 50), "single_p99_s": pct(result.single_seconds, 99),
        "upload_p50_s": pct(result.upload_seconds, 50), "upload_p99_s": pct(result.upload_seconds, 99),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--singles", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--uploads", type=int, default=10)
    parser.add_argument("--upload-rows", type=int, default=10_000)
    parser.add_argument("--worker-concurrency", type=int, default=1, help="pool processes per worker process")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cytoscore-load-") as tmp:
        root = Path(tmp)
        redis = RedisServer(root)
        try:
            with private_database() as db:
                # The product's own defaults for everything that decides what happens under load; only the
                # per-account throttles are lifted (one account is the whole crowd here).
                defaults = {k: v for k, v in os.environ.items() if k.startswith("CYTOSCORE_")}
                scenario = Scenario(db, redis.url, root, extra={
                    "CYTOSCORE_RECONCILE_INTERVAL": "15", "CYTOSCORE_HEARTBEAT_INTERVAL": "5",
                    "CYTOSCORE_HEARTBEAT_STALE_AFTER": "30", "CYTOSCORE_QUEUED_RESEND_AFTER": "30",
                    "CYTOSCORE_BATCH_ROWS": "20000", "CYTOSCORE_WORKER_CONCURRENCY": str(args.worker_concurrency),
                    **defaults,
                })  # fmt: skip
                try:
                    port = free_port()
                    scenario.start("web", "web", PORT=str(port))
                    workers = [scenario.start("worker", f"worker-{i}") for i in (1, 2)]
                    for w in workers:
                        w.wait_for_log("ready.", 120, count=WORKER_NODES)
                    base = f"http://127.0.0.1:{port}"
                    wait_until(lambda: _ready(f"{base}/healthz"), 60, "the web server")
                    started = time.monotonic()
                    result = run_load(base, scenario.person.token, db, singles=args.singles, clients=args.clients,
                                      uploads=args.uploads, upload_rows=args.upload_rows, timeout=1800,
                                      env=scenario.env)  # fmt: skip
                    title = (
                        f"{args.singles} single cases from {args.clients} clients + {args.uploads} x "
                        f"{args.upload_rows:,}-row uploads; 1 web (2 gunicorn workers), 2 workers x "
                        f"{args.worker_concurrency}; {os.cpu_count()} cores, Python {platform.python_version()}"
                    )
                    print_table(result.table(), title)
                    print(f"(whole run incl. waiting: {time.monotonic() - started:.1f} s)")
                    duplicates = sum(w.output().count("duplicate delivery ignored") for w in workers)
                    print(f"duplicate deliveries ignored by the workers: {duplicates}")
                    save_json(args.json, figures(result, args))
                    if result.errors:
                        print("errors:", *result.errors[:10], sep="\n  ")
                        sys.exit(1)
                finally:
                    scenario.close()
        finally:
            redis.stop()


if __name__ == "__main__":
    main()
