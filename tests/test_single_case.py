"""A single case is answered in one request, with one durable commit in the worker, and loses none of the guarantees."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

import numpy as np
import psycopg
import pytest
from sqlalchemy import text, update

from api.waiting import APPLICATION_NAME, CHANNEL, wait_until_finished
from shared import jobs
from shared.features import FEATURES
from shared.jobs.reconciler import _LOCK_KEY as RECONCILE_LOCK
from shared.modelstore import load_model
from shared.queue import make_celery
from shared.schema import Job, utcnow
from testkit.support import cli_env, fresh_queue, jittered_csv, wdbc, wdbc_csv
from tests.support import post_upload, wait_for_job

RF4 = ["radius_mean", "texture_mean", "smoothness_mean", "compactness_mean"]


def _case(i: int, case_id: str | None = None) -> dict:
    X, _ = wdbc()
    return {"case_id": case_id or f"fast-{i}", **{f: float(X[i, FEATURES.index(f)]) for f in RF4}}


def _result_counts(sessions, job_id: str) -> tuple[int, int]:
    with sessions.begin() as session:
        sql = text("SELECT count(*), count(DISTINCT row_number) FROM results WHERE job_id = :id")
        return tuple(session.execute(sql, {"id": job_id}).one())


def test_a_single_case_with_wait_is_answered_finished_in_one_request(client, settings):
    response = client.post("/api/v1/jobs?wait=30", json={"cases": [_case(10, "clinic-7")]})
    assert response.status_code == 201, response.get_json()
    job = response.get_json()
    assert response.headers["Location"] == job["url"] == f"/api/v1/jobs/{job['id']}"
    assert (job["status"], job["rows_scored"], job["rows_rejected"], job["attempts"]) == ("succeeded", 1, 0, 1)
    model = load_model("wdbc-rf4", settings.models_dir)
    assert job["model"] == {"name": "wdbc-rf4", "version": model.version, "sha256": model.sha256}
    plain = client.get(job["url"]).get_json()  # GET without a wait: the job alone, the same as in the answer
    assert plain == {k: v for k, v in job.items() if k not in ("url", "results", "notice")}

    (result,) = job["results"]  # the answer itself carries the result: M or B, one request
    assert job["notice"].startswith("Decision support only")
    exported = client.get(f"{job['url']}/results").get_json()["results"][0]
    assert result == {k: v for k, v in exported.items() if k != "input"}  # as the results export gives it
    X, _ = wdbc()
    row = np.array([[X[10, FEATURES.index(f)] for f in model.features]])
    malignant = list(model.pipeline.classes_).index(0)  # the bundled data codes 0 = malignant
    label = "M" if model.pipeline.predict(row)[0] == 0 else "B"
    assert (result["case_id"], result["diagnosis"]) == ("clinic-7", label)
    assert result["probability_malignant"] == float(model.pipeline.predict_proba(row)[0, malignant])  # exact
    assert (result["model_name"], result["model_version"], result["model_sha256"]) == (
        "wdbc-rf4",
        model.version,
        model.sha256,
    )


def test_without_wait_the_answer_is_the_same_202_as_before(client):
    response = client.post("/api/v1/jobs", json={"cases": [_case(1)]})
    assert response.status_code == 202
    body = response.get_json()
    assert set(body) == {"id", "status", "url"} and response.headers["Location"] == body["url"]
    assert wait_for_job(client, body["id"])["status"] == "succeeded"


@pytest.mark.slow
def test_a_clinicians_case_is_answered_while_a_lab_file_is_still_being_scored(client):
    """Every file process busy with a big upload: the single case still has a process of its own."""
    file = post_upload(client, jittered_csv(300_000)).get_json()
    deadline = time.monotonic() + 60
    while client.get(file["url"]).get_json()["status"] != "running" and time.monotonic() < deadline:
        time.sleep(0.02)

    case = client.post("/api/v1/jobs?wait=30", json={"cases": [_case(3)]}).get_json()
    meanwhile = client.get(file["url"]).get_json()

    assert case["status"] == "succeeded"
    # Answered by the process kept for cases, not after the file's parts: most of the file is still to be scored
    # (sent on the files' queue, the case waited for every part and was answered as the file finished).
    assert meanwhile["status"] == "running" and meanwhile["rows_scored"] < 150_000, meanwhile
    done = wait_for_job(client, file["id"], timeout=300)
    assert done["rows_scored"] == 300_000
    assert case["finished_at"] < done["finished_at"]


def test_a_job_not_finished_within_the_wait_answers_202_with_the_job(idle_app, people, sessions):
    client = people["lab"].client(idle_app)
    response = client.post("/api/v1/jobs?wait=0.5", json={"cases": [_case(2)]})
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "queued" and response.headers["Location"] == body["url"]
    with sessions.begin() as session:  # committed, where any worker can find it
        assert session.get(Job, uuid.UUID(body["id"])).status == "queued"


def test_several_cases_get_one_result_each_and_a_rejected_one_keeps_its_reason(client, sessions):
    bad = {**_case(4, "bad"), "texture_mean": "twelve"}
    cases = [_case(3, "a"), bad, _case(5, "c")]
    job = client.post("/api/v1/jobs?wait=30", json={"cases": cases}).get_json()
    assert (job["status"], job["rows_total"], job["rows_scored"], job["rows_rejected"]) == ("succeeded", 3, 2, 1)
    results = job["results"]
    assert [(r["row"], r["case_id"]) for r in results] == [(1, "a"), (2, "bad"), (3, "c")]
    assert results[1]["diagnosis"] is None and results[1]["probability_malignant"] is None
    assert "texture_mean" in results[1]["error"] and "twelve" in str(results[1])
    assert all(r["diagnosis"] in ("M", "B") and r["error"] is None for r in (results[0], results[2]))
    assert _result_counts(sessions, job["id"]) == (3, 3)


def _die_in(target: str, job_id: str, env: dict[str, str], *, after: bool = False) -> int:
    """Run the worker loop for one delivery in a process of its own, killed (SIGKILL) when it calls `target`
    (a module's attribute), or right after the call returns."""
    code = (
        "import importlib, os, signal, sys, uuid\n"
        "module_name, name = sys.argv[1].rsplit('.', 1)\n"
        "module, after = importlib.import_module(module_name), sys.argv[3] == 'after'\n"
        "real = getattr(module, name)\n"
        "def die(*args, **kwargs):\n"
        "    if after:\n"
        "        real(*args, **kwargs)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "setattr(module, name, die)\n"
        "from worker.celery_app import app\n"
        "from worker.loop import run\n"
        "from worker.resources import resources\n"
        "run(resources(), app, uuid.UUID(sys.argv[2]))\n"
    )
    argv = [sys.executable, "-c", code, target, job_id, "after" if after else "at"]
    return subprocess.run(argv, env=cli_env(env), timeout=120).returncode


def _state(sessions, job_id: str) -> tuple[str, int, int]:
    with sessions.begin() as session:
        job = session.get(Job, uuid.UUID(job_id))
        return job.status, job.attempts, _result_counts(sessions, job_id)[0]


def test_a_worker_killed_before_its_claim_commits_leaves_the_job_queued(
    idle_app, people, sessions, service_env, settings, worker
):
    job_id = people["lab"].client(idle_app).post("/api/v1/jobs", json={"cases": [_case(6)]}).get_json()["id"]
    assert _die_in("shared.jobs.claim_job", job_id, service_env, after=True) == -9
    assert _state(sessions, job_id) == ("queued", 0, 0)  # the claim rolled back with the process
    app = make_celery(settings)
    assert jobs.publish(app, uuid.UUID(job_id))
    app.close()
    assert wait_for_job(people["lab"].client(idle_app), job_id)["status"] == "succeeded"
    assert _state(sessions, job_id) == ("succeeded", 1, 1)


def test_a_worker_killed_before_its_results_commit_is_run_again_and_written_once(
    idle_app, people, sessions, service_env, worker
):
    client = people["lab"].client(idle_app)
    job_id = client.post("/api/v1/jobs", json={"cases": [_case(7)]}).get_json()["id"]
    assert _die_in("shared.jobs.units.write_results", job_id, service_env) == -9
    assert _state(sessions, job_id) == ("running", 1, 0)  # the attempt counts; nothing of it was written
    with sessions.begin() as session:  # time passes: the killed attempt's heartbeat goes stale
        quiet = utcnow() - timedelta(hours=1)
        session.execute(update(Job).where(Job.id == uuid.UUID(job_id)).values(heartbeat_at=quiet))
    # The session worker's reconciler queues it again and sends it to the worker, which scores it.
    assert wait_for_job(client, job_id, timeout=60)["status"] == "succeeded"
    assert _state(sessions, job_id) == ("succeeded", 2, 1)


def test_an_input_that_kills_every_attempt_ends_failed_after_the_attempt_limit(
    idle_app, people, sessions, service_env, settings
):
    job_id = people["lab"].client(idle_app).post("/api/v1/jobs", json={"cases": [_case(8)]}).get_json()["id"]
    quick = {"CYTOSCORE_HEARTBEAT_STALE_AFTER": "0.5", "CYTOSCORE_HEARTBEAT_INTERVAL": "0.1"}
    for attempt in range(1, settings.max_attempts + 1):
        time.sleep(0.6)  # the previous attempt's heartbeat is stale for these processes
        # The scoring itself crashes the process.
        assert _die_in("worker.loop.result_rows", job_id, {**service_env, **quick}) == -9
        assert _state(sessions, job_id) == ("running", attempt, 0)
    time.sleep(0.6)
    app = make_celery(settings.model_copy(update={"queue": fresh_queue("nobody-reads")}))
    try:
        report = jobs.reconcile(sessions, app, settings.model_copy(update={"heartbeat_stale_after": 0.5}))
        while report.locked_out:  # the session worker's reconciler holds the lock just now; it is not stale yet
            time.sleep(0.2)
            report = jobs.reconcile(sessions, app, settings.model_copy(update={"heartbeat_stale_after": 0.5}))
    finally:
        app.close()
    assert report.gave_up == [uuid.UUID(job_id)]
    with sessions.begin() as session:
        job = session.get(Job, uuid.UUID(job_id))
        assert (job.status, job.attempts) == ("failed", settings.max_attempts)
        assert job.error.startswith("gave up after")


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _notify_after(seconds: float, url: str, job_id: uuid.UUID, done: threading.Event) -> None:
    def later() -> None:
        time.sleep(seconds)
        done.set()  # the job's row says finished, then its commit notifies
        with psycopg.connect(_libpq(url), autocommit=True) as conn:
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(job_id)))

    threading.Thread(target=later, daemon=True).start()


def test_a_waiting_request_is_woken_by_the_notification_not_by_a_poll(app, settings):
    with app.app_context():
        for _ in range(3):  # the first wait of a process also starts its listener
            job_id, done = uuid.uuid4(), threading.Event()
            _notify_after(0.2, settings.database_url, job_id, done)
            started = time.monotonic()
            assert wait_until_finished(job_id, 20, done.is_set)
            assert time.monotonic() - started < 1.5  # a poll would take 2 s or more


def test_a_lost_listener_connection_is_replaced_and_no_waiter_misses_its_job(app, settings):
    with app.app_context():
        job_id, done = uuid.uuid4(), threading.Event()
        _notify_after(0.2, settings.database_url, job_id, done)
        assert wait_until_finished(job_id, 20, done.is_set)  # the listener is up
        with psycopg.connect(_libpq(settings.database_url), autocommit=True) as conn:
            killed = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = %s",
                (APPLICATION_NAME,),
            ).fetchall()
        assert killed
        job_id, done = uuid.uuid4(), threading.Event()
        _notify_after(0.2, settings.database_url, job_id, done)  # maybe before the listener is back
        started = time.monotonic()
        assert wait_until_finished(job_id, 20, done.is_set)
        assert time.monotonic() - started < 10


def _raise_in(
    target: str, make_job: Callable[[], str], env: dict[str, str], deliveries: int
) -> tuple[str, list[list], str]:
    """Run the task for `deliveries` deliveries of a job, one after the other in a process of its own, with
    `target` (a module's attribute) raising an exception nobody expected, whose message quotes a measurement.

    The job is made (`make_job`, returning its id) once that process is ready, so it is delivered within moments:
    queued for longer than `queued_resend_after` (slow start-up on a busy machine), the session worker's reconciler
    would send it to the session's own worker, which would take it between two of these deliveries.
    Return the job id; after each delivery, [the task's outcome, the job's status, attempts and error]; and the log.
    """
    code = (
        "import importlib, json, sys, uuid\n"
        "module_name, name = sys.argv[1].rsplit('.', 1)\n"
        "def defect(*args, **kwargs):\n"
        "    raise RuntimeError('radius_mean 17.99 is not what this code expected')\n"
        "setattr(importlib.import_module(module_name), name, defect)\n"
        "from shared.logs import configure_logging\n"
        "from shared.schema import Job\n"
        "from worker.resources import resources\n"
        "from worker.tasks import score_job\n"
        "res = resources()\n"
        "res.load_all_models()\n"
        "configure_logging(res.settings)\n"
        "print('ready', flush=True)\n"
        "job_id = sys.stdin.readline().strip()\n"
        "for _ in range(int(sys.argv[2])):\n"
        "    outcome = score_job(job_id)\n"
        "    with res.sessions.begin() as session:\n"
        "        job = session.get(Job, uuid.UUID(job_id))\n"
        "        print(json.dumps([outcome, job.status, job.attempts, job.error]))\n"
    )
    argv = [sys.executable, "-c", code, target, str(deliveries)]
    with subprocess.Popen(argv, env=cli_env(env), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as proc:  # fmt: skip
        if proc.stdout is None or proc.stdout.readline() != "ready\n":
            raise AssertionError(f"the delivering process did not start:\n{proc.communicate(timeout=60)[1]}")
        job_id = make_job()
        out, err = proc.communicate(job_id + "\n", timeout=120)
    assert proc.returncode == 0, err
    states = [json.loads(line) for line in out.splitlines() if line.startswith("[")]
    return job_id, states, out + err


@pytest.mark.parametrize(
    ("source", "target", "place"),
    [
        ("json", "worker.loop.result_rows", ("worker/loop.py:", "in _score_unit)")),
        ("csv", "worker.loop.result_rows", ("worker/loop.py:", "in _score_unit)")),
    ],
)
def test_a_defect_in_the_worker_is_named_on_the_job_and_fails_it_at_the_attempt_limit(
    source, target, place, idle_app, people, settings, service_env
):
    client = people["lab"].client(idle_app)

    def make_job() -> str:
        if source == "json":
            response = client.post("/api/v1/jobs", json={"cases": [_case(11)]})
        else:
            response = post_upload(client, wdbc_csv(slice(0, 5)), model="wdbc-rf30")
        return response.get_json()["id"]  # type: ignore[no-any-return]

    # The task puts a handed-back job straight back on its queue: here the idle one, which nobody reads.
    env = {**service_env, "CYTOSCORE_QUEUE": idle_app.config["CYTOSCORE"].queue}
    limit = settings.max_attempts
    job_id, states, log = _raise_in(target, make_job, env, deliveries=limit)

    assert "17.99" not in log  # the exception's message may quote a measurement: the log never does
    for attempt, (outcome, status, attempts, error) in enumerate(states[:-1], start=1):
        assert f"job {job_id}: attempt {attempt} stopped on an internal error, RuntimeError at " in log
        assert (outcome, status, attempts) == ("handed back", "queued", attempt)
        assert error.startswith(f"attempt {attempt} stopped on an internal error (RuntimeError at {place[0]}")
        assert place[1] in error  # the innermost place in our own code, where the defect's call is
        assert error.endswith("; queued again") and "17.99" not in error
    assert len(states) == limit and states[-1][:3] == ["failed", "failed", limit]
    job = client.get(f"/api/v1/jobs/{job_id}").get_json()
    assert job["status"] == "failed" and "17.99" not in job["error"]
    assert job["error"].startswith(
        f"gave up after {limit} attempts: the last stopped on an internal error (RuntimeError at "
    )


def _deliver(job_id: str, env: dict[str, str]) -> str:
    """One delivery of the job to the task, in a process of its own; the task's outcome."""
    code = "import sys\nfrom worker.tasks import score_job\nprint(score_job(sys.argv[1]))\n"
    done = subprocess.run([sys.executable, "-c", code, job_id], env=cli_env(env), timeout=120,
                          capture_output=True, text=True, check=True)  # fmt: skip
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("closer", ["a delivery", "the reconciler"])
def test_a_job_handed_back_at_its_last_attempt_fails_saying_why(
    closer, idle_app, people, sessions, settings, service_env, pg_url
):
    client = people["lab"].client(idle_app)
    job_id = client.post("/api/v1/jobs", json={"cases": [_case(12)]}).get_json()["id"]
    limit = settings.max_attempts
    # Holding the reconcilers' lock keeps the session worker's reconciler out until the delivery has been made.
    with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as lock:
        lock.execute("SELECT pg_advisory_lock(%s)", (RECONCILE_LOCK,))
        for _ in range(limit):  # a worker stopped during every attempt (deploys, say)
            with sessions.begin() as session:
                attempt = jobs.claim_job(session, uuid.UUID(job_id), max_attempts=limit, stale_after=30)
                reason = f"attempt {attempt.number} handed back: its worker was stopping"
                assert jobs.hand_back(session, attempt, reason=reason)
        assert client.get(f"/api/v1/jobs/{job_id}").get_json()["status"] == "queued"
        if closer == "a delivery":
            assert _deliver(job_id, {**service_env, "CYTOSCORE_QUEUE": idle_app.config["CYTOSCORE"].queue}) == "failed"
    if closer == "the reconciler":  # ours, or the session worker's: the same code closes it
        app = make_celery(settings.model_copy(update={"queue": idle_app.config["CYTOSCORE"].queue}))
        try:
            jobs.reconcile(sessions, app, settings)
        finally:
            app.close()
    job = wait_for_job(client, job_id)  # a reconciler holding the lock just now may still be committing
    assert (job["status"], job["attempts"]) == ("failed", limit)
    assert job["error"] == f"gave up after {limit} attempts; attempt {limit} handed back: its worker was stopping"
