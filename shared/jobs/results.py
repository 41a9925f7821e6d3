"""Result rows written in bulk with COPY: a repeated batch never duplicates or half-writes a row."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

#: A result row's columns in order, each with the type COPY's binary format sends it as: a varchar or json value
#: goes as text, the same bytes (the server checks it as the column's type).
_TYPED = (
    ("job_id", "uuid"),
    ("row_number", "int4"),
    ("case_id", "text"),
    ("diagnosis", "text"),
    ("probability_malignant", "float8"),
    ("model_version", "text"),
    ("supplied_diagnosis", "text"),
    ("out_of_range", "text"),
    ("warning", "text"),
    ("error", "text"),
    ("part", "int4"),
    ("explanation", "text"),
    ("trained_on", "bool"),
)
COLUMNS = tuple(name for name, _ in _TYPED)
_TYPES = [kind for _, kind in _TYPED]
_COLS = ", ".join(COLUMNS)
# Binary: no value is formatted as text on our side, none parsed from text on the server's.
_COPY = f"COPY results ({_COLS}) FROM STDIN (FORMAT binary)"
_STAGING = "CREATE TEMP TABLE IF NOT EXISTS results_staging (LIKE results INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
_COPY_STAGED = f"COPY results_staging ({_COLS}) FROM STDIN (FORMAT binary)"
_MOVE_STAGED = (
    f"INSERT INTO results ({_COLS}) SELECT {_COLS} FROM results_staging "  # noqa: S608 - constant names
    "ON CONFLICT (job_id, row_number) DO NOTHING"
)


def write_results(session: Session, rows: Sequence[tuple[Any, ...]], *, fresh: bool) -> None:
    """Insert result rows (tuples in COLUMNS order) in the session's transaction.

    `fresh`: none of these rows can be stored yet (the first claim of their part, on its first try), so they are
    copied straight into the table. Otherwise a row already stored for (job_id, row_number) is kept: COPY cannot
    skip conflicts, so the rows fill a per-connection staging table and one INSERT moves the new ones over.
    """
    if not rows:
        return
    conn: Any = session.connection().connection.driver_connection
    with conn.cursor() as cur:
        if not fresh:
            cur.execute(_STAGING)
        with cur.copy(_COPY if fresh else _COPY_STAGED) as copy:
            copy.set_types(_TYPES)
            for row in rows:
                copy.write_row(row)
        if not fresh:
            cur.execute(_MOVE_STAGED)
            cur.execute("DELETE FROM results_staging")
