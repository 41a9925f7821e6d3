"""The migrations on real databases: what an upgrade does to rows already stored, and that head matches the models."""

from __future__ import annotations

import uuid

import psycopg
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

from shared.schema import Base

JOB = (
    "INSERT INTO jobs (id, kind, status, model_name, model_version, model_sha256, input_sha256, input_format, "
    "rows_total, rows_scored, rows_rejected, attempts, created_at) "
    "VALUES (%s, 'upload', 'succeeded', 'm', 'v', 'h', 'h', 'csv', %s, %s, 0, 1, now())"
)


def _stored_job(conn: psycopg.Connection, parts: list[tuple[int, int]]) -> uuid.UUID:
    """A finished job stored as (first_row, row_count) parts, with a result row for each of its rows."""
    job = uuid.uuid4()
    rows = sum(count for _, count in parts)
    conn.execute(JOB, (job, rows, rows))
    conn.execute("INSERT INTO job_inputs (job_id, media_type) VALUES (%s, 'text/csv')", (job,))
    for number, (first, count) in enumerate(parts):
        conn.execute(
            "INSERT INTO job_input_parts (job_id, part, first_row, row_count, content) VALUES (%s, %s, %s, %s, '')",
            (job, number, first, count),
        )
    for row in range(1, rows + 1):
        conn.execute(
            "INSERT INTO results (job_id, row_number, diagnosis, probability_malignant, model_version) "
            "VALUES (%s, %s, 'M', 0.9, 'v')",
            (job, row),
        )
    return job


def test_upgrade_gives_every_stored_result_the_part_it_was_read_from(empty_db: tuple[str, Config]) -> None:
    dsn, config = empty_db
    command.upgrade(config, "0005")
    with psycopg.connect(dsn) as conn:
        split = _stored_job(conn, [(1, 3), (4, 2), (6, 1)])
        whole = _stored_job(conn, [(1, 2)])
    command.upgrade(config, "head")
    with psycopg.connect(dsn) as conn:
        part_of = {(job, row): part for job, row, part in conn.execute("SELECT job_id, row_number, part FROM results")}
        assert len(part_of) == 8
        assert [part_of[split, row] for row in range(1, 7)] == [0, 0, 0, 1, 1, 2]
        assert [part_of[whole, row] for row in (1, 2)] == [0, 0]
        # A row for a part that was never stored is refused (since 0007 by the triggers, with the same SQLSTATE).
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute(
                "INSERT INTO results (job_id, row_number, diagnosis, probability_malignant, model_version, part) "
                "VALUES (%s, 9, 'B', 0.1, 'v', 3)",
                (split,),
            )
        conn.rollback()
        # Deleting a job's input still takes its results with it.
        conn.execute("DELETE FROM job_inputs WHERE job_id = %s", (whole,))
        assert conn.execute("SELECT count(*) FROM results WHERE job_id = %s", (whole,)).fetchone() == (0,)
        conn.commit()

    command.downgrade(config, "0005")
    with psycopg.connect(dsn) as conn:
        columns = {row[0] for row in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'results'")}  # fmt: skip
        assert "part" not in columns
        assert conn.execute("SELECT count(*) FROM results WHERE job_id = %s", (split,)).fetchone() == (6,)
        with pytest.raises(psycopg.errors.ForeignKeyViolation):  # the key to the job is back
            conn.execute(
                "INSERT INTO results (job_id, row_number, diagnosis, probability_malignant, model_version) "
                "VALUES (%s, 1, 'B', 0.1, 'v')",
                (uuid.uuid4(),),
            )


def test_upgrade_stops_on_a_result_no_stored_part_holds(empty_db: tuple[str, Config]) -> None:
    dsn, config = empty_db
    command.upgrade(config, "0005")
    with psycopg.connect(dsn) as conn:
        job = _stored_job(conn, [(1, 2)])
        conn.execute(
            "INSERT INTO results (job_id, row_number, diagnosis, probability_malignant, model_version) "
            "VALUES (%s, 0, 'M', 0.9, 'v')",
            (job,),
        )
    with pytest.raises(RuntimeError, match="1 result rows have a row number before the first stored part"):
        command.upgrade(config, "head")
    with psycopg.connect(dsn) as conn:  # PostgreSQL undid the whole upgrade: the old schema and rows stand
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0005",)
        assert conn.execute("SELECT count(*) FROM results").fetchone() == (3,)


def test_the_migrations_build_what_the_models_describe(empty_db: tuple[str, Config]) -> None:
    dsn, config = empty_db
    command.upgrade(config, "head")
    engine = sa.create_engine(dsn.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_upgrade_gives_every_stored_input_the_layout_its_reader_needs(empty_db: tuple[str, Config]) -> None:
    dsn, config = empty_db
    command.upgrade(config, "0007")
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    with psycopg.connect(dsn) as conn:
        stored = {}
        for name, media, parts in [("json", "application/json", 1), ("xlsx", xlsx, 1), ("csv", "text/csv", 1),
                                   ("plain", "text/csv", 2)]:  # fmt: skip
            job = stored[name] = uuid.uuid4()
            conn.execute(JOB, (job, 3, 3))
            conn.execute("INSERT INTO job_inputs (job_id, media_type, header) VALUES (%s, %s, %s)",
                         (job, media, b"id\n" if parts > 1 else None))  # fmt: skip
            for part in range(parts):
                conn.execute("INSERT INTO job_input_parts VALUES (%s, %s, 1, 1, '')", (job, part))
        conn.execute("INSERT INTO job_chunks (job_id, part, attempt, token, claimed_at, done_at, rows_scored, "
                     "rows_rejected) VALUES (%s, 0, 1, gen_random_uuid(), now(), now(), 2, 0)",
                     (stored["plain"],))  # fmt: skip
    command.upgrade(config, "head")
    with psycopg.connect(dsn) as conn:
        layouts = dict(conn.execute("SELECT job_id, layout FROM job_inputs").fetchall())
        assert {name: layouts[job] for name, job in stored.items()} == {
            "json": "json", "xlsx": "xlsx", "csv": "csv", "plain": "plain"}  # fmt: skip
        assert conn.execute("SELECT part, claims, rows_scored FROM part_claims").fetchall() == [(0, 1, 2)]
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("UPDATE job_inputs SET layout = 'tsv'")
    command.downgrade(config, "0007")
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT part, rows_scored FROM job_chunks").fetchall() == [(0, 2)]


def test_upgrade_moves_a_cases_confirmed_diagnosis_to_the_row_it_was_opened_from(empty_db: tuple[str, Config]) -> None:
    dsn, config = empty_db
    command.upgrade(config, "0024")
    confirm = (
        "INSERT INTO confirmed_diagnoses (job_id, row_number, diagnosis, basis, trained_on, recorded_by, recorded_at) "
        "VALUES (%s, %s, %s, 'histology', false, %s, now() - %s * interval '1 minute')"
    )
    with psycopg.connect(dsn) as conn:
        file = uuid.uuid4()
        conn.execute(JOB, (file, 3, 3))
        conn.execute(confirm, (file, 3, "B", "lab@row", 0))

        def case(row: int, diagnosis: str, by: str, minutes_ago: int) -> uuid.UUID:
            job = uuid.uuid4()
            conn.execute(JOB, (job, 1, 1))
            conn.execute("UPDATE jobs SET source_job_id = %s, source_row = %s WHERE id = %s", (file, row, job))
            conn.execute(confirm, (job, 1, diagnosis, by, minutes_ago))
            return job

        older, newer = case(1, "M", "older@case", 5), case(1, "B", "newer@case", 1)  # two people opened row 1
        own_row = case(3, "M", "differs@case", 1)  # row 3 has its own confirmed diagnosis
    command.upgrade(config, "head")
    with psycopg.connect(dsn) as conn:
        kept = {(job, row): (d, by) for job, row, d, by in conn.execute(
            "SELECT job_id, row_number, diagnosis, recorded_by FROM confirmed_diagnoses")}  # fmt: skip
    assert kept == {
        (file, 1): ("B", "newer@case"),  # the latest of the two moved to its row
        (older, 1): ("M", "older@case"),  # the others stay where they were, unchanged
        (file, 3): ("B", "lab@row"),
        (own_row, 1): ("M", "differs@case"),
    }
    assert newer not in {job for job, _ in kept}
