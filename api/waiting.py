"""Long polling: answer `?wait=` as soon as the job finishes, woken by PostgreSQL LISTEN/NOTIFY.

Each web process keeps one connection LISTENing (started on its first wait) and wakes the requests waiting for
the job named in each notification. A waiting request holds no database connection, so many long polls cannot
drain the pool the other requests need.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, cast

import psycopg
from flask import current_app
from sqlalchemy import Engine, event

CHANNEL = "cytoscore_job_finished"  # the trigger in migration 0002 notifies here
MAX_WAIT = 60.0
APPLICATION_NAME = "cytoscore-listener"
_READY_WITHIN = 2.0  # how long a request waits for its process's listener to connect before it polls instead
_KEEPALIVE = 5.0  # with no notification for this long, the listener checks its connection (and whether to stop)
_RECONNECT_PAUSE = 1.0

log = logging.getLogger(__name__)


def wait_until_finished(job_id: uuid.UUID, seconds: float, finished: Callable[[], bool]) -> bool:
    """Return whether `finished()` came true within `seconds` (at most 60); `finished()` is the last thing called.

    The request is registered before the first check, so a finish between the check and the wait still wakes it.
    """
    deadline = time.monotonic() + min(max(seconds, 0.0), MAX_WAIT)
    engine: Engine = current_app.extensions["cytoscore.engine"]
    return _listener(engine).wait(str(job_id), deadline, finished)


class Listener:
    """One LISTEN connection per process, in a thread of its own, waking each waiter by job id."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._waiters: dict[str, set[threading.Event]] = {}
        self._listening = threading.Event()
        self._stop = threading.Event()
        event.listen(engine, "engine_disposed", lambda _engine: self._stop.set())
        threading.Thread(target=self._run, name="cytoscore-listener", daemon=True).start()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def wait(self, job_id: str, deadline: float, finished: Callable[[], bool]) -> bool:
        woken = threading.Event()
        with self._lock:
            self._waiters.setdefault(job_id, set()).add(woken)
        try:
            self._listening.wait(min(_READY_WITHIN, max(deadline - time.monotonic(), 0.0)))
            while not finished():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                # Without a listener (the database is unreachable), check once a second until it is back.
                woken.wait(left if self._listening.is_set() else min(left, 1.0))
                woken.clear()
            return True
        finally:
            with self._lock:
                waiting = self._waiters[job_id]
                waiting.discard(woken)
                if not waiting:
                    del self._waiters[job_id]

    def _wake(self, job_id: str | None = None) -> None:
        """Wake the requests waiting for this job, or every waiting request (after a reconnection)."""
        with self._lock:
            events = [e for key, group in self._waiters.items() if job_id in (None, key) for e in group]
        for woken in events:
            woken.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except Exception as exc:  # the database went away; connect again, and let the waiters check meanwhile
                if not self._stop.is_set():
                    log.warning("job listener: connection lost (%s); reconnecting", type(exc).__name__)
            self._listening.clear()
            self._wake()
            self._stop.wait(_RECONNECT_PAUSE)

    def _listen(self) -> None:
        raw = self._engine.raw_connection()
        conn = cast(psycopg.Connection[Any], raw.driver_connection)
        raw.detach()  # this connection is the listener's for good, not the pool's
        try:
            conn.rollback()
            conn.autocommit = True  # notifications arrive only outside a transaction
            conn.execute(f"SET application_name = '{APPLICATION_NAME}'")  # so an operator can tell it apart
            conn.execute(f"LISTEN {CHANNEL}")
            self._listening.set()
            self._wake()  # a finish missed while not listening: every waiter checks again
            while not self._stop.is_set():
                for note in conn.notifies(timeout=_KEEPALIVE):
                    self._wake(note.payload)
                conn.execute("SELECT 1")  # a quiet connection may be a dead one
        finally:
            conn.close()


_listeners: dict[tuple[int, int], Listener] = {}
_listeners_lock = threading.Lock()


def _listener(engine: Engine) -> Listener:
    """This process's listener for this engine, until the engine is disposed; a forked child starts its own."""
    key = (os.getpid(), id(engine))
    with _listeners_lock:
        if key not in _listeners or _listeners[key].stopped:  # a new engine may reuse a disposed one's id
            _listeners[key] = Listener(engine)
        return _listeners[key]
