"""Large files are stored and read in streaming blocks: the web stores parts as it checks them, the worker spools
the stored input to a file and reads it from there."""

from __future__ import annotations

import io
import tempfile
import threading
import time
import tracemalloc
import uuid
from itertools import accumulate

import numpy as np
import openpyxl
import psycopg
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from shared import jobs
from shared.intake import Layout, iter_batches
from shared.intake.batch import UploadSummary
from shared.intake.plain import Emit, Scanned
from shared.intake.plain import scan as scan_plain
from shared.jobs.stored import PartWriter
from shared.schema import JobKind
from testkit.support import RF4, jittered_csv, wdbc_csv


def _xlsx(csv_bytes: bytes) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    for line in csv_bytes.decode().splitlines():
        sheet.append(line.split(","))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_a_file_on_disk_gives_exactly_the_batches_of_the_same_bytes_in_memory(fmt):
    content = wdbc_csv(slice(0, 300)) if fmt == "csv" else _xlsx(wdbc_csv(slice(0, 300)))
    in_memory = list(iter_batches(content, f"x.{fmt}", RF4, 64))
    with tempfile.TemporaryFile() as spooled:
        spooled.write(content)
        on_disk = list(iter_batches(spooled, f"x.{fmt}", RF4, 64))
    assert len(in_memory) == len(on_disk) == 5
    for a, b in zip(in_memory, on_disk, strict=True):
        assert np.array_equal(a.rows, b.rows) and np.array_equal(a.X, b.X) and a.case_ids == b.case_ids


def _peak_while_reading(rows: int) -> int:
    with tempfile.TemporaryFile() as spooled:
        spooled.write(jittered_csv(rows))
        tracemalloc.start()
        try:
            for _ in iter_batches(spooled, "big.csv", RF4, 2000):
                pass
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()


def test_reading_memory_does_not_grow_with_the_file():
    small, large = _peak_while_reading(10_000), _peak_while_reading(100_000)
    file_growth = len(jittered_csv(100_000)) - len(jittered_csv(10_000))
    # Ten times the rows: nothing is kept for the whole file. Everything is one batch, whatever the file's size.
    assert large - small <= 32 * 90_000, (small, large)
    assert large - small < file_growth / 2, (small, large, file_growth)


def test_the_stored_input_is_spooled_back_byte_for_byte(pg_url):
    engine = create_engine(pg_url)
    sessions = sessionmaker(engine)
    content = jittered_csv(60_000)  # a few MB: several COPY blocks
    assert len(content) > 2 * 2**20
    model = {"name": "wdbc-rf4", "version": "1.0.0", "sha256": "0" * 64}
    with sessions.begin() as session:
        job_id = jobs.create_job(session, kind=JobKind.UPLOAD, model=model, content=content, media_type="text/csv",
                                 layout=Layout.CSV, input_format="csv", rows_total=60_000).id  # fmt: skip
    with sessions.begin() as session, tempfile.TemporaryFile() as out:
        assert jobs.spool_input(session, job_id, out) == len(content)
        out.seek(0)
        assert out.read() == content
    with sessions.begin() as session, pytest.raises(LookupError):
        jobs.spool_input(session, uuid.uuid4(), io.BytesIO())
    engine.dispose()


MODEL = {"name": "wdbc-rf4", "version": "1.0.0", "sha256": "0" * 64}


@pytest.fixture
def migrated(empty_db: tuple[str, Config]) -> str:
    """A database of this test's own, built by the migrations (libpq DSN)."""
    dsn, config = empty_db
    command.upgrade(config, "head")
    return dsn


def _sessions(dsn: str) -> tuple[Engine, sessionmaker[Session]]:
    engine = create_engine(dsn.replace("postgresql://", "postgresql+psycopg://"))
    return engine, sessionmaker(engine)


def _stored_parts(dsn: str, job_id: uuid.UUID) -> list[tuple[int, int, int, bytes]]:
    query = "SELECT part, first_row, row_count, content FROM job_input_parts WHERE job_id = %s ORDER BY part"
    with psycopg.connect(dsn) as conn:
        return [(part, first, count, bytes(content)) for part, first, count, content in conn.execute(query, (job_id,))]


def test_an_upload_is_stored_in_parts_that_add_up_to_its_bytes_and_rows(migrated: str) -> None:
    content = jittered_csv(60_000)
    engine, sessions = _sessions(migrated)

    def scan(emit: Emit) -> Scanned:
        return scan_plain(io.BytesIO(content), "lab.csv", RF4, emit, part_bytes=1 << 20, split_min_bytes=0)

    with sessions.begin() as session:
        job_id = jobs.create_upload(session, model=MODEL, filename="lab.csv", scan=scan).id
    engine.dispose()
    parts = _stored_parts(migrated, job_id)
    assert len(parts) >= 3
    assert b"".join(content for *_, content in parts) == content
    assert [part for part, *_ in parts] == list(range(len(parts)))
    assert [first for _, first, _, _ in parts] == list(accumulate([1] + [count for _, _, count, _ in parts[:-1]]))
    assert sum(count for _, _, count, _ in parts) == 60_000


@pytest.mark.parametrize("parts", [1, 3])
def test_a_part_the_database_refuses_fails_the_upload(migrated: str, parts: int) -> None:
    """Parts are sent without waiting for their answers; a refused one still raises, and nothing is stored."""
    with psycopg.connect(migrated, autocommit=True) as connection:
        with pytest.raises(psycopg.errors.ForeignKeyViolation), PartWriter(connection, uuid.uuid4()) as writer:
            for k in range(parts):  # the job has no input row, so its first part breaks the foreign key
                writer.write(1 + k, 1, b"1.0,2.0,3.0,4.0\n")
        assert connection.execute("SELECT count(*) FROM job_input_parts").fetchone() == (0,)  # and it goes on


def test_parts_are_stored_as_they_arrive_and_few_are_ever_on_their_way(migrated: str) -> None:
    """Neither the web nor PostgreSQL holds the file: with the server slowed down, the parts handed over and not
    yet stored stay a handful, and each is stored before the upload ends."""
    total, rows, part = 24, 2 << 20, b"1\n" * (2 << 20)  # 96 MiB in parts of 4 MiB
    with psycopg.connect(migrated, autocommit=True) as conn:  # each stored part: 50 ms more, and a count
        conn.execute("CREATE SEQUENCE parts_stored")
        conn.execute(
            "CREATE FUNCTION slowly() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN PERFORM pg_sleep(0.05); PERFORM nextval('parts_stored'); RETURN NULL; END $$"
        )
        conn.execute("CREATE TRIGGER slowly AFTER INSERT ON job_input_parts FOR EACH ROW EXECUTE FUNCTION slowly()")
    handed: list[int] = []
    engine, sessions = _sessions(migrated)

    def scan(emit: Emit) -> Scanned:
        for k in range(total):
            emit(1 + k * rows, rows, [part])
            handed.append(k)
        summary = UploadSummary("csv", ",", total * rows, ["id"], has_diagnosis=False, sheet=None)
        return Scanned(summary, "", total, b"id\n")

    def upload() -> None:
        with sessions.begin() as session:
            jobs.create_upload(session, model=MODEL, filename="big.csv", scan=scan)

    thread = threading.Thread(target=upload)
    thread.start()
    on_their_way = []
    with psycopg.connect(migrated, autocommit=True) as watcher:
        while thread.is_alive():
            stored = watcher.execute("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM parts_stored")
            on_their_way.append(len(handed) - stored.fetchone()[0])  # type: ignore[index]
            time.sleep(0.01)
    engine.dispose()
    assert len(handed) == total and len(_stored_parts(migrated, _only_job(migrated))) == total
    assert max(on_their_way) <= 8, on_their_way  # a third of the file at most (one COPY held all of it)


def _only_job(dsn: str) -> uuid.UUID:
    with psycopg.connect(dsn) as conn:
        (job_id,) = conn.execute("SELECT id FROM jobs").fetchall()
    return job_id[0]  # type: ignore[no-any-return]
