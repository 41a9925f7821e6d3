"""Long polling: answer `?wait=` as soon as the job finishes, woken by PostgreSQL LISTEN/NOTIFY."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from flask import current_app

CHANNEL = "cytoscore_job_finished"  # the trigger in migration 0002 notifies here
MAX_WAIT = 60.0
_SQLITE_TICK = 0.2


def wait_until_finished(job_id: uuid.UUID, seconds: float, finished: Callable[[], bool]) -> None:
    """Return once `finished()` is true or `seconds` have passed.

    On PostgreSQL this LISTENs before the first check, so a finish between the check and the wait still wakes it.
    The embedded SQLite mode has no notifications and checks every 0.2 s instead.
    """
    deadline = time.monotonic() + min(max(seconds, 0.0), MAX_WAIT)
    engine = current_app.extensions["cytoscore.engine"]
    if engine.dialect.name != "postgresql":
        while not finished() and time.monotonic() < deadline:
            time.sleep(_SQLITE_TICK)
        return
    raw = engine.raw_connection()  # a pooled connection: no new connection per long poll
    conn: psycopg.Connection[Any] = raw.driver_connection
    try:
        raw.rollback()
        conn.autocommit = True  # notifications arrive only outside a transaction
        conn.execute(f"LISTEN {CHANNEL}")
        if finished():
            return
        while (left := deadline - time.monotonic()) > 0:
            for note in conn.notifies(timeout=left):
                if note.payload == str(job_id):
                    return
    finally:
        conn.execute("UNLISTEN *")
        conn.autocommit = False
        raw.close()  # back to the pool
