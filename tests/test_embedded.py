"""The embedded default: `cytoscore run` with no servers to install (PostgreSQL from a wheel and a file broker,
both under a var folder), stopped with everything it started."""

from __future__ import annotations

import http.cookiejar
import json
import re
import signal
import stat
import time
import urllib.error
import urllib.parse
import urllib.request

from testkit.support import ServiceProcess, free_port, multipart, run_cli, wdbc_csv


def _get(url: str, token: str = "") -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def _post_file(url: str, content: bytes, filename: str, token: str) -> tuple[int, dict]:
    body, content_type = multipart({}, content, filename)
    headers = {"Content-Type": content_type, "Authorization": f"Bearer {token}"}
    with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=30) as response:
        return response.status, json.loads(response.read())


def test_cytoscore_run_scores_an_upload_with_no_servers(tmp_path):
    port = free_port()
    env = {"PORT": str(port), "CYTOSCORE_VAR_DIR": str(tmp_path / "var")}
    proc = ServiceProcess(["run"], env, tmp_path / "run.log")
    base = f"http://127.0.0.1:{port}"
    try:
        # Nothing here asks the web server anything before the box: our own requests would be logged after it.
        password = _the_box_comes_last(proc, base)
        assert _get(f"{base}/healthz")[0] == 200
        told = tmp_path / "var" / "first-admin.txt"
        assert stat.S_IMODE(told.stat().st_mode) == 0o600
        assert told.read_text() == f"address: {base}/\nemail: admin@localhost\none-time password: {password}\n"
        _first_sign_in_forces_a_new_password(base, password)
        added = run_cli(["tokens", "add", "admin@localhost"], env)
        token = added.stdout.strip()
        assert _get(f"{base}/api/v1/models")[0] == 401  # the doors are locked here too
        # What a person starting it reads: no library's warning about its own set-up (this machine, like a
        # container, has no XDG_RUNTIME_DIR; the file broker has no host).
        for noise in ("RuntimeDirWarning", "No hostname was supplied"):
            assert noise not in added.stderr and noise not in proc.output(), noise

        status, body = _post_file(f"{base}/api/v1/jobs", wdbc_csv(slice(0, 100)), "hundred.csv", token)
        assert status == 202
        deadline = time.monotonic() + 90
        while True:
            job = json.loads(_get(f"{base}/api/v1/jobs/{body['id']}", token)[1])
            if job["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert job["status"] == "succeeded", (job, proc.output()[-4000:])
        assert job["rows_scored"] == 100
        status, raw = _get(f"{base}/api/v1/jobs/{body['id']}/results", token)
        results = json.loads(raw)["results"]
        assert len(results) == 100 and {r["diagnosis"] for r in results} <= {"M", "B"}
        assert (tmp_path / "var" / "pg" / "PG_VERSION").exists()  # a real PostgreSQL keeps the data under var/
    finally:
        code = proc.stop(signal.SIGINT, timeout=120)  # Ctrl-C: the web and the worker stop first, the database last
    assert code == 0, proc.output()[-4000:]
    assert not (tmp_path / "var" / "pg" / "postmaster.pid").exists()  # and it stopped with `cytoscore run`


def _the_box_comes_last(proc: ServiceProcess, base: str) -> str:
    """The box (address, email, one-time password) is printed after every start-up banner, as the last lines."""
    proc.wait_for_log("one-time password:", timeout=150)  # a first start makes the database and trains the model
    time.sleep(3)  # anything a child printed late would now be after the box
    lines = [line for line in proc.output().splitlines() if line.strip()]
    rule = lines[-1]
    assert re.fullmatch(r"\+-+\+", rule), lines[-12:]
    top = len(lines) - 1 - lines[::-1].index(rule, 1)
    box = lines[top:]
    assert all(line.startswith("|") and line.endswith("|") for line in box[1:-1]), box
    text = "\n".join(box)
    assert f"cytoscore is running at {base}/" in text and "admin@localhost" in text
    banners = "\n".join(lines[:top])
    assert "ready." in banners and "Booting worker" in banners  # the worker's and gunicorn's, both before the box
    match = re.search(r"one-time password:\s+(\S+)", text)
    assert match, text
    return match.group(1)


def _first_sign_in_forces_a_new_password(base: str, password: str) -> None:
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def form(path: str, fields: dict[str, str]) -> tuple[str, str]:
        page = browser.open(f"{base}{path}", timeout=10).read().decode()
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        body = urllib.parse.urlencode({**fields, "csrf_token": token}).encode()
        with browser.open(f"{base}{path}", data=body, timeout=30) as response:
            return response.url, response.read().decode()

    landed, page = form("/login", {"email": "admin@localhost", "password": password})
    assert landed == f"{base}/account/password" and "one-time password" in page
    with browser.open(f"{base}/jobs", timeout=10) as response:  # every other page leads back to the change
        assert response.url == f"{base}/account/password"
    landed, _ = form("/account/password", {"current": password, "password": "violet kettle orbits 7 quietly",
                                           "confirm": "violet kettle orbits 7 quietly"})  # fmt: skip
    assert landed == f"{base}/"  # on to the Score page
    with browser.open(f"{base}/jobs", timeout=10) as response:
        assert response.url == f"{base}/jobs"
