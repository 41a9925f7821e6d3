"""`?wait=` answers as soon as the job finishes: the form page and programs need not poll."""

from __future__ import annotations

import time

from api.api_v1 import INLINE_RESULTS
from testkit.support import run_cli, wdbc

RF4 = ["radius_mean", "texture_mean", "smoothness_mean", "compactness_mean"]


def _case() -> dict:
    X, _ = wdbc()
    from shared.features import FEATURES

    return {"case_id": "w1", **{f: float(X[0, FEATURES.index(f)]) for f in RF4}}


def test_wait_returns_the_finished_job_in_one_request(client):
    job_id = client.post("/api/v1/jobs", json={"cases": [_case()]}).get_json()["id"]
    started = time.monotonic()
    job = client.get(f"/api/v1/jobs/{job_id}?wait=60").get_json()
    assert job["status"] == "succeeded"
    assert job["rows_scored"] == 1
    # Woken by the notification, not by the end of the 60 s (a generous bound: this is not a speed test).
    assert time.monotonic() - started < 30
    (result,) = job["results"]  # the answer, not only the news that there is one
    assert result["case_id"] == "w1" and result["diagnosis"] in ("M", "B")
    assert 0.0 <= result["probability_malignant"] <= 1.0 and result["model_name"] == job["model"]["name"]


def test_a_bigger_job_answers_the_wait_without_its_results_and_reading_them_inline_is_audited(client, service_env):
    cases = [{**_case(), "case_id": f"w{i}"} for i in range(INLINE_RESULTS + 1)]
    big = client.post("/api/v1/jobs?wait=60", json={"cases": cases})
    assert big.status_code == 201 and big.get_json()["rows_scored"] == INLINE_RESULTS + 1
    assert "results" not in big.get_json()  # too many to carry: `/results` serves them
    assert len(client.get(f"{big.get_json()['url']}/results").get_json()["results"]) == INLINE_RESULTS + 1

    small = client.post("/api/v1/jobs?wait=60", json={"cases": cases[:1]}).get_json()
    assert [r["case_id"] for r in small["results"]] == ["w0"]
    trail = run_cli(["audit", "--limit", "5000"], service_env).stdout
    assert any(small["id"] in line and "job.download" in line for line in trail.splitlines()), trail[-2000:]


def test_wait_gives_up_after_the_time_asked_and_shows_the_current_status(idle_app, people):
    client = people["lab"].client(idle_app)
    job_id = client.post("/api/v1/jobs", json={"cases": [_case()]}).get_json()["id"]
    job = client.get(f"/api/v1/jobs/{job_id}?wait=1").get_json()
    assert job["status"] == "queued" and "results" not in job
