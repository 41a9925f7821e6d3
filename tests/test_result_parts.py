"""No result outlives the stored part of the input it was read from, on PostgreSQL (migration 0007's triggers).

Each test has a database of its own built by the migrations; the races run on two real connections at once.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from alembic import command
from alembic.config import Config

from tests.support import stored_parts

COPY = "COPY results (job_id, row_number, diagnosis, probability_malignant, model_version, part) FROM STDIN"
PART_ROWS = 1000


@pytest.fixture
def dsn(empty_db: tuple[str, Config]) -> Iterator[str]:
    url, config = empty_db
    command.upgrade(config, "head")
    yield url


def copy_part(conn: psycopg.Connection, job: uuid.UUID, part: int, named: int | None = None) -> None:
    """COPY one part's result rows, as a worker does; `named`: the part the last row says it came from."""
    with conn.cursor() as cur, cur.copy(COPY) as copy:
        for row in range(part * PART_ROWS + 1, (part + 1) * PART_ROWS + 1):
            last = row == (part + 1) * PART_ROWS
            copy.write_row((job, row, "M", 0.9, "v", named if last and named is not None else part))


def count(dsn: str, job: uuid.UUID, part: int | None = None) -> int:
    with psycopg.connect(dsn) as conn:
        query = "SELECT count(*) FROM results WHERE job_id = %s" + ("" if part is None else " AND part = %s")
        row = conn.execute(query, (job,) if part is None else (job, part)).fetchone()
    assert row is not None
    return int(row[0])


def test_a_statement_naming_a_part_that_is_not_stored_is_refused_whole(dsn: str) -> None:
    job = stored_parts(dsn, 2, PART_ROWS)
    with psycopg.connect(dsn) as conn:
        with pytest.raises(psycopg.errors.ForeignKeyViolation) as refused:
            copy_part(conn, job, 1, named=5)  # 999 rows name part 1, which is stored; the last names part 5
        assert refused.value.diag.message_detail == (
            f'Key (job_id, part)=({job}, 5) is not present in table "job_input_parts".'
        )
        conn.rollback()
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute(
                "INSERT INTO results (job_id, row_number, diagnosis, probability_malignant, model_version, part) "
                "VALUES (%s, 1, 'B', 0.1, 'v', 0)",
                (uuid.uuid4(),),  # no such job at all
            )
    assert count(dsn, job) == 0  # nothing of the refused statements was kept

    with psycopg.connect(dsn) as conn:
        copy_part(conn, job, 0)
        copy_part(conn, job, 1)
    assert (count(dsn, job, 0), count(dsn, job, 1)) == (PART_ROWS, PART_ROWS)


def test_an_update_cannot_move_results_to_a_part_that_is_not_stored(dsn: str) -> None:
    job = stored_parts(dsn, 2, PART_ROWS)
    with psycopg.connect(dsn) as conn:
        copy_part(conn, job, 0)
        conn.commit()
        conn.execute("UPDATE results SET part = 1 WHERE job_id = %s AND row_number = 1", (job,))  # part 1 is stored
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute("UPDATE results SET part = 2 WHERE job_id = %s AND row_number = 2", (job,))


def test_deleting_a_part_or_its_job_deletes_the_results_read_from_it(dsn: str) -> None:
    job, other = stored_parts(dsn, 3, PART_ROWS), stored_parts(dsn, 1, PART_ROWS)
    with psycopg.connect(dsn) as conn:
        for part in range(3):
            copy_part(conn, job, part)
        copy_part(conn, other, 0)
    with psycopg.connect(dsn) as conn:
        conn.execute("DELETE FROM job_input_parts WHERE job_id = %s AND part = 1", (job,))
    assert [count(dsn, job, part) for part in range(3)] == [PART_ROWS, 0, PART_ROWS]
    with psycopg.connect(dsn) as conn:
        conn.execute("DELETE FROM jobs WHERE id = %s", (job,))  # through the job's input to its parts
    assert count(dsn, job) == 0
    assert count(dsn, other) == PART_ROWS  # another job's results stay


def test_the_key_of_a_part_that_results_name_cannot_change(dsn: str) -> None:
    job = stored_parts(dsn, 2, PART_ROWS)
    with psycopg.connect(dsn) as conn:
        copy_part(conn, job, 0)
        conn.commit()
        with pytest.raises(psycopg.errors.ForeignKeyViolation, match="changes the key of a part that results name"):
            conn.execute("UPDATE job_input_parts SET part = 7 WHERE job_id = %s AND part = 0", (job,))
        conn.rollback()
        conn.execute("UPDATE job_input_parts SET part = 7 WHERE job_id = %s AND part = 1", (job,))  # named by none
        conn.execute("UPDATE job_input_parts SET row_count = 999 WHERE job_id = %s AND part = 0", (job,))


def test_truncating_the_parts_truncates_the_results(dsn: str) -> None:
    job = stored_parts(dsn, 1, PART_ROWS)
    with psycopg.connect(dsn) as conn:
        copy_part(conn, job, 0)
    with psycopg.connect(dsn) as conn:
        conn.execute("TRUNCATE jobs CASCADE")  # the keys reach job_inputs and job_input_parts, the trigger results
    assert count(dsn, job) == 0


def test_a_delete_at_a_stricter_isolation_level_is_refused(dsn: str) -> None:
    job = stored_parts(dsn, 1, PART_ROWS)
    with psycopg.connect(dsn) as conn:
        copy_part(conn, job, 0)
    with psycopg.connect(dsn) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.execute("DELETE FROM job_input_parts WHERE job_id = %s", (uuid.uuid4(),))  # deleting none is no harm
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="only in READ COMMITTED"):
            conn.execute("DELETE FROM job_input_parts WHERE job_id = %s", (job,))
    assert count(dsn, job) == PART_ROWS


def blocked(dsn: str, statement: Callable[[], None]) -> tuple[threading.Thread, list[BaseException]]:
    """Run `statement` in a thread and return once PostgreSQL shows it waiting on a lock."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            statement()
        except BaseException as exc:  # handed to the test, which asserts on it
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    with psycopg.connect(dsn, autocommit=True) as watcher:
        deadline = time.monotonic() + 10
        while watcher.execute(waiting).fetchone() != (1,):
            assert time.monotonic() < deadline, "the second transaction never waited on the first"
            time.sleep(0.02)
    return thread, errors


def test_a_part_deleted_while_a_writer_holds_it_takes_the_writers_rows_once_they_commit(dsn: str) -> None:
    job = stored_parts(dsn, 1, PART_ROWS)
    with psycopg.connect(dsn) as writer, psycopg.connect(dsn) as deleter:
        copy_part(writer, job, 0)  # the part is locked until the writer commits

        def delete() -> None:
            deleter.execute("DELETE FROM job_input_parts WHERE job_id = %s", (job,))
            deleter.commit()

        thread, errors = blocked(dsn, delete)
        writer.commit()
        thread.join(10)
        assert errors == []
    assert count(dsn, job) == 0


def test_a_writer_waiting_on_a_part_being_deleted_is_refused_once_the_delete_commits(dsn: str) -> None:
    job = stored_parts(dsn, 1, PART_ROWS)
    with psycopg.connect(dsn) as writer, psycopg.connect(dsn) as deleter:
        deleter.execute("DELETE FROM job_input_parts WHERE job_id = %s", (job,))

        def write() -> None:
            copy_part(writer, job, 0)
            writer.commit()

        thread, errors = blocked(dsn, write)
        deleter.commit()
        thread.join(10)
        assert [type(error) for error in errors] == [psycopg.errors.ForeignKeyViolation]
    assert count(dsn, job) == 0


def test_the_downgrade_puts_the_foreign_key_back(empty_db: tuple[str, Config]) -> None:
    url, config = empty_db
    command.upgrade(config, "head")
    job = stored_parts(url, 1, PART_ROWS)
    with psycopg.connect(url) as conn:
        copy_part(conn, job, 0)
    command.downgrade(config, "0006")
    with psycopg.connect(url) as conn:
        triggers = conn.execute("SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal").fetchone()
        assert triggers is not None and triggers[0] == 1  # the job-finished notification of migration 0002
        with pytest.raises(psycopg.errors.ForeignKeyViolation, match="fk_results_job_id_job_input_parts"):
            conn.execute(
                "INSERT INTO results (job_id, row_number, diagnosis, probability_malignant, model_version, part) "
                "VALUES (%s, %s, 'B', 0.1, 'v', 3)",
                (job, PART_ROWS + 1),
            )
    assert count(url, job) == PART_ROWS
