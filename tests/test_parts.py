"""Large CSVs are checked and stored in one pass, in parts, and scored by every worker at once — with exactly the
answers, row numbers, reasons and warnings of reading the file in one piece."""

from __future__ import annotations

import io
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence

import numpy as np
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text

from shared import jobs
from shared.features import FEATURES
from shared.intake import FileRejected, Limits, inspect_upload, iter_batches
from shared.intake.plain import Emit, NotPlain, Scanned, read_batches
from shared.intake.plain import scan as scan_plain
from shared.jobs.units import id_hashes, repeated_rows
from shared.modelstore import read_metadata
from shared.queue import make_celery
from shared.settings import ROOT
from testkit.files import csv_file
from testkit.support import RF4, WORKER_NODES, ServiceProcess, jittered_csv, wdbc_csv
from tests.support import post_upload, wait_for_job
from tests.test_intake import merge

Part = tuple[int, int, bytes]


def scan(content: bytes, part_bytes: int = 4096, split_min_bytes: int = 1) -> tuple[object, list[Part]]:
    parts: list[Part] = []
    scanned = scan_plain(io.BytesIO(content), "x.csv", RF4, lambda first, rows, blocks: parts.append(
        (first, rows, b"".join(blocks))), part_bytes=part_bytes, split_min_bytes=split_min_bytes)  # fmt: skip
    return scanned, parts


def _kaggle_layout(content: bytes) -> bytes:
    """The Kaggle file's habits: CRLF line ends and a trailing comma (an unnamed empty last column)."""
    return b"".join(line + b",\r\n" for line in content.splitlines())


@pytest.mark.parametrize(
    "variant",
    [
        lambda c: c,
        _kaggle_layout,
        lambda c: c.rstrip(b"\n"),  # no line end after the last row
        lambda c: b"\xef\xbb\xbf" + c,  # a byte-order mark
        lambda c: c.replace(b",", b"\t"),
    ],
    ids=["plain", "kaggle", "no-final-newline", "bom", "tabs"],
)
def test_a_plain_file_is_cut_into_parts_that_add_up_to_it_with_the_same_summary(variant):
    content = variant(jittered_csv(2000))
    scanned, parts = scan(content)
    assert scanned.summary == inspect_upload(content, "x.csv", RF4)
    assert len(parts) == scanned.parts > 5
    assert b"".join(p for _, _, p in parts) == content
    assert scanned.header == content[: content.index(b"\n") + 1]
    firsts = [first for first, _, _ in parts]
    assert firsts == [1, *(np.cumsum([rows for _, rows, _ in parts])[:-1] + 1).tolist()]
    assert sum(rows for _, rows, _ in parts) == scanned.summary.rows_total == 2000
    one, [whole] = scan(content, split_min_bytes=len(content) + 1)
    assert one.parts == 1 and one.header is None and whole == (1, 2000, content)


@pytest.mark.parametrize(
    "content",
    [
        wdbc_csv(slice(0, 30)).replace(b"M,", b'"M",', 1),  # quotes
        jittered_csv(30).replace(b"\n", b"\n\n", 3),  # blank lines
        jittered_csv(30).replace(b"\n", b"\r\n").replace(b"\r\n", b"\r\n\r\n", 3),  # blank lines, CRLF
        jittered_csv(30) + b"\n",  # a blank line at the end
        jittered_csv(30).replace(b"\n", b"\r"),  # old Mac line ends
        jittered_csv(30).replace(b",", b";"),  # semicolons: decimal commas need the full check
        jittered_csv(30) + b"J99,1.0\n",  # a short row
        jittered_csv(30) + b"J99,1.0,2,3,4,5\n",  # a long row
        jittered_csv(30).replace(b"J7,", "J7é,".encode("latin-1")),  # not UTF-8
        jittered_csv(30).replace(b"J7,", b"J7\x00,"),  # binary
        jittered_csv(30).replace(b"id,", b"id,,"),  # an unnamed column in the middle
        jittered_csv(30).replace(b"id,", b'"id",', 1),  # a quoted header
        jittered_csv(30).replace(b"radius_mean", b"radius\rmean", 1),  # a lone CR in the header
        jittered_csv(0),  # a header and no rows
        b"",
    ],
    ids=[
        "quotes",
        "blank",
        "blank-crlf",
        "blank-last",
        "cr",
        "semicolons",
        "short",
        "long",
        "latin1",
        "nul",
        "unnamed",
        "quoted-header",
        "header-cr",
        "no-rows",
        "empty",
    ],
)
def test_anything_else_is_left_to_the_full_check(content):
    try:
        inspect_upload(content, "x.csv", RF4)
        accepted = None
    except FileRejected as exc:
        accepted = exc.problems
    try:
        scan(content)
    except NotPlain:
        return
    except FileRejected as exc:
        assert exc.problems == accepted  # refused at once only with the full check's own words
        return
    raise AssertionError("a file that is not plain was taken as plain")


def _reference(content: bytes, features: Sequence[str] = RF4) -> object:
    """The same file read record by record by the csv module's reader (the reader of every other CSV)."""
    [batch] = list(iter_batches(io.BytesIO(content), "x.csv", features, 10**6))
    return batch


def _same(a: object, b: object) -> None:
    for field in ("rows", "ok"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert np.array_equal(a.X.view(np.int64), b.X.view(np.int64))  # type: ignore[attr-defined]
    for field in ("case_ids", "errors", "problems", "supplied_diagnosis", "out_of_range", "warnings"):
        assert getattr(a, field) == getattr(b, field), field


def test_a_plain_file_reads_as_the_csv_reader_reads_it_in_batches_of_any_size():
    content = _kaggle_layout(wdbc_csv())
    for batch_rows in (10**6, 7):
        _same(merge(list(read_batches(content, RF4, batch_rows))), _reference(content))


def test_measurements_that_cannot_be_right_are_refused_as_the_csv_reader_refuses_them():
    """A worst value below its mean (here made by the 2 % jitter) is refused from the numbers pandas read, in the
    batch that holds it, with the value as written: the rest of the batch is not read again cell by cell."""
    content = csv_file(3_000).read_bytes()
    ours = merge(list(read_batches(content, FEATURES, 1_000)))
    assert 0 < int((~ours.ok).sum()) < 100
    assert any("never below the mean" in problem.reason for problem in ours.problems)
    _same(ours, _reference(content, FEATURES))


def test_a_part_after_the_first_is_read_with_the_header_and_numbered_from_its_first_row():
    content = jittered_csv(300)
    header, body = content.split(b"\n", 1)
    [whole] = list(read_batches(content, RF4, 10**6))
    part = b"\n".join(body.split(b"\n")[100:])
    [later] = list(read_batches(part, RF4, 10**6, first_row=101, header=header + b"\n"))
    assert later.rows.tolist() == list(range(101, 301))
    assert later.case_ids == whole.case_ids[100:]
    assert np.array_equal(later.X, whole.X[100:])


NUMBERISH = st.sampled_from(
    ["1.5", " 1.5", "1.5 ", "+1.5", "1e1", "1E-1", ".5", "5.", "0.1", "-0", "0", "-2", "1e309", "nan", "inf",
     "-inf", "Infinity", "+inf", "1_0", "0x10", "1,5", "", " ", "\t1", "1\x0b", "\x0c1", "٣", "1.5.1", "e5", "1e",
     "--1", "12", "1d5", "1e400", "1e-400", "0.1000000000000000055511151231257827", "\u00a01", "1f", ".", "+-1",
     "1.e3", "00012", "1 5", "NaN"]
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(NUMBERISH, min_size=4, max_size=4), min_size=1, max_size=6))
def test_every_value_reads_the_same_by_the_plain_reader_as_by_the_csv_reader(rows: Sequence[Sequence[str]]):
    lines = ["id," + ",".join(RF4)] + [f"C{i}," + ",".join(row) for i, row in enumerate(rows, 1)]
    content = ("\n".join(lines) + "\n").encode()
    if b'"' in content or any(len(row) != 4 for row in rows) or any("," in v for row in rows for v in row):
        return  # not a plain file
    _same(merge(list(read_batches(content, RF4, 3))), _reference(content))


@pytest.fixture
def second_worker(service_env, tmp_path):  # type: ignore[no-untyped-def]
    proc = ServiceProcess(["worker"], service_env, tmp_path / "worker2.log")
    proc.wait_for_log("ready.", timeout=60, count=WORKER_NODES)
    yield proc
    proc.stop()


def _results(pg_url: str, job_id: str) -> list[tuple[object, ...]]:
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT row_number, case_id, diagnosis, probability_malignant, model_version, supplied_diagnosis, "
                 "out_of_range, warning, error FROM results WHERE job_id = :id ORDER BY row_number"), {"id": job_id}
        ).all()  # fmt: skip
    engine.dispose()
    return [tuple(r) for r in rows]


def _workers(pg_url: str, job_id: str) -> dict[str, int]:
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT worker, count(*) FROM part_claims WHERE job_id = :id AND done_at IS NOT NULL GROUP BY worker"),
            {"id": job_id},
        ).all()
    engine.dispose()
    return {str(w): int(n) for w, n in found}


def test_two_workers_share_one_job_and_answer_exactly_as_one_piece(app, parts_app, worker, second_worker, people,
                                                                   pg_url):  # fmt: skip
    content = jittered_csv(60_000, seed=5)
    lines = content.split(b"\n")
    lines[50_000] = b"J17," + lines[50_000].split(b",", 1)[1]  # the id of row 17, in another part
    lines[30_000] = lines[30_000].rsplit(b",", 1)[0] + b",-1.5"  # a bad value
    content = b"\n".join(lines)
    split_client, whole_client = people["lab"].client(parts_app), people["lab"].client(app)
    split = post_upload(split_client, content, "big.csv").get_json()["id"]
    whole = post_upload(whole_client, content, "big.csv").get_json()["id"]
    for client, job_id in ((split_client, split), (whole_client, whole)):
        state = wait_for_job(client, job_id, timeout=180)
        assert (state["status"], state["rows_total"], state["rows_scored"], state["rows_rejected"]) == (
            "succeeded", 60_000, 59_999, 1), state  # fmt: skip
    by_worker = _workers(pg_url, split)
    assert sum(by_worker.values()) > 40 and len(by_worker) >= 2, by_worker  # several processes took parts
    assert _workers(pg_url, whole) == {}  # a small file is one part, read by one worker
    ours, reference = _results(pg_url, split), _results(pg_url, whole)
    assert ours == reference
    assert ours[50_000 - 1][7] == "duplicate case id (also row 17)"
    assert "-1.5" in ours[30_000 - 1][8] and "is negative" in ours[30_000 - 1][8]
    assert "joining attempt 1" in second_worker.output() + worker.output()


def test_an_upload_refused_halfway_leaves_nothing(parts_app, worker, people, pg_url):
    content = jittered_csv(20_000) + b"J-extra,1.0\n"  # a short row at the very end, after parts were stored
    response = post_upload(people["lab"].client(parts_app), content, "big.csv")
    assert response.status_code == 422
    assert "different number of fields" in " ".join(response.get_json()["problems"])
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        orphans = conn.execute(text("SELECT count(*) FROM job_input_parts p LEFT JOIN jobs j ON j.id = p.job_id "
                                    "WHERE j.id IS NULL")).scalar_one()  # fmt: skip
    engine.dispose()
    assert orphans == 0


def _dsn(pg_url: str) -> str:
    return pg_url.replace("postgresql+psycopg://", "postgresql://")


def _job_state(pg_url: str, job_id: object) -> tuple[str | None, int, int]:
    """The job's status (None once it is gone), its parts stored and its parts scored."""
    with psycopg.connect(_dsn(pg_url)) as conn:
        found = conn.execute(
            "SELECT (SELECT status FROM jobs WHERE id = %(id)s), "
            "(SELECT count(*) FROM job_input_parts WHERE job_id = %(id)s), "
            "(SELECT count(*) FROM part_claims WHERE job_id = %(id)s AND done_at IS NOT NULL)", {"id": job_id}
        ).fetchone()  # fmt: skip
    assert found is not None
    return found[0], int(found[1]), int(found[2])


def test_workers_score_a_large_uploads_first_parts_while_the_rest_is_still_checked(worker, settings, sessions,
                                                                                 pg_url):  # fmt: skip
    content = jittered_csv(20_000, seed=9)
    model = read_metadata("wdbc-rf4", ROOT / "models")
    received: list[uuid.UUID] = []
    while_checking: list[tuple[str | None, int, int]] = []

    def scan(emit: Emit) -> Scanned:
        scanned = scan_plain(io.BytesIO(content), "big.csv", RF4, emit, part_bytes=64 * 1024, split_min_bytes=1)
        # The file is checked; its last part waits for the upload's transaction. The first ones are scored meanwhile.
        deadline = time.monotonic() + 120
        while _job_state(pg_url, received[0])[2] < scanned.parts - 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        while_checking.append(_job_state(pg_url, received[0]))
        return scanned

    def publish(job_id: uuid.UUID) -> None:
        received.append(job_id)
        jobs.publish(make_celery(settings), job_id)

    with sessions.begin() as session:
        job = jobs.create_upload(session, model=model, filename="big.csv", scan=scan, received=publish)
        parts = len(content) // (64 * 1024) + 1
        assert while_checking == [("running", parts - 1, parts - 1)]  # every stored part scored, the job unfinished
    deadline = time.monotonic() + 120
    while _job_state(pg_url, job.id)[0] == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _job_state(pg_url, job.id) == ("succeeded", parts, parts)
    with psycopg.connect(_dsn(pg_url)) as conn:
        rows = conn.execute("SELECT count(*), count(DISTINCT row_number), min(row_number), max(row_number) "
                            "FROM results WHERE job_id = %s", (job.id,)).fetchone()  # fmt: skip
    assert rows == (20_000, 20_000, 1, 20_000)


def _claim_waiting(pg_url: str) -> bool:
    """Is a worker's claim waiting for a row lock (the job's row, held by an upload's last transaction)?"""
    with psycopg.connect(_dsn(pg_url)) as conn:
        found = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                             "AND query LIKE 'WITH claimed AS%%UPDATE jobs%%'").fetchone()  # fmt: skip
    return found is not None and found[0] > 0


def test_a_claim_that_waits_for_an_uploads_last_part_scores_every_part(worker, settings, sessions, pg_url):
    """A worker claims a received upload while the web's last transaction (the last part, the end of receiving)
    holds the job's row: once it commits, the claim must not take the job for one of a single part."""
    content = wdbc_csv()
    model = read_metadata("wdbc-rf30", ROOT / "models")
    received: list[uuid.UUID] = []

    def scan(emit: Emit) -> Scanned:
        return scan_plain(io.BytesIO(content), "wdbc.csv", FEATURES, emit, part_bytes=64 * 1024, split_min_bytes=1)

    with sessions.begin() as session:
        job = jobs.create_upload(session, model=model, filename="wdbc.csv", scan=scan, received=received.append)
        session.flush()  # the job's row is locked until the commit: its receiving ends with its last part
        jobs.publish(make_celery(settings), received[0])
        deadline = time.monotonic() + 60
        while not _claim_waiting(pg_url) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _claim_waiting(pg_url)
    deadline = time.monotonic() + 60
    while _job_state(pg_url, job.id)[0] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.1)
    status, parts, _ = _job_state(pg_url, job.id)
    assert (status, parts) == ("succeeded", 2)
    with psycopg.connect(_dsn(pg_url)) as conn:
        rows = conn.execute("SELECT count(*), min(row_number), max(row_number) FROM results WHERE job_id = %s",
                            (job.id,)).fetchone()  # fmt: skip
    assert rows == (569, 1, 569)


# A web process storing a large upload, killed once two parts are stored and committed (the third is held).
_DIES_WHILE_RECEIVING = """
import io, sys, time
from shared import jobs
from shared.db import make_engine, make_sessionmaker
from shared.intake.plain import scan
from testkit.support import RF4, jittered_csv

sessions = make_sessionmaker(make_engine(sys.argv[1]))
content = jittered_csv(5_000)
model = {"name": "wdbc-rf4", "version": "1.0.0", "sha256": "0" * 64}

def three_parts(emit):
    def slow(first, rows, blocks):
        emit(first, rows, blocks)
        if first > 1 and emit.__self__.parts == 2:
            print("stored", flush=True)
            time.sleep(600)
    return scan(io.BytesIO(content), "big.csv", RF4, slow, part_bytes=16 * 1024, split_min_bytes=1)

with sessions.begin() as session:
    jobs.create_upload(session, model=model, filename="big.csv", scan=three_parts,
                       received=lambda job_id: print(job_id, flush=True))
"""


def test_an_upload_whose_web_process_died_is_deleted_by_the_reconciler(settings, sessions, pg_url):
    name = f"dying-web-{uuid.uuid4().hex[:8]}"
    argv = [sys.executable, "-c", _DIES_WHILE_RECEIVING, f"{pg_url}?application_name={name}"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT) as web:
        assert web.stdout is not None
        job_id = uuid.UUID(web.stdout.readline().strip())
        assert web.stdout.readline().strip() == "stored"
        deadline = time.monotonic() + 30
        while _job_state(pg_url, job_id)[1] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # the two parts sent are committed (the pipeline does not wait for them)
        web.kill()
    with psycopg.connect(_dsn(pg_url), autocommit=True) as conn:
        backends = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
        for _ in range(100):  # until the server has done with what the dead process sent
            if conn.execute(backends, (name,)).fetchone() == (0,):
                break
            time.sleep(0.1)
        status, stored, _ = _job_state(pg_url, job_id)
        assert status in ("queued", "running") and stored == 2  # committed, but never made whole
        # As if the heartbeat staleness had passed since the last part was stored.
        conn.execute("UPDATE jobs SET receiving_at = receiving_at - interval '1 hour' WHERE id = %s", (job_id,))
    jobs.reconcile(sessions, make_celery(settings), settings)
    assert _job_state(pg_url, job_id) == (None, 0, 0)


def test_id_hashes_agree_between_worker_processes_and_find_every_repeat():
    code = "from shared.jobs.units import id_hashes; print(id_hashes(['J17', 'x', None]).tolist())"
    run = [sys.executable, "-c", code]
    seen = {subprocess.run(run, env={"PYTHONHASHSEED": seed}, capture_output=True, text=True, check=True,
                           cwd=ROOT).stdout for seed in ("1", "2")}  # fmt: skip
    assert len(seen) == 1  # workers hash ids alike, whatever their string-hash seed

    first = id_hashes(["a", None, "b", "a", "c"])  # rows 1-5
    second = id_hashes(["b", "x", None])  # rows 6-8
    assert repeated_rows([(1, first.tobytes()), (6, second.tobytes())]) == [1, 3, 4, 6]
    assert repeated_rows([(1, id_hashes([None, None]).tobytes())]) == []


def test_a_plain_file_over_the_row_limit_is_refused_as_the_full_check_refuses_it():
    content, limits = jittered_csv(30), Limits(max_rows=5)
    with pytest.raises(FileRejected) as full:
        inspect_upload(content, "x.csv", RF4, limits)
    with pytest.raises(FileRejected) as scanned:
        scan_plain(io.BytesIO(content), "x.csv", RF4, lambda *_: None, limits)
    assert scanned.value.problems == full.value.problems == ["the file has more than 5 data rows (the limit)"]
