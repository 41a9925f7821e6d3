"""The migrations on real databases: what an upgrade does to rows already stored, and that head matches the models."""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import closing
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

from shared.schema import Base
from tests.conftest import alembic_config

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


def test_the_embedded_database_upgrades_and_downgrades_with_its_rows(tmp_path: Path) -> None:
    """`make run` keeps its data in SQLite, where Alembic rebuilds a table to change its keys."""
    path = tmp_path / "cytoscore.db"
    config = alembic_config(f"sqlite:///{path}")
    command.upgrade(config, "0005")
    job = uuid.uuid4().hex  # SQLAlchemy's Uuid on SQLite: 32 hex digits
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(JOB.replace("%s", "?").replace("now()", "CURRENT_TIMESTAMP"), (job, 3, 3))
        conn.execute("INSERT INTO job_inputs (job_id, media_type) VALUES (?, 'text/csv')", (job,))
        conn.executemany("INSERT INTO job_input_parts VALUES (?, ?, ?, ?, x'')", [(job, 0, 1, 2), (job, 1, 3, 1)])
        conn.executemany(
            "INSERT INTO results (job_id, row_number, diagnosis, probability_malignant, model_version) "
            "VALUES (?, ?, 'M', 0.9, 'v')",
            [(job, row) for row in (1, 2, 3)],
        )
    command.upgrade(config, "head")
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT row_number, part FROM results ORDER BY row_number").fetchall() == [
            (1, 0), (2, 0), (3, 1)
        ]  # fmt: skip
        conn.execute("PRAGMA foreign_keys = ON")  # as shared.db sets it on every connection
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            conn.execute(
                "INSERT INTO results (job_id, row_number, diagnosis, probability_malignant, model_version, part) "
                "VALUES (?, 4, 'B', 0.1, 'v', 2)",
                (job,),
            )
    command.downgrade(config, "0005")
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT count(*) FROM results").fetchone() == (3,)
        assert "part" not in {row[1] for row in conn.execute("PRAGMA table_info(results)")}
