"""A throwaway cytoscore installation for a benchmark: its own database (migrated), queue and folder."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from tests.support import run_cli

ADMIN_URL = os.environ.get("CYTOSCORE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("CYTOSCORE_TEST_REDIS", "redis://127.0.0.1:6379/14")


@contextmanager
def throwaway_stack(**settings: str) -> Iterator[tuple[dict[str, str], str, Path]]:
    """Yield (environment for `cytoscore` commands, libpq DSN of the database, a scratch folder)."""
    name = f"cytoscore_bench_{uuid.uuid4().hex[:8]}"
    dsn = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            with tempfile.TemporaryDirectory() as tmp:
                env = {
                    "DATABASE_URL": dsn.replace("postgresql://", "postgresql+psycopg://"),
                    "BROKER_URL": REDIS_URL,
                    "CYTOSCORE_VAR_DIR": tmp,
                    "SECRET_KEY": uuid.uuid4().hex,
                    "CYTOSCORE_QUEUE": f"bench-{uuid.uuid4().hex[:6]}",
                    **settings,
                }
                run_cli(["migrate"], env)
                yield env, dsn, Path(tmp)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
