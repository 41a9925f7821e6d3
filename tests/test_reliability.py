"""Nothing lost, nothing doubled: jobs survive killed workers, a wiped broker, a database restart and a crowd.

Every scenario owns its database and queue (and, where it breaks one, its own redis-server or PostgreSQL
cluster), runs real `cytoscore` processes and kills them for real. Each ends on the same invariants: every job
reaches exactly one terminal state, and a succeeded job has exactly one result per input row.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import text, update
from sqlalchemy.orm import Session

from shared import jobs
from shared.db import make_engine, make_sessionmaker
from shared.queue import make_celery
from shared.schema import Job, utcnow
from testkit.reliability import (
    FAST,
    RedisServer,
    Scenario,
    assert_exactly_once,
    print_table,
    private_database,
    query,
    run_load,
    wait_terminal,
    wait_until,
)
from testkit.support import RF4, WORKER_NODES, free_port, jittered_csv, run_cli, wdbc_csv
from tests.reliability_support import (
    PostgresCluster,
    job,
    kill,
    pool_children,
    wait_running_midway,
)
from tests.support import post_upload
from worker.loop import in_transaction
from worker.resources import Resources

STALE = float(FAST["CYTOSCORE_HEARTBEAT_STALE_AFTER"])
RESEND = float(FAST["CYTOSCORE_QUEUED_RESEND_AFTER"])
MAX_ATTEMPTS = int(FAST["CYTOSCORE_MAX_ATTEMPTS"])
# The invariant's clock: a job is back in play within one staleness + one reconcile round; the rest is the
# scoring itself on a busy 2-core machine, so the allowance is generous (this is not a speed test).
BACK_IN_PLAY = STALE + RESEND + 2 * float(FAST["CYTOSCORE_RECONCILE_INTERVAL"])
WORK = 150.0


@pytest.fixture(scope="module")
def big_csv() -> bytes:
    return jittered_csv(100_000)


@pytest.fixture(scope="module")
def module_redis(tmp_path_factory) -> Iterator[RedisServer]:
    """A broker of this module's own: another test session's FLUSHDB on the shared one cannot touch it."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def scenario(tmp_path, module_redis) -> Iterator[Scenario]:
    with private_database() as db_url:
        s = Scenario(db_url, module_redis.url, tmp_path)
        try:
            yield s
        finally:
            s.close()


@pytest.fixture
def private_redis(tmp_path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    yield server
    server.stop()


def upload(client, content: bytes, name: str = "cases.csv") -> str:
    response = post_upload(client, content, name)
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]  # type: ignore[no-any-return]


def single_case(i: int) -> dict:
    return {"case_id": f"S{i}", **dict(zip(RF4, (12.0 + i % 9, 18.0 + i % 7, 0.09, 0.1), strict=True))}


def stuck(s: Scenario) -> str:
    return run_cli(["jobs", "stuck"], s.env).stdout


# 1 -------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_worker_killed_midjob_leaves_a_job_the_next_worker_completes_exactly_once(scenario, big_csv):
    client, db = scenario.client(), scenario.db_url
    first = scenario.worker("worker-1")
    job_id = upload(client, big_csv, "big.csv")
    wait_running_midway(db, job_id)
    first.stop(signal.SIGKILL)  # the whole process group, main and pool, at once

    # With no worker left, nobody reconciles; the stuck list says what the next reconciler will do.
    wait_until(lambda: float(job(db, job_id)["heartbeat"]) < time.time() - STALE - 0.5, 30, "heartbeat to go stale")
    listing = stuck(scenario)
    assert job_id in listing and "stopped heartbeating" in listing, listing

    scenario.worker("worker-2")
    wait_terminal(db, [job_id], BACK_IN_PLAY + WORK, scenario.env)
    found = assert_exactly_once(db, [job_id])[job_id]
    assert (found["status"], found["attempts"], found["error"]) == ("succeeded", 2, None), found
    assert "no stuck jobs" in stuck(scenario)


@pytest.mark.slow
def test_a_worker_killed_while_holding_a_part_leaves_a_job_the_others_complete_exactly_once(scenario, big_csv):
    scenario.extra.update(CYTOSCORE_PARALLEL_MIN_BYTES="1", CYTOSCORE_PART_BYTES=str(64 * 1024))
    client, db = scenario.client(), scenario.db_url
    first = scenario.worker("worker-1")
    job_id = upload(client, big_csv, "big.csv")
    assert query(db, "SELECT count(*) FROM job_input_parts WHERE job_id = %s", [job_id])[0][0] > 50
    wait_running_midway(db, job_id)
    first.stop(signal.SIGKILL)
    held = query(db, "SELECT count(*) FROM part_claims WHERE job_id = %s AND done_at IS NULL", [job_id])[0][0]

    # The next worker joins the attempt through the lead's invitations, or takes a new one once the job's
    # heartbeat is stale; the part the dead worker held is taken again either way.
    scenario.worker("worker-2")
    wait_terminal(db, [job_id], BACK_IN_PLAY + WORK, scenario.env)
    found = assert_exactly_once(db, [job_id])[job_id]
    assert found["status"] == "succeeded" and found["attempts"] in (1, 2), found
    assert held <= 1
    assert query(db, "SELECT count(*) FROM part_claims WHERE job_id = %s AND done_at IS NULL", [job_id])[0][0] == 0


# 2 -------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_killed_pool_process_is_retried_and_an_input_that_kills_every_attempt_ends_failed(scenario, big_csv):
    client, db = scenario.client(), scenario.db_url
    worker = scenario.worker()

    job_id = upload(client, big_csv, "oom.csv")
    wait_running_midway(db, job_id)
    (child,) = pool_children(worker.proc.pid)
    kill(child)  # what the OOM killer does: the pool process only; Celery's main process lives on
    wait_terminal(db, [job_id], BACK_IN_PLAY + WORK, scenario.env)
    found = assert_exactly_once(db, [job_id])[job_id]
    assert (found["status"], found["attempts"]) == ("succeeded", 2), found

    poison = upload(client, big_csv, "poison.csv")
    killed: set[int] = set()
    deadline = time.monotonic() + MAX_ATTEMPTS * (BACK_IN_PLAY + 60)
    while (state := job(db, poison))["status"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, (state, stuck(scenario))
        if state["status"] == "running" and state["attempts"] not in killed:
            for pid in pool_children(worker.proc.pid):
                kill(pid)
            killed.add(state["attempts"])
        time.sleep(0.02)
    found = assert_exactly_once(db, [poison])[poison]
    assert killed == set(range(1, MAX_ATTEMPTS + 1))
    assert (found["status"], found["attempts"]) == ("failed", MAX_ATTEMPTS), found
    assert found["error"].startswith(f"gave up after {MAX_ATTEMPTS} attempts"), found
    assert worker.proc.poll() is None, "the worker itself must survive its pool processes"
    listing = stuck(scenario)
    assert poison in listing and "dead: gave up" in listing, listing


# 3 -------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("how", "grace", "outcome", "stored"),
    [
        ("main process", "120", "finishes", "whole"),  # docker stop / systemd: SIGTERM to the worker; time to finish
        ("main process", "0", "hands back", "whole"),  # the same with no time left: back to the queue between batches
        ("process group", "120", "hands back", "whole"),  # the pool process is signalled too: it stops between batches
        ("main process", "0", "hands back", "in parts"),  # a job stored in parts is handed back between parts
    ],
)
def test_sigterm_midjob_finishes_or_hands_back_and_the_job_completes_once(
    scenario, big_csv, how, grace, outcome, stored
):
    if stored == "in parts":
        scenario.extra.update(CYTOSCORE_PARALLEL_MIN_BYTES="1", CYTOSCORE_PART_BYTES=str(64 * 1024))
    client, db = scenario.client(), scenario.db_url
    worker = scenario.worker("worker-1", CYTOSCORE_SHUTDOWN_GRACE=grace)
    job_id = upload(client, big_csv, "term.csv")
    parts = query(db, "SELECT count(*) FROM job_input_parts WHERE job_id = %s", [job_id])[0][0]
    assert (parts > 1) == (stored == "in parts"), parts
    wait_running_midway(db, job_id)
    if how == "main process":
        worker.proc.send_signal(signal.SIGTERM)
    else:
        os.killpg(worker.proc.pid, signal.SIGTERM)
    assert worker.proc.wait(120) == 0, worker.output()[-3000:]

    state = job(db, job_id)
    if outcome == "finishes":
        assert (state["status"], state["attempts"]) == ("succeeded", 1), state
    else:
        assert (state["status"], state["attempts"]) == ("queued", 1), state
        assert "handed back" in state["error"] and "handed back" in worker.output()
        scenario.worker("worker-2")
    wait_terminal(db, [job_id], BACK_IN_PLAY + WORK, scenario.env)
    found = assert_exactly_once(db, [job_id])[job_id]
    assert (found["status"], found["attempts"]) == ("succeeded", 1 if outcome == "finishes" else 2), found


# 4 -------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_wiped_broker_loses_no_queued_job(tmp_path, private_redis):
    with private_database() as db:
        s = Scenario(db, private_redis.url, tmp_path)
        try:
            client = s.client()
            small = wdbc_csv(slice(0, 30))
            ids = [upload(client, small, f"f{i}.csv") if i % 5 == 0 else _post_case(client, i) for i in range(25)]
            assert _queued(private_redis, s.queue) == [0, 25]  # at most 100 rows each: all on the queue of cases
            private_redis.cli("FLUSHALL")
            ids += [upload(client, small, f"r{i}.csv") if i % 5 == 0 else _post_case(client, i) for i in range(25)]
            private_redis.restart()  # no persistence: the other 25 are gone too
            assert _queued(private_redis, s.queue) == [0, 0]
            assert query(db, "SELECT count(*) FROM jobs WHERE status = 'queued'")[0][0] == 50

            s.worker()
            wait_terminal(db, ids, BACK_IN_PLAY + WORK, s.env)
            found = assert_exactly_once(db, ids)
            assert {(f["status"], f["attempts"]) for f in found.values()} == {("succeeded", 1)}
        finally:
            s.close()


def _queued(redis, queue: str) -> list[int]:
    """How many messages wait on the files' queue and on the queue of cases."""
    return [int(redis.cli("LLEN", name) or 0) for name in (queue, f"{queue}.cases")]


def _post_case(client, i: int) -> str:
    response = client.post("/api/v1/jobs", json={"cases": [single_case(i)]})
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]  # type: ignore[no-any-return]


# 5 -------------------------------------------------------------------------------------------------------------


def _http(url: str, token: str, body: dict | None = None, timeout: float = 30) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.mark.slow
def test_with_the_broker_down_requests_answer_quickly_and_jobs_complete_once_it_is_back(tmp_path, private_redis):
    with private_database() as db:
        s = Scenario(db, private_redis.url, tmp_path)
        try:
            port = free_port()
            s.start("web", "web", PORT=str(port), CYTOSCORE_WEB_WORKERS="2")
            base = f"http://127.0.0.1:{port}"
            s.worker()
            wait_until(lambda: _ready(f"{base}/healthz"), 60, "the web server to answer")

            token = s.person.token  # made before the clock starts: two CLI runs are not the web's time

            private_redis.stop()
            ids, took = [], []
            for i in range(10):
                started = time.monotonic()
                status, body = _http(f"{base}/api/v1/jobs", token, {"cases": [single_case(i)]})
                took.append(time.monotonic() - started)
                assert (status, body.get("status")) == (202, "queued"), body
                ids.append(body["id"])
            print(f"\nPOST with the broker down: slowest {max(took):.2f} s, median {sorted(took)[5]:.2f} s")
            assert max(took) < 5, took
            assert query(db, "SELECT count(*) FROM jobs WHERE id = ANY(%s) AND enqueued_at IS NULL", [ids])[0][0] == 10

            private_redis.start()  # same port, empty
            wait_terminal(db, ids, BACK_IN_PLAY + WORK, s.env)
            found = assert_exactly_once(db, ids)
            assert {(f["status"], f["attempts"]) for f in found.values()} == {("succeeded", 1)}
        finally:
            s.close()


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status in (200, 503)
    except urllib.error.HTTPError as exc:
        return exc.code == 503
    except OSError:
        return False


# 6 -------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("stored", ["whole", "in parts"])  # in parts: two workers share the job across the restart
def test_a_database_restart_midjob_loses_no_row(tmp_path, big_csv, module_redis, stored):
    cluster = PostgresCluster()
    try:
        with private_database(cluster.admin_url) as db:
            s = Scenario(db, module_redis.url, tmp_path)
            if stored == "in parts":
                s.extra.update(CYTOSCORE_PARALLEL_MIN_BYTES="1", CYTOSCORE_PART_BYTES=str(64 * 1024))
            try:
                client = s.client()
                s.worker("worker-1")
                if stored == "in parts":
                    s.worker("worker-2")
                job_id = upload(client, big_csv, "restart.csv")
                wait_running_midway(s.db_url, job_id)
                cluster.restart()  # pg_ctl restart -m fast: every connection is cut mid-transaction
                after = upload(client, wdbc_csv(slice(0, 50)), "after.csv")
                wait_terminal(db, [job_id, after], BACK_IN_PLAY + WORK, s.env)
                found = assert_exactly_once(db, [job_id, after])
                assert {f["status"] for f in found.values()} == {"succeeded"}, found
                print(f"\njob across the restart: attempts {found[job_id]['attempts']}")
            finally:
                s.close()
    finally:
        cluster.destroy()


# 7 -------------------------------------------------------------------------------------------------------------


def test_of_two_claims_on_one_job_exactly_one_wins_and_a_stale_attempt_cannot_write(scenario):
    client = scenario.client()
    engine = make_engine(scenario.db_url)
    sessions = make_sessionmaker(engine)
    try:
        job_id = uuid.UUID(_post_case(client, 1))  # no worker reads this scenario's queue: claims by hand
        barrier = threading.Barrier(8)
        wins: list[jobs.Attempt | None] = []

        def race() -> None:
            with sessions.begin() as session:
                barrier.wait()
                wins.append(jobs.claim_job(session, job_id, max_attempts=3, stale_after=60))

        threads = [threading.Thread(target=race) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        first = [w for w in wins if w is not None]
        assert len(wins) == 8 and [w.number for w in first] == [1]

        # Attempt 1 goes quiet; attempt 2 takes over; attempt 1 wakes up and can write nothing.
        with sessions.begin() as session:
            quiet = utcnow() - timedelta(seconds=120)
            session.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=quiet))
            second = jobs.claim_job(session, job_id, max_attempts=3, stale_after=60)
            assert second is not None and second.number == 2
        stale = jobs.only_part(first[0])
        for done in (False, True):  # a batch, then the last batch, which would finish the job
            with pytest.raises(jobs.Superseded), sessions.begin() as session:
                jobs.write_batch(session, stale, [], scored=1, rejected=0, done=done, id_hashes=None, first_try=True)
        with sessions.begin() as session:
            assert not jobs.heartbeat(session, first[0])
            assert not jobs.fail(session, first[0], "late")
            assert not jobs.hand_back(session, first[0], reason="late")
        with sessions.begin() as session:
            unit = jobs.only_part(second)
            assert jobs.write_batch(session, unit, [], scored=0, rejected=0, done=True, id_hashes=None, first_try=True)
        with sessions.begin() as session:
            assert jobs.claim_job(session, job_id, max_attempts=3, stale_after=60) is None  # finished: a no-op
            _check(session, job_id, "succeeded", 2)
    finally:
        engine.dispose()


def _check(session: Session, job_id: uuid.UUID, status: str, attempts: int) -> None:
    row = session.get(Job, job_id)
    assert row is not None and (row.status, row.attempts) == (status, attempts)


@pytest.mark.slow
def test_two_workers_handed_the_same_job_write_it_once_with_identical_results(scenario):
    client, db = scenario.client(), scenario.db_url
    content = jittered_csv(30_000, seed=3)
    job_id = upload(client, content, "twice.csv")
    app = make_celery(scenario.settings())
    try:
        for _ in range(3):
            assert jobs.publish(app, uuid.UUID(job_id))  # four messages for one job, before any worker runs
    finally:
        app.close()
    a = scenario.start("worker", "worker-a")
    b = scenario.start("worker", "worker-b")
    a.wait_for_log("ready.", 90, count=WORKER_NODES)
    b.wait_for_log("ready.", 90, count=WORKER_NODES)
    reference = upload(client, content, "reference.csv")
    wait_terminal(db, [job_id, reference], BACK_IN_PLAY + WORK, scenario.env)
    found = assert_exactly_once(db, [job_id, reference])
    assert (found[job_id]["status"], found[job_id]["attempts"]) == ("succeeded", 1), found
    wait_until(lambda: (a.output() + b.output()).count("duplicate delivery ignored") >= 3, 60, "3 no-op deliveries")
    assert _results(db, job_id) == _results(db, reference)


@pytest.mark.slow
def test_a_paused_worker_that_wakes_after_its_job_was_taken_over_writes_nothing(scenario, big_csv):
    client, db = scenario.client(), scenario.db_url
    a = scenario.worker("worker-a")
    job_id = upload(client, big_csv, "paused.csv")
    wait_running_midway(db, job_id)
    (child,) = pool_children(a.proc.pid)
    kill(child, signal.SIGSTOP)  # a long GC pause, a frozen VM: alive, but silent
    try:
        scenario.worker("worker-b")
        taken_over = lambda: (j := job(db, job_id))["attempts"] == 2 and (j["done"] > 0 or j["status"] != "running")  # noqa: E731
        wait_until(taken_over, BACK_IN_PLAY + WORK, "worker b to take over and store a batch")
    finally:
        kill(child, signal.SIGCONT)
    a.wait_for_log("superseded", 60)
    # Its session, idle in a transaction past the staleness, was ended by PostgreSQL: a lost connection, not a defect.
    assert "internal error" not in a.output(), a.output()[-4000:]
    wait_terminal(db, [job_id], BACK_IN_PLAY + WORK, scenario.env)
    found = assert_exactly_once(db, [job_id])[job_id]
    assert (found["status"], found["attempts"]) == ("succeeded", 2), found
    reference = upload(client, big_csv, "reference.csv")
    wait_terminal(db, [reference], WORK, scenario.env)
    assert _results(db, job_id) == _results(db, reference)


def test_a_unit_of_work_whose_session_postgresql_ended_is_tried_again_not_called_a_defect(scenario, caplog):
    # What the paused worker above meets when it wakes inside a transaction: PostgreSQL ended its session for lying
    # idle past the limit (here 0.3 s). The unit of work is tried again whole on a new session, as after a restart.
    engine = make_engine(scenario.db_url, stalled_after=0.3)
    res = Resources(scenario.settings(), engine, make_sessionmaker(engine))
    sessions: list[tuple[bool, int]] = []

    def work(session: Session, first_try: bool) -> int:
        sessions.append((first_try, session.execute(text("SELECT pg_backend_pid()")).scalar_one()))
        if first_try:
            time.sleep(1.0)  # frozen inside the transaction
        return session.execute(text("SELECT count(*) FROM jobs")).scalar_one()

    job_id = uuid.uuid4()
    try:
        with caplog.at_level(logging.WARNING, logger="worker.loop"):
            in_transaction(res, job_id, work)
    finally:
        engine.dispose()
    assert [first for first, _ in sessions] == [True, False]
    assert sessions[0][1] != sessions[1][1], "the second try ran on a new session"
    assert [r.getMessage() for r in caplog.records] == [
        f"job {job_id}: database unreachable (InternalError); retrying in 0.2 s"
    ]


def test_a_worker_session_paused_in_the_middle_of_a_copy_is_ended_by_the_reconciler(scenario):
    # A process paused while it sends a batch's rows: its session is active, waiting for its client, which no
    # server timeout ends. Once it has waited past the staleness (here 0.3 s), the reconciler ends it, and with it
    # the locks it holds.
    engine = make_engine(scenario.db_url, stalled_after=0.3)
    res = Resources(scenario.settings(), engine, make_sessionmaker(engine))
    quick = scenario.settings().model_copy(update={"heartbeat_stale_after": 0.3})
    observer = make_engine(scenario.db_url)
    seen: list[tuple[int, bool]] = []

    def work(session: Session, first_try: bool) -> None:
        session.execute(text("SELECT pg_advisory_xact_lock(4242)"))  # stands for the rows a batch locks
        session.execute(text("CREATE TEMP TABLE stalled (x int) ON COMMIT DROP"))
        if not first_try:
            return
        raw = session.connection().connection.driver_connection
        with raw.cursor() as cursor, cursor.copy("COPY stalled FROM STDIN") as copy:
            copy.write_row((1,))
            time.sleep(0.6)  # frozen mid-COPY, past the staleness
            report = jobs.reconcile(make_sessionmaker(observer), make_celery(quick), quick)
            time.sleep(0.5)  # the ended session's locks go with it
            with observer.connect() as other:
                free = other.execute(text("SELECT pg_try_advisory_lock(4242)")).scalar_one()
                other.execute(text("SELECT pg_advisory_unlock_all()"))
            seen.append((report.ended, free))

    try:
        in_transaction(res, uuid.uuid4(), work)  # then tried again on a new session
    finally:
        engine.dispose()
        observer.dispose()
    assert seen == [(1, True)]


def _results(db: str, job_id: str) -> list[tuple]:
    return query(db, "SELECT row_number, case_id, diagnosis, probability_malignant, error FROM results "
                 "WHERE job_id = %s ORDER BY row_number", [job_id])  # fmt: skip


# 8 -------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_crowd_of_single_cases_and_uploads_is_scored_once_each_with_no_errors(scenario):
    port = free_port()
    scenario.start("web", "web", PORT=str(port), CYTOSCORE_WEB_WORKERS="2")
    workers = [scenario.start("worker", f"worker-{i}") for i in (1, 2)]
    for w in workers:
        w.wait_for_log("ready.", 90, count=WORKER_NODES)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: _ready(f"{base}/healthz"), 60, "the web server to answer")

    result = run_load(base, scenario.person.token, scenario.db_url, singles=200, clients=20, uploads=5,
                      upload_rows=10_000, timeout=BACK_IN_PLAY + 240, env=scenario.env)  # fmt: skip
    print_table(result.table(), "200 single cases from 20 clients + 5 x 10k-row uploads; 1 web, 2 workers")
    assert result.errors == []
    assert len(result.found) == 205
    assert {f["status"] for f in result.found.values()} == {"succeeded"}
