"""Idempotent bulk writes of results: a repeated chunk never duplicates or half-writes a row."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from shared.schema import Result

COLUMNS = (
    "job_id",
    "row_number",
    "case_id",
    "diagnosis",
    "probability_malignant",
    "model_version",
    "supplied_diagnosis",
    "out_of_range",
    "warning",
    "error",
    "part",
)
_COLS = ", ".join(COLUMNS)


def write_results(session: Session, rows: Sequence[tuple[Any, ...]], *, fresh: bool = False) -> None:
    """Insert result rows (tuples in COLUMNS order); rows already stored for (job_id, row_number) are kept.

    `fresh`: the caller knows none of these rows can be stored yet (a part written with its done mark), so
    they are copied straight into the table; a row that was stored after all fails the transaction.
    """
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        conn = connection.connection.driver_connection
        if fresh:
            with conn.cursor() as cur, cur.copy(f"COPY results ({_COLS}) FROM STDIN") as copy:  # type: ignore[union-attr]
                for row in rows:
                    copy.write_row(row)
            return
        _copy_postgres(conn, rows)
    else:
        stmt = sqlite_insert(Result).on_conflict_do_nothing(index_elements=["job_id", "row_number"])
        session.execute(stmt, [dict(zip(COLUMNS, row, strict=True)) for row in rows])


def _copy_postgres(conn: Any, rows: Sequence[tuple[Any, ...]]) -> None:
    # COPY cannot skip conflicts, so it fills a per-connection staging table and one INSERT moves the rows over.
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS results_staging (LIKE results INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        with cur.copy(f"COPY results_staging ({_COLS}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cur.execute(
            f"INSERT INTO results ({_COLS}) SELECT {_COLS} FROM results_staging "  # noqa: S608 - constant names
            "ON CONFLICT (job_id, row_number) DO NOTHING"
        )
        cur.execute("DELETE FROM results_staging")
