"""Measure the floor under a single case: the same web → queue → worker → database round trip with nothing else in it.

A Flask route under gunicorn (as `cytoscore web`: 2 processes, gthread, 8 threads) commits a job row and sends
its id through the broker; a worker claims the row (a commit not waiting for the disk), scores the case with the
same model (`LoadedModel.diagnose`), and commits the result and `succeeded` with a NOTIFY that wakes the route.
Left out on purpose: accounts, limits, audit, validation, attempts, heartbeats and the ORM. The floor runs with a
Redis list and a plain worker loop, and with Celery (one prefork pool process, cytoscore's settings); both,
cytoscore (`POST /api/v1/jobs?wait=30`) and the tutorial's route are measured in turns, case by case. The Celery
floor is the reference the single-case speed is judged against (`make bench`'s `floor` part).

Usage: python -m bench.single_case_floor [--cases 200] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import redis
from celery import Celery
from flask import Flask, jsonify, request
from psycopg.types.json import Jsonb

CHANNEL = "floor_done"
TABLES = """
CREATE TABLE floor_jobs (id uuid PRIMARY KEY, status text NOT NULL, input jsonb NOT NULL);
CREATE TABLE floor_results (job_id uuid PRIMARY KEY REFERENCES floor_jobs (id), diagnosis text NOT NULL,
                            probability double precision NOT NULL);
"""


def create_app() -> Flask:
    """The floor's web side (gunicorn imports `bench.single_case_floor:app`); FLOOR_DSN, FLOOR_REDIS, FLOOR_QUEUE."""
    dsn, queue = os.environ["FLOOR_DSN"], os.environ["FLOOR_QUEUE"]
    broker = redis.Redis.from_url(os.environ["FLOOR_REDIS"])
    with_celery = os.environ.get("FLOOR_CELERY") == "1"
    local = threading.local()
    waiters: dict[str, threading.Event] = {}
    lock = threading.Lock()
    listening = threading.Event()
    started: list[int] = []  # the pid whose listener runs: a forked gunicorn worker starts its own

    def listen() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            listening.set()
            for note in conn.notifies():
                with lock:
                    woken = waiters.get(note.payload)
                if woken is not None:
                    woken.set()

    def connection() -> psycopg.Connection[Any]:
        if getattr(local, "conn", None) is None:
            local.conn = psycopg.connect(dsn)
        return local.conn  # type: ignore[no-any-return]

    app = Flask(__name__)

    @app.post("/")
    def case() -> Any:
        with lock:
            if started != [os.getpid()]:
                started[:] = [os.getpid()]
                threading.Thread(target=listen, daemon=True).start()
        listening.wait(5)
        job_id, woken = str(uuid.uuid4()), threading.Event()
        with lock:
            waiters[job_id] = woken
        try:
            conn = connection()
            conn.execute("INSERT INTO floor_jobs VALUES (%s, 'queued', %s)", (job_id, Jsonb(request.get_json())))
            conn.commit()  # durable before its id is published
            if with_celery:
                celery_app.send_task(TASK, args=[job_id], retry=True, retry_policy={"max_retries": 0})
            else:
                broker.lpush(queue, job_id)
            woken.wait(30)
            found = conn.execute("SELECT diagnosis, probability FROM floor_results WHERE job_id = %s", (job_id,))
            diagnosis, probability = found.fetchone() or (None, None)
            conn.commit()
        finally:
            with lock:
                del waiters[job_id]
        return jsonify(id=job_id, diagnosis=diagnosis, probability_malignant=probability)

    return app


def score(conn: psycopg.Connection[Any], model: Any, job_id: str) -> None:
    """Claim the job (not waiting for the disk), score it, and write its result and `succeeded` durably."""
    claimed = conn.execute(
        "UPDATE floor_jobs SET status = 'running' WHERE id = %s AND status = 'queued' RETURNING input", (job_id,)
    ).fetchone()
    conn.execute("SET LOCAL synchronous_commit TO OFF")
    conn.commit()
    if claimed is None:
        return
    X = np.array([[float(claimed[0]["cases"][0][f]) for f in model.features]])
    diagnosis, probability = model.diagnose(X)
    conn.execute("INSERT INTO floor_results VALUES (%s, %s, %s)", (job_id, str(diagnosis[0]), float(probability[0])))
    conn.execute("UPDATE floor_jobs SET status = 'succeeded' WHERE id = %s", (job_id,))
    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, job_id))
    conn.commit()


def _model() -> Any:
    from shared.modelstore import load_model
    from shared.settings import ROOT

    return load_model("wdbc-rf4", ROOT / "models")


def run_worker() -> None:
    """The floor's worker without Celery: pop an id, score it, again."""
    model, broker = _model(), redis.Redis.from_url(os.environ["FLOOR_REDIS"], socket_timeout=10)
    with psycopg.connect(os.environ["FLOOR_DSN"]) as conn:
        print("floor worker ready", flush=True)
        while True:
            popped = broker.brpop([os.environ["FLOOR_QUEUE"]], timeout=5)
            if popped is not None:
                score(conn, model, popped[1].decode())  # type: ignore[index]


TASK = "floor.score"
celery_app = Celery("floor", broker=os.environ.get("FLOOR_REDIS"), set_as_current=False)
celery_app.conf.update(task_serializer="json", accept_content=["json"], task_ignore_result=True,
                       task_default_queue=os.environ.get("FLOOR_QUEUE", "floor"), task_acks_late=True,
                       task_reject_on_worker_lost=True, worker_prefetch_multiplier=1, broker_pool_limit=4,
                       worker_hijack_root_logger=False, worker_send_task_events=False)  # fmt: skip
_held: dict[str, Any] = {}


@celery_app.task(name=TASK)
def score_task(job_id: str) -> None:
    if _held.get("pid") != os.getpid():  # a pool process connects once, after the fork
        _held.update(pid=os.getpid(), conn=psycopg.connect(os.environ["FLOOR_DSN"]), model=_model())
    score(_held["conn"], _held["model"], job_id)


if os.environ.get("FLOOR_DSN") and __name__ != "__main__":
    app = create_app()


def floor_case(base: str, i: int, case: dict[str, float]) -> float:
    from bench.single_case import call

    start = time.perf_counter()
    body = json.dumps({"cases": [{"case_id": f"f{i}", **case}]}).encode()
    answer = json.loads(call(base, body, {"Content-Type": "application/json"}))
    elapsed = time.perf_counter() - start
    assert answer["diagnosis"] in ("M", "B"), answer
    return elapsed


def main() -> None:
    from bench import single_case as single
    from bench.stack import REDIS_URL, save_json, throwaway_stack
    from shared.settings import ROOT
    from testkit.support import ServiceProcess, free_port, make_person

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    with throwaway_stack(**single.SETTINGS) as (env, dsn, tmp):
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(TABLES)
        token = make_person(env, "lab").token
        port, fport, cport, tport = free_port(), free_port(), free_port(), free_port()
        floor_env = {**env, "FLOOR_DSN": dsn, "FLOOR_REDIS": REDIS_URL, "FLOOR_QUEUE": f"floor-{uuid.uuid4().hex[:6]}"}
        celery_env = {**floor_env, "FLOOR_CELERY": "1", "FLOOR_QUEUE": f"floor-celery-{uuid.uuid4().hex[:6]}"}

        def floor_web(port: int, env: dict[str, str], log: str) -> ServiceProcess:
            argv = ["--bind", f"127.0.0.1:{port}", "--workers", "2", "--worker-class", "gthread", "--threads", "8",
                    "--chdir", str(ROOT), "bench.single_case_floor:app"]  # fmt: skip
            return ServiceProcess(argv, env, tmp / log, program=str(single.BIN / "gunicorn"))

        celery_argv = ["-A", "bench.single_case_floor:celery_app", "--workdir", str(ROOT), "worker", "--concurrency",
                       "1", "--loglevel", "INFO", "--queues", celery_env["FLOOR_QUEUE"]]  # fmt: skip
        procs = [
            ServiceProcess(["worker"], env, tmp / "worker.log"),
            ServiceProcess(["web"], {**env, "PORT": str(port)}, tmp / "web.log"),
            ServiceProcess(
                ["-m", "bench.single_case_floor", "worker"],
                floor_env,
                tmp / "floor-worker.log",
                program=sys.executable,
                cwd=ROOT,
            ),
            floor_web(fport, floor_env, "floor-web.log"),
            ServiceProcess(celery_argv, celery_env, tmp / "floor-celery.log", program=str(single.BIN / "celery")),
            floor_web(cport, celery_env, "floor-celery-web.log"),
            single.tutorial_server(tport, env, tmp / "tutorial.log"),
        ]
        try:
            procs[0].wait_for_log("ready.", 120)
            procs[2].wait_for_log("floor worker ready", 60)
            procs[4].wait_for_log("ready.", 60)
            base, fbase, cbase, tbase = (f"http://127.0.0.1:{p}" for p in (port, fport, cport, tport))
            single.wait_http(f"{base}/healthz", procs[1])
            single.wait_http(tbase, procs[6])
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            series: list[list[float]] = [[], [], [], []]
            for i, case in enumerate(single.cases(20 + args.cases)):
                times = (single.cytoscore_case(base, headers, i, case), floor_case(cbase, i, case),
                         floor_case(fbase, i, case), single.tutorial_case(tbase, case))  # fmt: skip
                if i >= 20:  # the first 20 warm all of them up
                    for kept, elapsed in zip(series, times, strict=True):
                        kept.append(elapsed)
        except BaseException:
            for proc in procs[2:6]:
                print(proc.output()[-2000:], file=sys.stderr)
            raise
        finally:
            for proc in reversed(procs):
                proc.stop()
    print(f"\n{args.cases} sequential single cases in turns, model wdbc-rf4, {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d')}\n")  # fmt: skip
    print("| system | p50 (ms) | p99 (ms) |\n|---|---|---|")
    names = (
        "cytoscore, `POST /api/v1/jobs?wait=30`",
        "the shape alone, with Celery",
        "the shape alone, with a Redis list",
        "the tutorial's route",
    )
    for name, kept in zip(names, series, strict=True):
        print(f"| {name} | {single.percentile(kept, 50) * 1e3:.2f} | {single.percentile(kept, 99) * 1e3:.2f} |")
    keys = ("cytoscore", "celery_floor", "redis_floor", "tutorial")
    figures = {f"{key}_p{q}_ms": single.percentile(kept, q) * 1e3 for key, kept in zip(keys, series, strict=True)
               for q in (50, 99)}  # fmt: skip
    save_json(args.json, {"cases": args.cases, **figures})


if __name__ == "__main__":
    if sys.argv[1:] == ["worker"]:
        run_worker()
    else:
        main()
