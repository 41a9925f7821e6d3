"""Helpers only the tests use: waiting on a job through the test client, uploads, stored parts."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import psycopg

from testkit.support import multipart


def wait_for_job(client: Any, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/v1/jobs/{job_id}").get_json()
        if body["status"] not in ("queued", "running"):
            return body  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {body['status']} after {timeout} s: {body}")


def post_upload(client: Any, content: bytes, filename: str = "cases.csv", path: str = "/api/v1/jobs", **fields: str):  # type: ignore[no-untyped-def]
    body, content_type = multipart(fields, content, filename)
    return client.post(path, data=body, content_type=content_type)


STORED_JOB = (
    "INSERT INTO jobs (id, kind, status, model_name, model_version, model_sha256, input_sha256, input_format, "
    "rows_total, rows_scored, rows_rejected, attempts, created_at) "
    "VALUES (%s, 'upload', 'running', 'm', 'v', 'h', 'h', 'csv', 0, 0, 0, 1, now())"
)


def stored_parts(dsn: str, parts: int, part_rows: int) -> uuid.UUID:
    """A running job (written straight into PostgreSQL) whose input is `parts` empty parts of `part_rows` rows."""
    job = uuid.uuid4()
    with psycopg.connect(dsn) as conn:
        conn.execute(STORED_JOB, (job,))
        conn.execute("INSERT INTO job_inputs (job_id, media_type, layout) VALUES (%s, 'text/csv', 'plain')", (job,))
        conn.execute(
            "INSERT INTO job_input_parts (job_id, part, first_row, row_count, content) "
            "SELECT %s, part, part * %s + 1, %s, '' FROM generate_series(0, %s - 1) AS part",
            (job, part_rows, part_rows, parts),
        )
    return job


def queued_case(dsn: str, owner_email: str) -> str:
    """A single case stored as the web stores one, its id sent a moment ago: it waits, queued, as behind a busy
    queue (the reconciler sends it again only after its resend delay)."""
    job = str(uuid.uuid4())
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "INSERT INTO jobs (id, kind, status, model_name, model_version, model_sha256, input_sha256, input_format, "
            "rows_total, rows_scored, rows_rejected, attempts, created_at, enqueued_at, owner_id) "
            "SELECT %s, 'form', 'queued', 'wdbc-rf4', '1', 'h', 'h', 'json', 1, 0, 0, 0, now(), now(), id "
            "FROM users WHERE email = %s",
            (job, owner_email),
        )
    return job


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf(client: Any, path: str = "/account") -> str:
    """The CSRF token of the form on the page at `path`, as the browser would send it back."""
    match = CSRF.search(client.get(path).get_data(as_text=True))
    assert match, f"no form with a CSRF token on {path}"
    return match.group(1)


def sign_in(app: Any, email: str, password: str, address: str = "127.0.0.1") -> Any:
    """A test client signed in through the login form, as a browser from `address`."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    response = client.post("/login", data={"email": email, "password": password, "csrf_token": csrf(client, "/login")})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return client


def session_cookie(client: Any) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None, "not signed in"
    return cookie.value  # type: ignore[no-any-return]


def with_cookie(app: Any, value: str) -> Any:
    """Another browser, holding a copy of someone's session cookie."""
    client = app.test_client()
    client.set_cookie("session", value)
    return client


def without_diagnosis(content: bytes) -> bytes:
    """The file as a lab sends it before the histology is back: no diagnosis column."""
    lines = [line.split(",") for line in content.decode().splitlines()]
    return ("\n".join(",".join(cells[:1] + cells[2:]) for cells in lines) + "\n").encode()
