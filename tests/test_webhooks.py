"""Webhooks: a finished job is POSTed, signed, to its owner's URLs by the real worker, retried after a failure,
never redirected, and only to URLs that pass the server-side request forgery check. The receivers listen on
loopback, which the tests' settings allow (conftest.WEBHOOKS)."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest

from shared.features import FEATURES
from shared.settings import ROOT, Settings
from shared.webhooks import Target, UrlRefused, backoff, check_url, signature
from testkit.support import RF4, make_person, wdbc
from tests.support import csrf, queued_case, sign_in


class Receiver:
    """An HTTP server on loopback that records each request and answers with the next of `answers` (the last
    one again once they run out): a status code, or (302, location)."""

    def __init__(self, answers: list[int | tuple[int, str]]) -> None:
        self.answers = list(answers)
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received.append((dict(self.headers.items()), body))
                answer = receiver.answers.pop(0) if len(receiver.answers) > 1 else receiver.answers[0]
                code, location = answer if isinstance(answer, tuple) else (answer, None)
                self.send_response(code)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def people(people, service_env):  # type: ignore[no-untyped-def]
    """The session's people, with a lab account of this module's own: a job another test left to the session's
    worker (or its reconciler) can then never finish mid-test and call these hooks."""
    return {**people, "lab": make_person(service_env, "lab")}


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(*answers: int | tuple[int, str]) -> Receiver:
        made.append(Receiver(list(answers) or [200]))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture
def hooks(client):  # type: ignore[no-untyped-def]
    """Register a webhook for the lab account; every one is deleted after the test, so no other test's job calls it."""
    made: list[int] = []

    def register(url: str) -> dict[str, Any]:
        response = client.post("/api/v1/webhooks", json={"url": url})
        assert response.status_code == 201, response.get_json()
        made.append(response.get_json()["id"])
        return response.get_json()  # type: ignore[no-any-return]

    yield register
    for hook_id in made:
        client.delete(f"/api/v1/webhooks/{hook_id}")


def _case(i: int) -> dict[str, Any]:
    X, _ = wdbc()
    return {"case_id": f"hook-{i}", **{f: float(X[i, FEATURES.index(f)]) for f in RF4}}


def _finish_a_job(client, i: int = 1) -> str:  # type: ignore[no-untyped-def]
    job = client.post("/api/v1/jobs?wait=30", json={"cases": [_case(i)]}).get_json()
    assert job["status"] == "succeeded", job
    return str(job["id"])


def _until(what: Callable[[], Any], timeout: float = 60, message: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {message}")


def _deliveries(client, hook_id: int) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    response = client.get(f"/api/v1/webhooks/{hook_id}/deliveries")
    assert response.status_code == 200
    return response.get_json()["deliveries"]  # type: ignore[no-any-return]


def docs_verify() -> Callable[[str, bytes, str], bool]:
    """The signature check exactly as docs/api.md prints it."""
    section = (ROOT / "docs" / "api.md").read_text(encoding="utf-8").split("\n## Webhooks\n", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code, "docs/api.md's Webhooks section has no Python snippet"
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), "docs/api.md", "exec"), namespace)
    return namespace["verify"]  # type: ignore[no-any-return]


def test_a_finished_job_is_posted_once_signed_and_the_documented_check_verifies_it(client, hooks, receiver):
    r = receiver(200)
    hook = hooks(r.url)
    assert hook["secret"].startswith("whsec_") and hook["url"] == r.url
    listed = client.get("/api/v1/webhooks").get_json()["webhooks"]
    assert [h["id"] for h in listed if h["id"] == hook["id"]] == [hook["id"]]
    assert all("secret" not in h for h in listed)  # shown once, in the answer to POST

    job_id = _finish_a_job(client)
    _until(lambda: r.received, message="no delivery reached the receiver")
    headers, body = r.received[0]
    sent = json.loads(body)
    assert sent["event"] == "job.finished" and sent["job"]["id"] == job_id and sent["job"]["status"] == "succeeded"
    assert sent["job"]["rows_scored"] == 1 and sent["job"]["model"]["sha256"]
    assert "hook-1" not in body.decode() and str(_case(1)[RF4[0]]) not in body.decode()  # ids and counts only
    assert headers["Cytoscore-Event"] == "job.finished" and headers["Cytoscore-Delivery"] == str(sent["delivery"])

    verify = docs_verify()
    assert verify(hook["secret"], body, headers["Cytoscore-Signature"])
    assert not verify(hook["secret"], body.replace(b"succeeded", b"failed"), headers["Cytoscore-Signature"])
    assert not verify("whsec_another", body, headers["Cytoscore-Signature"])
    stale = signature(hook["secret"], body, int(time.time()) - 3600)
    assert not verify(hook["secret"], body, stale)

    log = _until(lambda: [d for d in _deliveries(client, hook["id"]) if d["status"] == "delivered"])
    assert [(d["job_id"], d["attempts"], d["last_status_code"], d["last_error"]) for d in log] == [
        (job_id, 1, 200, None)
    ]
    time.sleep(5)  # two more reconciler rounds: nothing is sent again
    assert len(r.received) == 1


def test_a_receiver_that_fails_once_gets_a_retry_and_the_delivery_ends_delivered(client, hooks, receiver):
    r = receiver(500, 200)
    hook = hooks(r.url)
    job_id = _finish_a_job(client, 2)
    log = _until(lambda: [d for d in _deliveries(client, hook["id"]) if d["status"] == "delivered"], timeout=90)
    assert [(d["job_id"], d["attempts"], d["last_status_code"]) for d in log] == [(job_id, 2, 200)]
    assert len(r.received) == 2
    first, second = r.received
    assert first[0]["Cytoscore-Delivery"] == second[0]["Cytoscore-Delivery"]  # the same delivery, tried again
    assert first[1] == second[1]


def test_a_redirect_is_not_followed(client, hooks, receiver):
    elsewhere = receiver(200)
    r = receiver((302, elsewhere.url))
    hook = hooks(r.url)
    _finish_a_job(client, 3)
    tried = _until(lambda: [d for d in _deliveries(client, hook["id"]) if d["attempts"] >= 1 and d["last_error"]])
    assert tried[0]["last_status_code"] == 302 and "redirects are not followed" in tried[0]["last_error"]
    assert tried[0]["status"] == "pending" and tried[0]["next_attempt_at"]  # a failed attempt, to be tried again
    assert r.received and not elsewhere.received


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://example.org/hook", "http is accepted only for hosts an admin allowed"),
        ("http://localhost:8080/hook", "http is accepted only"),
        ("https://localhost/hook", "loopback"),
        ("https://127.0.0.2/hook", "loopback"),
        ("https://[::1]/hook", "loopback"),
        ("https://[::ffff:127.0.0.1]/hook", "loopback"),
        ("https://10.1.2.3/hook", "private"),
        ("https://192.168.1.10/hook", "private"),
        ("https://172.16.0.1/hook", "private"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://[fe80::1]/hook", "link-local"),
        ("https://0.0.0.0/hook", "unspecified"),
        ("https://224.0.0.1/hook", "multicast"),
        ("https://100.64.0.1/hook", "not public"),
        ("ftp://example.org/hook", "must start with https://"),
        ("https://user:password@example.org/hook", "user name or password"),
        ("https://no-such-host.invalid/hook", "cannot be resolved"),
    ],
)
def test_a_url_that_could_reach_inside_is_refused_at_registration(client, url, reason):
    response = client.post("/api/v1/webhooks", json={"url": url})
    assert response.status_code == 422
    assert reason in response.get_json()["error"]
    assert all(h["url"] != url for h in client.get("/api/v1/webhooks").get_json()["webhooks"])


def test_an_allowed_host_may_be_http_on_loopback_but_only_as_written(client, hooks):
    assert hooks("http://127.0.0.1:9/hook")["url"] == "http://127.0.0.1:9/hook"
    refused = client.post("/api/v1/webhooks", json={"url": "http://127.0.0.1.nip.io:9/hook"})
    assert refused.status_code == 422


def test_a_delivery_connects_to_the_address_it_checked() -> None:
    assert check_url("https://93.184.215.14:8443/in?x=1", frozenset()) == Target(
        "https://93.184.215.14:8443/in?x=1", "93.184.215.14:8443", "93.184.215.14"
    )
    assert check_url("https://[2606:4700::1]/in", frozenset()).url == "https://[2606:4700::1]:443/in"
    assert check_url("http://10.0.0.5/in", frozenset({"10.0.0.5"})) == Target("http://10.0.0.5/in")
    with pytest.raises(UrlRefused, match="private"):
        check_url("https://10.0.0.5/in", frozenset({"10.0.0.6"}))


def test_another_persons_webhooks_and_deliveries_answer_404_and_changes_are_audited(
    client, hooks, receiver, people, app, pg_url
):
    hook = hooks(receiver(200).url)
    other = people["clinician"].client(app)
    assert other.get(f"/api/v1/webhooks/{hook['id']}/deliveries").status_code == 404
    assert other.delete(f"/api/v1/webhooks/{hook['id']}").status_code == 404
    assert all(h["id"] != hook["id"] for h in other.get("/api/v1/webhooks").get_json()["webhooks"])
    assert other.get("/api/v1/webhooks/999999/deliveries").status_code == 404  # the same answer as a missing one
    assert client.get("/api/v1/webhooks/175267854390/deliveries").status_code == 404  # beyond an integer column
    for method in ("patch", "delete"):  # the same for every method of the path, not a 405 for one of them
        answer = getattr(client, method)("/api/v1/webhooks/4553414310121969152", json={"active": False})
        assert answer.status_code == 404

    assert client.delete(f"/api/v1/webhooks/{hook['id']}").status_code == 204
    assert client.get(f"/api/v1/webhooks/{hook['id']}/deliveries").status_code == 404
    with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        trail = conn.execute(
            "SELECT action, actor FROM audit_log WHERE detail LIKE %s ORDER BY id", (f"webhook {hook['id']} %",)
        ).fetchall()
    assert trail == [("webhook.add", people["lab"].email), ("webhook.delete", people["lab"].email)]


def test_a_url_refused_since_its_registration_is_checked_again_and_not_called(client, hooks, receiver, pg_url):
    """As when a name resolves elsewhere after its registration: the check before each send refuses it."""
    r = receiver(200)
    hook = hooks(r.url)
    inside = r.url.replace("127.0.0.1", "127.0.0.2")  # loopback too, but not a host an admin allowed
    with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute("UPDATE webhooks SET url = %s WHERE id = %s", (inside, hook["id"]))
    _finish_a_job(client, 4)
    tried = _until(lambda: [d for d in _deliveries(client, hook["id"]) if d["attempts"] >= 1 and d["last_error"]])
    assert tried[0]["last_error"].startswith("refused: http is accepted only") and tried[0]["last_status_code"] is None
    assert not r.received


def test_a_job_failed_by_any_writer_is_told_too(client, hooks, receiver, people, pg_url):
    """The trigger, not a code path, makes the deliveries: here an operator's UPDATE fails a running job."""
    r = receiver(200)
    hook = hooks(r.url)
    job_id = uuid.uuid4()
    with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute(
            "INSERT INTO jobs (id, kind, status, model_name, model_version, model_sha256, input_sha256, input_format, "
            "rows_total, rows_scored, rows_rejected, attempts, created_at, owner_id) "
            "VALUES (%s, 'upload', 'running', 'm', 'v', 'h', 'h', 'csv', 3, 1, 0, 1, now(), "
            "(SELECT id FROM users WHERE email = %s))",
            (job_id, people["lab"].email),
        )
        conn.execute(
            "UPDATE jobs SET status = 'failed', finished_at = now(), error = 'stopped' WHERE id = %s", (job_id,)
        )
        conn.execute("UPDATE jobs SET rows_total = 3 WHERE id = %s", (job_id,))  # no status change: nothing more
    _until(lambda: r.received, message="no delivery for the failed job")
    sent = json.loads(r.received[0][1])["job"]
    assert (sent["id"], sent["status"], sent["rows_scored"]) == (str(job_id), "failed", 1)
    assert "stopped" not in r.received[0][1].decode()  # the error text stays in cytoscore
    assert [d["job_id"] for d in _deliveries(client, hook["id"])] == [str(job_id)]


def test_a_cancelled_job_is_told_too(client, hooks, receiver, people, pg_url):
    r = receiver(200)
    hooks(r.url)
    job_id = queued_case(pg_url.replace("postgresql+psycopg://", "postgresql://"), people["lab"].email)
    assert client.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 200
    _until(lambda: r.received, message="no delivery for the cancelled job")
    sent = json.loads(r.received[0][1])["job"]
    assert (sent["id"], sent["status"]) == (job_id, "cancelled")


def test_a_failed_delivery_waits_three_times_as_long_each_time() -> None:
    settings = Settings(webhook_backoff=10)
    assert [backoff(settings, n).total_seconds() for n in (1, 2, 3, 4)] == [10, 30, 90, 270]


def test_a_delivery_out_of_attempts_ends_failed_and_is_not_sent_again(client, hooks, receiver, pg_url):
    r = receiver(500)
    hook = hooks(r.url)
    _finish_a_job(client, 6)
    _until(lambda: [d for d in _deliveries(client, hook["id"]) if d["attempts"] >= 1 and d["last_error"]])
    with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        # Five attempts used, as CYTOSCORE_WEBHOOK_MAX_ATTEMPTS (6) minus one, without waiting out their backoff.
        conn.execute(
            "UPDATE webhook_deliveries SET attempts = 5, next_attempt_at = now() WHERE webhook_id = %s", [hook["id"]]
        )
    log = _until(lambda: [d for d in _deliveries(client, hook["id"]) if d["status"] == "failed"])
    assert [(d["attempts"], d["last_status_code"], d["last_error"], d["next_attempt_at"]) for d in log] == [
        (6, 500, "HTTP 500", None)
    ]
    posts = len(r.received)
    time.sleep(5)  # two more reconciler rounds
    assert len(r.received) == posts


def test_the_pages_show_only_your_own_hooks_and_need_a_password_session(client, hooks, receiver, people, app):
    hook = hooks(receiver(200).url)
    mine = sign_in(app, people["lab"].email, people["lab"].password)
    assert hook["url"] in mine.get("/account/webhooks").get_data(as_text=True)
    assert mine.get(f"/account/webhooks/{hook['id']}").status_code == 200
    other = sign_in(app, people["clinician"].email, people["clinician"].password)
    assert hook["url"] not in other.get("/account/webhooks").get_data(as_text=True)
    assert other.get(f"/account/webhooks/{hook['id']}").status_code == 404
    token = csrf(other, "/account/webhooks")
    assert other.post(f"/account/webhooks/{hook['id']}/delete", data={"csrf_token": token}).status_code == 404
    assert client.get("/account/webhooks").status_code == 403  # a bearer token manages hooks through the API only
    assert [h["id"] for h in client.get("/api/v1/webhooks").get_json()["webhooks"]].count(hook["id"]) == 1


def test_a_paused_hook_is_not_told_until_it_is_resumed(client, hooks, receiver):
    r = receiver(200)
    hook = hooks(r.url)
    paused = client.patch(f"/api/v1/webhooks/{hook['id']}", json={"active": False})
    assert paused.status_code == 200 and paused.get_json()["active"] is False
    assert client.patch(f"/api/v1/webhooks/{hook['id']}", json={"active": "no"}).status_code == 400
    _finish_a_job(client, 7)
    assert _deliveries(client, hook["id"]) == []  # none made while paused
    assert client.patch(f"/api/v1/webhooks/{hook['id']}", json={"active": True}).get_json()["active"] is True
    job_id = _finish_a_job(client, 8)
    log = _until(lambda: [d for d in _deliveries(client, hook["id"]) if d["status"] == "delivered"])
    assert [d["job_id"] for d in log] == [job_id] and len(r.received) == 1
