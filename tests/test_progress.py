"""Progress lands as batches land: the figures a user watches move while a big job runs."""

from __future__ import annotations

import time

from testkit.support import jittered_csv
from tests.support import post_upload


def test_a_100k_row_job_reports_progress_while_it_runs(client, finished):
    job_id = post_upload(client, jittered_csv(100_000), "big.csv").get_json()["id"]
    seen: list[tuple[str, int]] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        job = client.get(f"/api/v1/jobs/{job_id}").get_json()
        seen.append((job["status"], job["rows_scored"] + job["rows_rejected"]))
        if job["status"] in ("succeeded", "failed", "needs_review"):
            break
        time.sleep(0.05)
    assert job["status"] == "succeeded", job
    assert job["rows_scored"] == 100_000
    moving = sorted({done for status, done in seen if status == "running" and 0 < done < 100_000})
    assert len(moving) >= 2, f"progress did not move while running: {seen[:: max(1, len(seen) // 20)]}"
    page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert 'value="100000"' in page
