"""Fixtures: a PostgreSQL database built by the migrations, real Redis, a real worker process, the Flask app.

Services are never faked and never skipped: if PostgreSQL or Redis cannot be reached, the tests fail.
"""

from __future__ import annotations

import gc
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from alembic.config import Config
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from shared.db import make_engine, make_sessionmaker
from shared.settings import ROOT, Settings
from testkit.reliability import wait_until
from testkit.support import (
    WORKER_NODES,
    Person,
    ServiceProcess,
    forget_queues,
    free_port,
    fresh_queue,
    make_person,
    run_cli,
)
from tests.support import wait_for_job

ADMIN_URL = os.environ.get("CYTOSCORE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("CYTOSCORE_TEST_REDIS", "redis://127.0.0.1:6379/15")

# Short enough that the reliability tests finish quickly, long enough that a busy 2-core machine keeps up.
FAST_RECONCILE = {
    "CYTOSCORE_RECONCILE_INTERVAL": "2",
    "CYTOSCORE_QUEUED_RESEND_AFTER": "10",
    "CYTOSCORE_HEARTBEAT_STALE_AFTER": "20",
}
# Webhooks: the tests' receivers listen on loopback, which an admin allows here; a failed delivery is retried soon.
WEBHOOKS = {"CYTOSCORE_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1", "CYTOSCORE_WEBHOOK_BACKOFF": "1"}


def alembic_config(url: str) -> Config:
    """The project's Alembic configuration, pointed at `url`, leaving pytest's logging alone."""
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", url)
    config.attributes["configure_logging"] = False
    return config


@pytest.fixture
def empty_db() -> Iterator[tuple[str, Config]]:
    """A new, empty database of its own (dropped afterwards) and an Alembic configuration pointing at it."""
    name = f"cytoscore_migrations_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        dsn = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        try:
            yield dsn, alembic_config(dsn.replace("postgresql://", "postgresql+psycopg://"))
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh database for this run, built by `cytoscore migrate`, dropped afterwards."""
    name = f"cytoscore_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required at {ADMIN_URL}: {exc}")
    admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    try:
        run_cli(["migrate"], {"DATABASE_URL": url})
        yield url
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """Redis for the run; at its end every key naming one of the run's queues is deleted (`fresh_queue`)."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()  # no FLUSHDB: each run has its own queue name, and another run may be using this db
    except redis.RedisError as exc:
        pytest.fail(f"Redis is required at {REDIS_URL}: {exc}")
    finally:
        client.close()
    yield REDIS_URL
    forget_queues(REDIS_URL)


@pytest.fixture(scope="session")
def service_env(pg_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {
        "DATABASE_URL": pg_url,
        "BROKER_URL": redis_url,
        "CYTOSCORE_VAR_DIR": str(tmp_path_factory.mktemp("var")),
        "CYTOSCORE_QUEUE": fresh_queue(),  # a stray worker of another run never steals
        "SECRET_KEY": uuid.uuid4().hex,
        "CYTOSCORE_SECURE_COOKIES": "false",  # the tests speak plain HTTP to localhost
        **FAST_RECONCILE,
        **WEBHOOKS,
    }


@pytest.fixture(scope="session")
def settings(service_env: dict[str, str]) -> Settings:
    return Settings(database_url=service_env["DATABASE_URL"], broker_url=service_env["BROKER_URL"],
                    var_dir=Path(service_env["CYTOSCORE_VAR_DIR"]), queue=service_env["CYTOSCORE_QUEUE"],
                    secret_key=service_env["SECRET_KEY"], secure_cookies=False,
                    webhook_allowed_hosts=WEBHOOKS["CYTOSCORE_WEBHOOK_ALLOWED_HOSTS"])  # fmt: skip


@pytest.fixture
def sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """Sessions on the run's database, for a test that reads or writes rows directly."""
    engine = make_engine(settings.database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture(scope="session")
def worker(service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One real `cytoscore worker` process for the session."""
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    proc = ServiceProcess(["worker"], service_env, log)
    proc.wait_for_log("ready.", timeout=60, count=WORKER_NODES)
    yield proc
    proc.stop()


class WholeBodyClient(FlaskClient):
    """Reads each answer's body whole and closes it, as a server does, unless a test asks for `buffered=False`.
    Werkzeug's client reads only the first piece of a streamed answer: the rest, with its request's context and
    database connection, waited for the garbage collector, which could drop the connection still open in some
    later test (after an `app_with` app's pool was closed), where psycopg's warning failed that test."""

    def open(self, *args: Any, buffered: bool = True, **kwargs: Any) -> Any:
        return super().open(*args, buffered=buffered, **kwargs)


@pytest.fixture(scope="session")
def app(settings: Settings):  # type: ignore[no-untyped-def]
    from api import create_app

    flask_app = create_app(settings)
    flask_app.config.update(TESTING=True)
    flask_app.test_client_class = WholeBodyClient
    yield flask_app
    gc.collect()
    flask_app.extensions["cytoscore.engine"].dispose()


@pytest.fixture(autouse=True)
def _connections_given_back(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every request to the web gives its database connection back when it ends, a streamed answer's included;
    one held until the garbage collector frees its session would sit idle in a transaction."""
    if "app" not in request.fixturenames:
        yield
        return
    pool = request.getfixturevalue("app").extensions["cytoscore.engine"].pool
    held = pool.checkedout()
    yield
    _given_back(pool, held)


def _given_back(pool: Any, held: int) -> None:
    """The pool has no more than `held` connections out, allowing a few seconds for one taken for a moment (a job
    listener reconnecting takes one from the pool, connects and then keeps it as its own)."""
    wait_until(lambda: pool.checkedout() <= held, 10, "the web's pool to have its connections back after the test")


@pytest.fixture
def app_with(settings: Settings):  # type: ignore[no-untyped-def]
    """`app_with(time_zone="Europe/Berlin")`: the web of a site configured so, closed after the test."""
    from api import create_app

    made: list[Any] = []

    def make(**changes: Any) -> Any:
        flask_app = create_app(settings.model_copy(update=changes))
        flask_app.config.update(TESTING=True)
        flask_app.test_client_class = WholeBodyClient
        made.append(flask_app)
        return flask_app

    yield make
    try:
        for flask_app in made:
            _given_back(flask_app.extensions["cytoscore.engine"].pool, 0)
    finally:
        gc.collect()  # what the test left unclosed gives its connection back now, for `dispose` to close
        for flask_app in made:
            flask_app.extensions["cytoscore.engine"].dispose()


@pytest.fixture
def idle_app(app_with):  # type: ignore[no-untyped-def]
    """The web with a queue no worker reads: the jobs it makes stay queued until a test sends them on."""
    return app_with(queue=fresh_queue("nobody-reads"))


@pytest.fixture
def parts_app(app_with):  # type: ignore[no-untyped-def]
    """The web with every upload stored in parts of 64 kB."""
    return app_with(parallel_min_bytes=1, part_bytes=64 * 1024)


@pytest.fixture(scope="session")
def people(service_env: dict[str, str]) -> dict[str, Person]:
    """One account per role, made with the real CLI, each with an API token."""
    return {role: make_person(service_env, role) for role in ("clinician", "lab", "admin")}


@pytest.fixture
def client(app, worker, people):  # type: ignore[no-untyped-def]
    """A lab account's API client (bearer token): uploads and single cases, its own jobs."""
    return people["lab"].client(app)


@pytest.fixture
def finished(client):  # type: ignore[no-untyped-def]
    """Wait for a job to reach a terminal status and return its JSON."""
    return lambda job_id, timeout=120: wait_for_job(client, job_id, timeout)


__all__ = ["free_port"]
