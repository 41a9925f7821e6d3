"""`?wait=` answers as soon as the job finishes: the form page and programs need not poll."""

from __future__ import annotations

import time

from tests.support import wdbc

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


def test_wait_gives_up_after_the_time_asked_and_shows_the_current_status(settings, people):
    from api import create_app

    app = create_app(settings.model_copy(update={"queue": "a-queue-no-worker-reads"}))
    client = people["lab"].client(app)
    job_id = client.post("/api/v1/jobs", json={"cases": [_case()]}).get_json()["id"]
    job = client.get(f"/api/v1/jobs/{job_id}?wait=1").get_json()
    app.extensions["cytoscore.engine"].dispose()
    assert job["status"] == "queued"
