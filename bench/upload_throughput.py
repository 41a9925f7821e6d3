"""End-to-end throughput of an upload beside the in-process limit, measured in the same run.

cytoscore: POST a 100k-row Kaggle-layout CSV to a real `cytoscore web`, one real `cytoscore worker`
(PostgreSQL + Redis), and wait until the job has succeeded with every row stored.
In-process limit: one Python process reads the same file (pandas, needed columns only), scores it with the
same pipeline (`predict_proba`), and COPYs the results into the same results table.

Usage: .venv/bin/python bench/upload_throughput.py [--rows 100000] [--model wdbc-rf4]
Needs PostgreSQL (CYTOSCORE_TEST_PG, default postgresql://postgres@127.0.0.1:5432/postgres) and Redis
(CYTOSCORE_TEST_REDIS, default redis://127.0.0.1:6379/14).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stack import throwaway_stack
from shared.features import FEATURES
from shared.modelstore import load_model
from shared.settings import ROOT
from tests.support import ServiceProcess, free_port, make_person, multipart, wdbc


def make_csv(n: int, seed: int = 11) -> bytes:
    X, y = wdbc()
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(X), n)
    values = X[pick] * rng.normal(1.0, 0.02, (n, X.shape[1]))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "diagnosis", *FEATURES])
    rows = zip(pick, values, strict=True)
    writer.writerows([f"B{i}", y[p], *map(repr, row.tolist())] for i, (p, row) in enumerate(rows, 1))
    return out.getvalue().encode()


def post_file(url: str, content: bytes, token: str) -> dict:
    body, content_type = multipart({}, content, "bench.csv")
    headers = {"Content-Type": content_type, "Authorization": f"Bearer {token}"}
    with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=300) as response:
        return json.loads(response.read())


def get_json(url: str, token: str = "") -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=70) as response:
        return json.loads(response.read())


def end_to_end(content: bytes, env: dict[str, str], workdir: Path, token: str) -> float:
    port = free_port()
    worker = ServiceProcess(["worker"], env, workdir / "worker.log")
    web = ServiceProcess(["web"], {**env, "PORT": str(port)}, workdir / "web.log")
    try:
        worker.wait_for_log("ready.", 120)
        web.wait_for_log("Booting worker", 60)
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                get_json(f"{base}/healthz")
                break
            except OSError:
                time.sleep(0.2)
        start = time.perf_counter()
        job = post_file(f"{base}/api/v1/jobs", content, token)
        state = get_json(f"{base}/api/v1/jobs/{job['id']}?wait=60", token)
        while state["status"] not in ("succeeded", "failed"):
            state = get_json(f"{base}/api/v1/jobs/{job['id']}?wait=60", token)
        elapsed = time.perf_counter() - start
        assert state["status"] == "succeeded", state
        return elapsed
    finally:
        web.stop()
        worker.stop()


def in_process(content: bytes, model_name: str, dsn: str) -> float:
    """Read + predict_proba + COPY, in one process: the floor the system is measured against."""
    start = time.perf_counter()
    model = load_model(model_name, ROOT / "models")
    frame = pd.read_csv(io.BytesIO(content), usecols=["id", *model.features], dtype={"id": str})
    labels, probs = model.diagnose(frame[list(model.features)].to_numpy(dtype=np.float64))
    job_id = uuid.uuid4()
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO jobs (id, kind, status, model_name, model_version, model_sha256, input_sha256, input_format,"
            " rows_total, rows_scored, rows_rejected, created_at, attempts)"
            " VALUES (%s, 'upload', 'succeeded', %s, %s, %s, '', 'csv', 0, 0, 0, now(), 0)",
            (job_id, model.name, model.version, model.sha256),
        )
        with cur.copy(
            "COPY results (job_id, row_number, case_id, diagnosis, probability_malignant, model_version) FROM STDIN"
        ) as copy:
            for i, (case, label, p) in enumerate(zip(frame["id"], labels, probs, strict=True), 1):
                copy.write_row((job_id, i, case, label, float(p), model.version))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--model", default="wdbc-rf4")
    args = parser.parse_args()

    content = make_csv(args.rows)
    with throwaway_stack(CYTOSCORE_DEFAULT_MODEL=args.model) as (env, dsn, tmp):
        token = make_person(env, "lab").token
        limit = in_process(content, args.model, dsn)
        system = end_to_end(content, env, tmp, token)

    rows = args.rows
    print(
        f"\n{rows:,} rows, {len(content) / 1e6:.1f} MB, model {args.model}, "
        f"{platform.node()} ({os.cpu_count()} cores), {time.strftime('%Y-%m-%d')}\n"
    )
    print(f"| {'figure':<34} | {'seconds':>8} | {'rows/s':>9} |")
    print(f"|{'-' * 36}|{'-' * 10}|{'-' * 11}|")
    print(f"| {'cytoscore end to end (HTTP → done)':<34} | {system:8.2f} | {rows / system:9,.0f} |")
    print(f"| {'in-process limit (read+score+COPY)':<34} | {limit:8.2f} | {rows / limit:9,.0f} |")
    print(f"\ncytoscore reaches {limit / system:.0%} of the in-process limit.")


if __name__ == "__main__":
    main()
