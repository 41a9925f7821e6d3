"""The embedded default: `cytoscore run` with no servers to install (PostgreSQL from a wheel and a file broker,
both under a var folder), stopped with everything it started."""

from __future__ import annotations

import json
import re
import signal
import time
import urllib.error
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
        deadline = time.monotonic() + 90
        while _get(f"{base}/healthz")[0] != 200:
            assert proc.proc.poll() is None, proc.output()[-4000:]
            assert time.monotonic() < deadline, proc.output()[-4000:]
            time.sleep(0.5)
        proc.wait_for_log("ready.", timeout=60)  # the worker, not only the web server
        assert re.search(r"sign in as admin@localhost with password \S+", proc.output()), "no first admin printed"
        token = run_cli(["tokens", "add", "admin@localhost"], env).stdout.strip()
        assert _get(f"{base}/api/v1/models")[0] == 401  # the doors are locked here too

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
