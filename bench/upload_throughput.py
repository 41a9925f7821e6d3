"""Time a big upload end to end beside the in-process limit, with the processes' memory peaks and CPU seconds.

- cytoscore: a Kaggle-layout CSV POSTed to a real `cytoscore web` with `--workers` `cytoscore worker` processes
  (one pool process each) until the job has succeeded; its rows are then counted in PostgreSQL.
- in-process limit: one process reads the same file (pandas), scores it with the same model and engine
  (`LoadedModel.diagnose`), and COPYs the results into the same table.
- peak RSS (VmHWM) of the web's and the workers' process trees, sampled during the run, and their CPU seconds.

With --repeats N both are timed N times, in turns, and the medians reported; each stretch starts after a
CHECKPOINT. The file is generated once per (rows, seed) under var/bench/. Needs PostgreSQL (CYTOSCORE_TEST_PG)
and Redis (CYTOSCORE_TEST_REDIS).

Usage: python -m bench.upload_throughput [--rows 100000] [--workers 1] [--model wdbc-rf4] [--repeats 1] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg

from bench.stack import (
    FINISHED,
    SCORED,
    PeakRss,
    cpu_seconds,
    file_upload,
    machine_busy_seconds,
    save_json,
    throwaway_stack,
)
from shared.modelstore import load_model
from shared.settings import ROOT, Settings
from testkit.files import csv_file, xlsx_file
from testkit.support import WORKER_NODES, ServiceProcess, free_port, make_person


@dataclass
class Services:
    base: str
    web: ServiceProcess
    workers: list[ServiceProcess]

    def roots(self) -> dict[str, list[int]]:
        """The top process of each service by role: gunicorn's master, each Celery main process."""
        return {"web": [self.web.proc.pid], "worker": [w.proc.pid for w in self.workers]}


@contextlib.contextmanager
def services(env: dict[str, str], workdir: Path, workers: int) -> Iterator[Services]:
    """A `cytoscore web` and `workers` `cytoscore worker` processes of one pool process each, ready to serve."""
    port = free_port()
    worker_env = {**env, "CYTOSCORE_WORKER_CONCURRENCY": "1"}
    started = [ServiceProcess(["worker"], worker_env, workdir / f"worker-{i}.log") for i in range(1, workers + 1)]
    web = ServiceProcess(["web"], {**env, "PORT": str(port)}, workdir / "web.log")
    try:
        for worker in started:
            worker.wait_for_log("ready.", 120, count=WORKER_NODES)
        web.wait_for_log("Booting worker", 60)
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                get_json(f"{base}/healthz")
                break
            except OSError:
                time.sleep(0.2)
        yield Services(base, web, started)
    except BaseException:
        for service in (web, *started):
            print(f"--- {service.log.name}, last lines:\n{service.output()[-3000:]}", file=sys.stderr)
        raise
    finally:
        web.stop()
        for worker in started:
            worker.stop()


def post_file(url: str, path: Path, token: str) -> dict[str, Any]:
    """POST the file as multipart/form-data, streamed from disk a block at a time."""
    request = file_upload(url, path, {"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=900) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def get_json(url: str, token: str = "") -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=70) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def _seconds_between(state: dict[str, Any], first: str, last: str) -> float | None:
    try:
        return (datetime.fromisoformat(state[last]) - datetime.fromisoformat(state[first])).total_seconds()
    except (KeyError, TypeError, ValueError):
        return None


def upload(base: str, path: Path, token: str) -> dict[str, Any]:
    """POST → succeeded: the seconds end to end, until the POST answered, and the job's own timestamps."""
    start = time.perf_counter()
    job = post_file(f"{base}/api/v1/jobs", path, token)
    posted = time.perf_counter()
    state = job
    while state["status"] not in FINISHED:
        state = get_json(f"{base}/api/v1/jobs/{job['id']}?wait=60", token)
    elapsed = time.perf_counter() - start
    if state["status"] not in SCORED:
        raise RuntimeError(f"job {job['id']} failed: {state.get('error')}")
    return {
        "job_id": job["id"],
        "end_to_end_s": elapsed,
        "post_s": posted - start,
        "queued_s": _seconds_between(state, "created_at", "started_at"),
        "running_s": _seconds_between(state, "started_at", "finished_at"),
    }


def end_to_end(
    path: Path,
    dsn: str,
    env: dict[str, str],
    workdir: Path,
    token: str,
    workers: int,
    watch: Callable[[Services], contextlib.AbstractContextManager[object]] | None = None,
) -> dict[str, Any]:
    """One upload through the real services; `watch` (e.g. a profiler) wraps just the upload."""
    with services(env, workdir, workers) as running, PeakRss(running.roots()) as peaks:
        roots = [running.web.proc.pid, *(w.proc.pid for w in running.workers)]
        before, db_before = [cpu_seconds(pid) for pid in roots], backend_cpu(dsn)
        checkpoint(dsn)
        busy = machine_busy_seconds()
        with watch(running) if watch else contextlib.nullcontext():
            figures = upload(running.base, path, token)
        busy = machine_busy_seconds() - busy
        cpu = [cpu_seconds(pid) - start for pid, start in zip(roots, before, strict=True)]
        db_after = backend_cpu(dsn)
        rss = peaks.read()
    return {
        **figures,
        "web_peak_rss_mb": rss.get("web"),
        "worker_peak_rss_mb": rss.get("worker"),
        "machine_cpu_s": busy,  # every process on the machine, from the request to `succeeded`
        "web_cpu_s": cpu[0],
        "worker_cpu_s": cpu[1:],  # how the job's work was shared out among the workers
        # PostgreSQL's share of the machine: backends still connected at the end (a local server only).
        "postgres_cpu_s": sum(t - db_before.get(pid, 0.0) for pid, t in db_after.items()) if db_after else None,
    }


def backend_cpu(dsn: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend connected to the database, when /proc can see them."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return {pid: cpu_seconds(pid) for (pid,) in rows if Path(f"/proc/{pid}").exists()}


def checkpoint(dsn: str) -> None:
    """Write out every page the last stretch left dirty, so that the next one timed does not pay for it.

    A 1M-row run leaves a few hundred MB of WAL behind; PostgreSQL starts a checkpoint of its own after about 1 GB,
    so without this one would land in whichever run came third or so.
    """
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def in_process(path: Path, model_name: str, dsn: str) -> tuple[float, str]:
    """Read + score + COPY in one process: the floor the system is measured against. Returns (seconds, engine)."""
    model = load_model(model_name, ROOT / "models")  # loaded before the clock, as a worker has it loaded
    checkpoint(dsn)
    start = time.perf_counter()
    frame = pd.read_csv(path, usecols=["id", *model.features], dtype={"id": str})
    labels, probs = model.diagnose(frame[list(model.features)].to_numpy(dtype=np.float64))
    job_id = uuid.uuid4()
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO jobs (id, kind, status, model_name, model_version, model_sha256, input_sha256, input_format,"
            " rows_total, rows_scored, rows_rejected, created_at, attempts)"
            " VALUES (%s, 'upload', 'succeeded', %s, %s, %s, '', 'csv', 0, 0, 0, now(), 0)",
            (job_id, model.name, model.version, model.sha256),
        )
        # Result rows name the stored part of the input they came from: one part here, so PostgreSQL checks the
        # rows against it as in the system, but the file itself is not stored.
        cur.execute("INSERT INTO job_inputs (job_id, media_type, layout) VALUES (%s, 'text/csv', 'plain')", (job_id,))
        cur.execute(
            "INSERT INTO job_input_parts (job_id, part, first_row, row_count, content) VALUES (%s, 0, 1, %s, '')",
            (job_id, len(frame)),
        )
        with cur.copy(
            "COPY results (job_id, row_number, case_id, diagnosis, probability_malignant, model_version, part)"
            " FROM STDIN (FORMAT binary)"  # as the workers write theirs (shared.jobs.results)
        ) as copy:
            copy.set_types(["uuid", "int4", "text", "text", "float8", "text", "int4"])
            for i, (case, label, p) in enumerate(zip(frame["id"], labels, probs.tolist(), strict=True), 1):
                copy.write_row((job_id, i, case, label, p, model.version, 0))
    elapsed = time.perf_counter() - start
    with psycopg.connect(dsn) as conn:  # the system's job then starts from the same empty table
        conn.execute("TRUNCATE results")
        conn.execute("DELETE FROM jobs WHERE id = %s", (job_id,))
    return elapsed, model.engine_note


def count_results(dsn: str, job_id: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM results WHERE job_id = %s", (job_id,)).fetchone()
    return int(row[0]) if row else 0


def measure(
    rows: int,
    workers: int,
    model: str = "wdbc-rf4",
    seed: int = 11,
    watch: Callable[[Services], contextlib.AbstractContextManager[object]] | None = None,
    repeats: int = 1,
    workbook: bool = False,
) -> dict[str, Any]:
    """The whole measurement: the file, a throwaway stack, then `repeats` times the in-process limit and the system.

    With several repeats the figures are the medians: each run's limit and system are timed one after the other,
    and the system's other figures (POST, CPU) come from its median run; the memory peaks are the highest of all.
    """
    path = xlsx_file(rows, seed) if workbook else csv_file(rows, seed)
    size = path.stat().st_size
    # The bench's file may be bigger than the default upload cap; the cap is not what is being measured.
    cap = max(Settings().max_upload_bytes, 2 * size)
    runs: list[dict[str, Any]] = []
    with throwaway_stack(CYTOSCORE_DEFAULT_MODEL=model, CYTOSCORE_MAX_UPLOAD_BYTES=str(cap)) as (env, dsn, tmp):
        token = make_person(env, "lab").token
        for _ in range(repeats):
            limit, engine = in_process(csv_file(rows, seed), model, dsn)  # the limit reads the rows as CSV
            system = end_to_end(path, dsn, env, tmp, token, workers, watch)
            stored = count_results(dsn, system["job_id"])
            if stored != rows:
                raise RuntimeError(f"job {system['job_id']} succeeded with {stored} of {rows} rows in PostgreSQL")
            runs.append({"limit_s": limit, **system, "rows_in_db": stored})
            with psycopg.connect(dsn) as conn:  # the next run starts from the same empty table
                conn.execute("TRUNCATE results")
    by_time = sorted(runs, key=lambda run: run["end_to_end_s"])
    middle = by_time[(len(by_time) - 1) // 2]
    limit = statistics.median(run["limit_s"] for run in runs)
    return {
        "date": time.strftime("%Y-%m-%d"),
        "rows": rows,
        "workers": workers,
        "seed": seed,
        "model": model,
        "model_engine": engine,
        "format": "xlsx" if workbook else "csv",
        "file_bytes": size,
        "repeats": repeats,
        **middle,
        "limit_s": limit,
        "end_to_end_s": statistics.median(run["end_to_end_s"] for run in runs),
        "web_peak_rss_mb": max(run["web_peak_rss_mb"] for run in runs),
        "worker_peak_rss_mb": max(run["worker_peak_rss_mb"] for run in runs),
        "limit_ratio": limit / statistics.median(run["end_to_end_s"] for run in runs),
        "runs": runs,
    }


def print_table(m: dict[str, Any]) -> None:
    rows, system, limit = m["rows"], m["end_to_end_s"], m["limit_s"]
    print(
        f"\n{rows:,} rows ({m['file_bytes'] / 1e6:.0f} MB), model {m['model']}, "
        f"{m['workers']} worker process(es), {os.cpu_count()} cores, {m['date']}\n"
    )
    print("| figure | seconds | rows/s |\n|---|---|---|")
    print(f"| cytoscore end to end (HTTP request → succeeded) | {system:.2f} | {rows / system:,.0f} |")
    print(f"| … of which until the POST answered | {m['post_s']:.2f} | |")
    print(f"| in-process limit (read + score + COPY) | {limit:.2f} | {rows / limit:,.0f} |")
    if m["repeats"] > 1:
        each = "; ".join(f"{r['limit_s']:.2f} and {r['end_to_end_s']:.2f}" for r in m["runs"])
        print(f"\nmedians of {m['repeats']} runs (the limit and cytoscore, s, in each: {each})")
    print(f"\ncytoscore reaches {m['limit_ratio']:.0%} of the in-process limit; {m['rows_in_db']:,} rows stored.")
    print(f"peak RSS: web {m['web_peak_rss_mb']:.0f} MB, worker {m['worker_peak_rss_mb']:.0f} MB")
    shares = ", ".join(f"{s:.1f}" for s in m["worker_cpu_s"])
    database = f", PostgreSQL {m['postgres_cpu_s']:.1f}" if m["postgres_cpu_s"] is not None else ""
    print(f"CPU seconds during the job: web {m['web_cpu_s']:.1f}, workers {shares}{database}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=1, help="`cytoscore worker` processes, one pool process each")
    parser.add_argument("--model", default="wdbc-rf4")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--repeats", type=int, default=1, help="runs of the limit and the system; medians reported")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--xlsx", action="store_true", help="upload the rows as an XLSX workbook instead of CSV")
    args = parser.parse_args()

    figures = measure(args.rows, args.workers, args.model, args.seed, repeats=args.repeats, workbook=args.xlsx)
    print_table(figures)
    save_json(args.json, figures)


if __name__ == "__main__":
    main()
