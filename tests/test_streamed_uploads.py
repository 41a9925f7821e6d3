"""An upload is read as its body arrives: checked and stored in parts before its last byte is in, never spooled to
disk first; a file that turns out not to be plainly written is still checked whole; the form's file comes last."""

from __future__ import annotations

import hashlib
import http.client
import time
import uuid

import psycopg
import requests

from testkit.support import ServiceProcess, free_port, jittered_csv, multipart
from tests.support import csrf, post_upload, sign_in, wait_for_job


def _dsn(pg_url: str) -> str:
    return pg_url.replace("postgresql+psycopg://", "postgresql://")


def _jobs_named(pg_url: str, filename: str) -> list[tuple[uuid.UUID, str, bool, int]]:
    """Every job of this file name: id, status, whether its upload is still arriving, and its stored parts."""
    with psycopg.connect(_dsn(pg_url)) as conn:
        return conn.execute(  # type: ignore[return-value]
            "SELECT id, status, receiving_at IS NOT NULL, "
            "(SELECT count(*) FROM job_input_parts p WHERE p.job_id = j.id) FROM jobs j WHERE input_filename = %s",
            (filename,),
        ).fetchall()


def test_a_large_upload_is_checked_and_stored_while_its_body_still_arrives(service_env, worker, people, pg_url,
                                                                           tmp_path):  # fmt: skip
    port = free_port()
    env = {**service_env, "PORT": str(port), "CYTOSCORE_WEB_WORKERS": "1", "CYTOSCORE_PARALLEL_MIN_BYTES": "1",
           "CYTOSCORE_PART_BYTES": str(1 << 20)}  # fmt: skip
    web = ServiceProcess(["web"], env, tmp_path / "web.log")
    try:
        content = jittered_csv(150_000, seed=21)  # 12.6 MB, checked 8 MB at a time, stored in parts of 1 MB
        filename = f"arriving-{uuid.uuid4().hex[:8]}.csv"
        body, content_type = multipart({"model": "wdbc-rf4"}, content, filename)
        for _ in range(300):
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                connection.connect()
                break
            except OSError:
                time.sleep(0.2)
        connection.putrequest("POST", "/api/v1/jobs")
        connection.putheader("Authorization", f"Bearer {people['lab'].token}")
        connection.putheader("Content-Type", content_type)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders()
        held_back = 2 << 20
        connection.send(body[:-held_back])

        # With the last 2 MB not yet sent, the job is in PostgreSQL with its first parts, and workers score them.
        deadline = time.monotonic() + 60
        while not (found := _jobs_named(pg_url, filename)) or found[0][3] < 2:
            assert time.monotonic() < deadline, f"no parts stored while the body arrived: {found}"
            time.sleep(0.1)
        ((job_id, _, receiving, _),) = found
        assert receiving

        connection.send(body[-held_back:])
        answer = connection.getresponse()
        assert answer.status == 202, answer.read()[:500]
        connection.close()

        # A file refused before its body is read gets its answer, not a connection closed while it still sends.
        refused = requests.post(f"http://127.0.0.1:{port}/api/v1/jobs", data={"model": "no-such-model"},
                                files={"file": (filename, content)},
                                headers={"Authorization": f"Bearer {people['lab'].token}"}, timeout=120)  # fmt: skip
        assert refused.status_code == 422 and "no-such-model" in refused.json()["problems"][0], refused.text[:500]
    finally:
        web.stop()
    deadline = time.monotonic() + 180
    while (state := _jobs_named(pg_url, filename)[0])[1] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, state
        time.sleep(0.2)
    with psycopg.connect(_dsn(pg_url)) as conn:
        stored = conn.execute("SELECT string_agg(content, '' ORDER BY part), count(*) FROM job_input_parts "
                              "WHERE job_id = %s", (job_id,)).fetchone()  # fmt: skip
        rows = conn.execute("SELECT count(*), min(row_number), max(row_number) FROM results WHERE job_id = %s",
                            (job_id,)).fetchone()  # fmt: skip
    assert state[1] == "succeeded" and not state[2]
    assert stored is not None and bytes(stored[0]) == content and stored[1] > 2  # the file, byte for byte, in parts
    assert rows == (150_000, 1, 150_000)


def test_a_file_found_not_plain_after_its_first_parts_were_stored_is_checked_whole(parts_app, app, worker, people,
                                                                                   pg_url):  # fmt: skip
    lines = jittered_csv(110_000, seed=22).split(b"\n")  # 9.2 MB: the quote comes after 8 MB were checked, stored
    lines[109_990] = b'"J 109990",' + lines[109_990].split(b",", 1)[1]  # quoted: a CSV, but not a plain one
    content = b"\n".join(lines)
    filename = f"quoted-{uuid.uuid4().hex[:8]}.csv"
    answer = post_upload(people["lab"].client(parts_app), content, filename)
    assert answer.status_code == 202, answer.get_json()
    done = wait_for_job(people["lab"].client(app), answer.get_json()["id"])
    assert done["status"] == "succeeded"
    assert (done["rows_total"], done["rows_scored"] + done["rows_rejected"]) == (110_000, 110_000)
    assert done["input"]["sha256"] == hashlib.sha256(content).hexdigest()
    (only,) = _jobs_named(pg_url, filename)  # the parts stored before the quote went with their job
    assert only[0] == uuid.UUID(answer.get_json()["id"]) and only[3] == 1  # stored whole
    with psycopg.connect(_dsn(pg_url)) as conn:
        case = conn.execute(
            "SELECT case_id FROM results WHERE job_id = %s AND row_number = 109990", (only[0],)
        ).fetchone()
    assert case == ("J 109990",)


def test_a_form_part_after_the_file_is_refused_and_nothing_is_kept(parts_app, worker, people, pg_url):
    filename = f"file-first-{uuid.uuid4().hex[:8]}.csv"
    body, content_type = multipart({}, jittered_csv(2_000, seed=23), filename)
    boundary = content_type.split("boundary=")[1]
    trailing = f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwdbc-rf4\r\n--{boundary}--\r\n'
    body = body.removesuffix(f"--{boundary}--\r\n".encode()) + trailing.encode()
    answer = people["lab"].client(parts_app).post("/api/v1/jobs", data=body, content_type=content_type)
    assert answer.status_code == 400
    assert "send the file as the form's last field" in answer.get_json()["error"]
    assert _jobs_named(pg_url, filename) == []


def test_a_browser_upload_needs_the_forms_token_before_the_file(app, worker, people, pg_url):
    person = people["lab"]
    browser = sign_in(app, person.email, person.password)
    filename = f"browser-{uuid.uuid4().hex[:8]}.csv"
    content = jittered_csv(50, seed=24)
    body, content_type = multipart({"csrf_token": "forged"}, content, filename)
    assert browser.post("/uploads", data=body, content_type=content_type).status_code == 400
    body, content_type = multipart({}, content, filename)  # no token at all
    assert browser.post("/uploads", data=body, content_type=content_type).status_code == 400
    assert _jobs_named(pg_url, filename) == []

    token = csrf(browser, "/")
    body, content_type = multipart({"csrf_token": token, "model": "wdbc-rf4"}, content, filename)
    assert browser.post("/uploads", data=body, content_type=content_type).status_code == 303
    body, content_type = multipart({}, content, filename)  # the token in the header, as a script may send it
    sent = browser.post("/uploads", data=body, content_type=content_type, headers={"X-CSRFToken": token})
    assert sent.status_code == 303
    assert len(_jobs_named(pg_url, filename)) == 2
