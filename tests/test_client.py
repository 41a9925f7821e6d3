"""The client for scripts, `cytoscore submit | status | results`, run as a user runs it, against a real `cytoscore
web` and worker, with nothing but the server's URL and a token (no database, no broker in its environment)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook

from testkit.support import BIN, ServiceProcess, free_port, jittered_csv, wdbc_csv
from tests.browser_support import wait_for_http
from tests.support import queued_case
from tests.test_plausibility import german_misread


@pytest.fixture(scope="module")
def web(service_env, worker, tmp_path_factory) -> Iterator[str]:
    """A real `cytoscore web` on the session's queue, which the session's worker reads."""
    port = free_port()
    proc = ServiceProcess(["web"], {**service_env, "PORT": str(port)}, tmp_path_factory.mktemp("web") / "web.log")
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()


def _env(**extra: str) -> dict[str, str]:
    """What a script's shell would have: a PATH, a HOME with no config file, and what the test adds."""
    return {"PATH": os.environ["PATH"], "HOME": str(Path.cwd() / "var" / "no-home"), "LANG": "C.UTF-8", **extra}


def cytoscore(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "cytoscore"), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=180)  # fmt: skip


@pytest.fixture
def token_env(people) -> dict[str, str]:
    return _env(CYTOSCORE_TOKEN=people["lab"].token)


def test_submit_waits_and_writes_the_results_and_status_and_results_read_the_job(web, token_env, tmp_path):
    source = tmp_path / "ward 7.csv"
    source.write_bytes(jittered_csv(300))
    out = tmp_path / "scored.csv"
    done = cytoscore("submit", str(source), "--url", web, "--wait", "--out", str(out), env=token_env)
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip()
    assert "wdbc-rf4" in done.stderr and f"results written to {out}" in done.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["case_id"] for r in rows] == [f"J{i}" for i in range(1, 301)]
    assert {r["model_name"] for r in rows} == {"wdbc-rf4"} and all(len(r["model_sha256"]) == 64 for r in rows)
    assert {r["diagnosis"] for r in rows} <= {"M", "B"}

    status = cytoscore("status", job_id, "--url", web, env=token_env)
    assert status.returncode == 0 and status.stdout.startswith(f"{job_id} succeeded: 300 rows, 300 scored, 0 rejected")
    as_json = json.loads(cytoscore("status", job_id, "--url", web, "--json", env=token_env).stdout)
    assert as_json["input"]["filename"] == "ward 7.csv" and as_json["model"]["name"] == "wdbc-rf4"

    on_stdout = cytoscore("results", job_id, "--url", web, env=token_env)
    assert on_stdout.returncode == 0 and on_stdout.stdout == out.read_text()
    book = tmp_path / "scored.xlsx"
    assert cytoscore("results", job_id, "--url", web, "-o", str(book), env=token_env).returncode == 0
    workbook = load_workbook(book, read_only=True)  # read-only keeps the file open until closed
    try:
        sheet = workbook.active
        assert sheet is not None and sum(1 for _ in sheet.iter_rows()) == 301
    finally:
        workbook.close()


def test_submit_without_wait_prints_the_job_id_and_a_chosen_model_is_used(web, token_env, tmp_path):
    source = tmp_path / "kaggle.csv"
    source.write_bytes(wdbc_csv(slice(0, 20)))
    done = cytoscore("submit", str(source), "--url", web, "--model", "wdbc-rf30", env=token_env)
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip()
    waited = cytoscore("status", job_id, "--url", web, "--wait", env=token_env)
    assert waited.returncode == 0 and f"{job_id} succeeded: 20 rows" in waited.stdout
    assert "model wdbc-rf30 " in waited.stdout


def test_a_refused_file_exits_non_zero_with_every_reason(web, token_env, tmp_path):
    source = tmp_path / "wrong.csv"
    source.write_text("id,radius_mean,texture_mean\nA,14.1,19.3\n")
    refused = cytoscore("submit", str(source), "--url", web, "--wait", env=token_env)
    assert refused.returncode == 3 and refused.stdout == ""
    assert "the input was refused; nothing was created (HTTP 422)" in refused.stderr
    assert "smoothness_mean" in refused.stderr and "compactness_mean" in refused.stderr

    unknown = cytoscore("submit", str(source), "--url", web, "--model", "no-such-model", env=token_env)
    assert unknown.returncode == 3 and "no-such-model" in unknown.stderr


def test_a_failed_job_and_a_job_that_is_not_there_say_so(web, token_env, tmp_path):
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["id", "radius_mean"])
    sheet.append(["A", 14.1])
    book.save(tmp_path / "short.xlsx")  # a workbook's sheet is checked by the worker: the job fails, saying why
    failed = cytoscore("submit", str(tmp_path / "short.xlsx"), "--url", web, "--wait", env=token_env)
    assert failed.returncode == 4 and "failed: " in failed.stderr and "texture_mean" in failed.stderr
    (tmp_path / "short.xlsx").unlink()
    missing = cytoscore("status", "00000000-0000-0000-0000-000000000000", "--url", web, env=token_env)
    assert missing.returncode == 1 and "no such job (HTTP 404)" in missing.stderr
    not_yet = cytoscore("results", "00000000-0000-0000-0000-000000000000", "--url", web, "-o",
                        str(tmp_path / "x.csv"), env=token_env)  # fmt: skip
    assert not_yet.returncode == 1 and not (tmp_path / "x.csv").exists() and not list(tmp_path.iterdir())
    bad_name = cytoscore("results", "x", "--url", web, "-o", str(tmp_path / "x.txt"), env=token_env)
    assert bad_name.returncode == 2 and "name a .csv, .xlsx or .json file" in bad_name.stderr


def test_a_held_file_ends_the_wait_and_a_queued_job_is_cancelled(web, token_env, people, pg_url, tmp_path):
    source = tmp_path / "libreoffice-de.csv"
    source.write_bytes(german_misread(wdbc_csv()))
    held = cytoscore("submit", str(source), "--url", web, "--wait", "--out", str(tmp_path / "x.csv"), env=token_env)
    assert held.returncode == 4, held.stderr
    job_id = held.stdout.strip()
    assert f"job {job_id} is held for review (" in held.stderr and "check the decimal separator" in held.stderr
    assert "a lab user must confirm it on its page" in held.stderr and not (tmp_path / "x.csv").exists()

    queued = queued_case(pg_url.replace("postgresql+psycopg:", "postgresql:"), people["lab"].email)
    cancelled = cytoscore("cancel", queued, "--url", web, env=token_env)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.startswith(f"{queued} cancelled: 1 rows, 0 scored")
    assert cancelled.stdout.rstrip().endswith(f"; cancelled by {people['lab'].email}")
    status = cytoscore("status", queued, "--url", web, env=token_env)
    assert status.returncode == 4 and f"{queued} cancelled" in status.stdout
    again = cytoscore("cancel", queued, "--url", web, env=token_env)
    assert again.returncode == 1 and "the job has already finished (cancelled)" in again.stderr


def test_the_token_comes_from_the_environment_or_a_private_config_file_never_the_command_line(web, people, tmp_path):
    source = tmp_path / "one.csv"
    source.write_bytes(jittered_csv(2))
    config = tmp_path / "client.toml"
    config.write_text(f'url = "{web}"\ntoken = "{people["lab"].token}"\n')
    config.chmod(0o600)
    from_file = cytoscore("submit", str(source), "--wait", env=_env(CYTOSCORE_CONFIG=str(config)))
    assert from_file.returncode == 0, from_file.stderr

    config.chmod(0o644)
    shared = cytoscore("submit", str(source), env=_env(CYTOSCORE_CONFIG=str(config)))
    assert shared.returncode == 1 and f"chmod 600 {config}" in shared.stderr

    nothing = cytoscore("submit", str(source), "--url", web, env=_env())
    assert nothing.returncode == 1 and "no token: set CYTOSCORE_TOKEN" in nothing.stderr
    no_option = cytoscore("submit", str(source), "--url", web, "--token", people["lab"].token, env=_env())
    assert no_option.returncode == 2 and "No such option '--token'" in no_option.stderr
    wrong = cytoscore("status", "00000000-0000-0000-0000-000000000000", "--url", web, env=_env(CYTOSCORE_TOKEN="x"))
    assert wrong.returncode == 1 and "sign in first" in wrong.stderr


def test_a_terminal_sees_a_progress_bar_while_the_file_uploads_and_is_scored(web, token_env, tmp_path):
    source = tmp_path / "big.csv"
    source.write_bytes(jittered_csv(20_000))
    main, terminal = os.openpty()  # stderr is a terminal, as in an interactive shell; stdout stays a pipe
    shown = bytearray()

    def read() -> None:
        while True:
            try:
                block = os.read(main, 4096)
            except OSError:
                return
            if not block:
                return
            shown.extend(block)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        proc = subprocess.run([str(BIN / "cytoscore"), "submit", str(source), "--url", web, "--wait"], env=token_env,
                              stdout=subprocess.PIPE, stderr=terminal, timeout=180, check=False)  # fmt: skip
    finally:
        os.close(terminal)
        reader.join(10)
        os.close(main)
    text = shown.decode(errors="replace")
    assert proc.returncode == 0, text
    assert "uploading  [####" in text and "scoring  [####" in text and "100%" in text
