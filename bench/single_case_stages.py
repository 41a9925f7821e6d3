"""Where a single case's time goes: the stretches between the log lines the web and the worker write for each job.

Sequential single cases (`POST /api/v1/jobs?wait=30`, one case, JSON) against a real `cytoscore web` and one
warm `cytoscore worker`; each stretch is the median over the cases, from these timestamps:
the client's start, the web's "job … created" (after the commit and the publish), Celery's "Task … received",
the worker's "attempt … started" (after the claim's commit), its "attempt … succeeded" (after the results'
commit), and the client's end. Log times have millisecond resolution.

Usage: .venv/bin/python bench/single_case_stages.py [--cases 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.single_case import SETTINGS, call, cases, wait_http
from bench.stack import throwaway_stack
from tests.support import ServiceProcess, free_port, make_person

WARM_UP = 20
STAGES = [
    ("start", "created", "request → job committed and its id published"),
    ("created", "received", "publish → Celery receives"),
    ("received", "started", "received → claimed (prefork dispatch, then the claim)"),
    ("started", "succeeded", "claimed → scored, results committed"),
    ("succeeded", "end", "committed → the answer is back at the client (NOTIFY, re-read, result, JSON, HTTP)"),
    ("start", "end", "whole round trip"),
]


def log_times(lines: list[str], job_ids: set[str]) -> dict[str, dict[str, float]]:
    """For each job id, when each of its log lines was written (seconds since the epoch)."""
    times: dict[str, dict[str, float]] = {job_id: {} for job_id in job_ids}
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        message = record.get("message", "")
        about = message + str(record.get("data", {}).get("args", ""))
        for stage in ("created", "received", "started", "succeeded"):
            if f" {stage}" in message:
                for job_id in job_ids:
                    if job_id in about:
                        times[job_id].setdefault(
                            stage, datetime.strptime(record["time"], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                        )
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200)
    args = parser.parse_args()
    with throwaway_stack(**SETTINGS) as (env, _, tmp):
        token = make_person(env, "lab").token
        port = free_port()
        worker = ServiceProcess(["worker"], env, tmp / "worker.log")
        web = ServiceProcess(["web"], {**env, "PORT": str(port)}, tmp / "web.log")
        try:
            worker.wait_for_log("ready.", 120)
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/healthz", web)
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            client: dict[str, dict[str, float]] = {}
            for i, case in enumerate(cases(WARM_UP + args.cases)):
                body = json.dumps({"cases": [{"case_id": f"s{i}", **case}]}).encode()
                start = time.time()
                job = json.loads(call(f"{base}/api/v1/jobs?wait=30", body, headers))
                end = time.time()
                assert job["status"] == "succeeded" and job["results"][0]["diagnosis"] in ("M", "B"), job
                if i >= WARM_UP:
                    client[job["id"]] = {"start": start, "end": end}
            time.sleep(0.5)  # the last log lines reach the files
            lines = (tmp / "web.log").read_text().splitlines() + (tmp / "worker.log").read_text().splitlines()
        finally:
            web.stop()
            worker.stop()
    found = log_times(lines, set(client))
    print(f"\n{args.cases} sequential single cases after {WARM_UP} warm-up, one web and one worker, p50\n")
    print("| stretch | ms |\n|---|---|")
    for first, last, label in STAGES:
        spans = [
            (t | client[j])[last] - (t | client[j])[first]
            for j, t in found.items()
            if {first, last} <= set(t | client[j])
        ]
        print(f"| {label} | {statistics.median(spans) * 1000:.1f} |")


if __name__ == "__main__":
    main()
