"""What keeping `results` tied to their input costs when one job's results are written by one or two writers.

Each writer is a process of its own that COPYs its share of the job's parts (18,000 rows each, as a part of the
1M-row file holds about that many) into `results`, then updates the job row, one transaction per part, as the
workers do. The same runs are repeated on a throwaway database with the rule as it is (migration 0007's triggers
check each statement's rows against the stored parts), with the foreign keys the project had before (0006: each row
checked against its part; 0001-0005: each row checked against the job's row, which both writers then lock for
every row), and with nothing at all.

Prints wall time, the CPU time the whole machine spent (PostgreSQL's backends and the writers together), and how
many MultiXact ids PostgreSQL created: it makes one whenever a second transaction locks a row that another holds,
and a busy cluster that makes too many must stop to vacuum them away.

Usage: .venv/bin/python bench/fk_contention.py [--rows 600000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
import uuid
from pathlib import Path

import psycopg
from alembic import command

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stack import throwaway_stack
from tests.conftest import alembic_config
from tests.support import stored_parts

PART_ROWS = 18_000
COPY = "COPY results (job_id, row_number, case_id, diagnosis, probability_malignant, model_version, part) FROM STDIN"
# Each rule in turn, and what puts it in place of the one before: an Alembic revision to go down to, or statements.
KEYS: tuple[tuple[str, str | tuple[str, ...]], ...] = (
    ("each statement against the parts (now)", ()),
    ("each row against its part (0006)", "0006"),
    (
        "each row against the job (0001-0005)",
        (
            "ALTER TABLE results DROP CONSTRAINT fk_results_job_id_job_input_parts",
            "ALTER TABLE results ADD CONSTRAINT fk_results_job_id_jobs FOREIGN KEY (job_id) REFERENCES jobs (id) "
            "ON DELETE CASCADE",
        ),
    ),
    ("none", ("ALTER TABLE results DROP CONSTRAINT fk_results_job_id_jobs",)),
)


def machine_cpu_seconds() -> float:
    """Busy time of all CPUs since boot (user, nice, system, irq, softirq, steal) from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7]) / os.sysconf("SC_CLK_TCK")


def write(dsn: str, job: uuid.UUID, parts: list[int]) -> None:
    with psycopg.connect(dsn) as conn:
        for part in parts:
            with conn.cursor() as cur, cur.copy(COPY) as copy:
                for row in range(part * PART_ROWS, (part + 1) * PART_ROWS):
                    copy.write_row((job, row + 1, str(row), "M", 0.5, "v1", part))
            conn.execute("UPDATE jobs SET rows_scored = rows_scored + %s WHERE id = %s", (PART_ROWS, job))
            conn.commit()


def next_multixact(conn: psycopg.Connection) -> int:
    """The next MultiXact id as of a checkpoint taken now: the difference over a run is how many it created."""
    conn.execute("CHECKPOINT")
    row = conn.execute("SELECT next_multixact_id::text::bigint FROM pg_control_checkpoint()").fetchone()
    assert row is not None
    return int(row[0])


def run(dsn: str, parts: int, writers: int) -> tuple[float, float, int]:
    job = stored_parts(dsn, parts, PART_ROWS)
    with psycopg.connect(dsn, autocommit=True) as conn:
        multixacts = next_multixact(conn)  # the checkpoint also starts each run without the last one's dirty pages
    cpu, start = machine_cpu_seconds(), time.perf_counter()
    procs = [
        multiprocessing.Process(target=write, args=(dsn, job, list(range(w, parts, writers)))) for w in range(writers)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
        if proc.exitcode:
            raise RuntimeError(f"a writer failed with exit code {proc.exitcode}")
    wall, cpu = time.perf_counter() - start, machine_cpu_seconds() - cpu
    with psycopg.connect(dsn, autocommit=True) as conn:
        return wall, cpu, next_multixact(conn) - multixacts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=600_000)
    args = parser.parse_args()
    parts = max(args.rows // PART_ROWS, 2)
    print(f"\n{parts * PART_ROWS:,} result rows of one job, {parts} parts, {os.cpu_count()} cores\n")
    print("| checked | writers | wall (s) | machine CPU (s) | MultiXacts created |")
    print("|---|---|---|---|---|")
    with throwaway_stack() as (env, dsn, _tmp):
        for key, change in KEYS:
            if isinstance(change, str):
                command.downgrade(alembic_config(env["DATABASE_URL"]), change)
            elif change:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    for statement in change:
                        conn.execute(statement)
            for writers in (1, 2):
                wall, cpu, multixacts = run(dsn, parts, writers)
                print(f"| {key} | {writers} | {wall:.2f} | {cpu:.2f} | {multixacts:,} |")


if __name__ == "__main__":
    main()
