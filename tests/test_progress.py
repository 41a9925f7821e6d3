"""Progress lands as chunks land: the figures a user watches move while a big job runs."""

from __future__ import annotations

import csv
import io
import time

import numpy as np

from tests.support import post_upload, wdbc

RF4 = ["radius_mean", "texture_mean", "smoothness_mean", "compactness_mean"]


def jittered_csv(n: int, seed: int = 7) -> bytes:
    """n cases drawn from the bundled ones with 2 % multiplicative noise, four-feature layout."""
    X, _ = wdbc()
    from shared.features import FEATURES

    rng = np.random.default_rng(seed)
    base = X[rng.integers(0, len(X), n)][:, [FEATURES.index(f) for f in RF4]]
    values = base * rng.normal(1.0, 0.02, base.shape)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", *RF4])
    writer.writerows([f"J{i}", *map(repr, row.tolist())] for i, row in enumerate(values, 1))
    return out.getvalue().encode()


def test_a_100k_row_job_reports_progress_while_it_runs(client, finished):
    job_id = post_upload(client, jittered_csv(100_000), "big.csv").get_json()["id"]
    seen: list[tuple[str, int]] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        job = client.get(f"/api/v1/jobs/{job_id}").get_json()
        seen.append((job["status"], job["rows_scored"] + job["rows_rejected"]))
        if job["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.05)
    assert job["status"] == "succeeded", job
    assert job["rows_scored"] == 100_000
    moving = sorted({done for status, done in seen if status == "running" and 0 < done < 100_000})
    assert len(moving) >= 2, f"progress did not move while running: {seen[:: max(1, len(seen) // 20)]}"
    page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert 'value="100000"' in page
