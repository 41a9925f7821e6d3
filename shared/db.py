"""Engines and sessions. Callers own the unit of work: data functions take a session and never commit."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from shared.settings import Settings


def database_url(settings: Settings) -> str:
    """DATABASE_URL, or the embedded PostgreSQL's under `var_dir` when none is set (started if it is not running)."""
    if settings.database_url:
        return settings.database_url
    from shared.embedded import embedded_database_url

    return embedded_database_url(settings.var_dir)


WORKER_SESSIONS = "cytoscore-worker"  # the application_name of a worker's sessions (`shared.jobs.reconciler`)


def make_engine(url: str, *, stalled_after: float | None = None, **kwargs: Any) -> Engine:
    """An engine whose connections give up connecting after 5 s. With `stalled_after` (seconds), a worker's: its
    sessions are named `WORKER_SESSIONS`, and the server ends one left that long idle inside a transaction, which
    releases the transaction's locks (the reconciler ends one paused in the middle of a COPY)."""
    connect_args: dict[str, Any] = {"connect_timeout": 5}
    if stalled_after is not None:
        connect_args["application_name"] = WORKER_SESSIONS
        connect_args["options"] = f"-c idle_in_transaction_session_timeout={round(stalled_after * 1000)}"
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args, **kwargs)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
