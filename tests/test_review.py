"""A file that looks misread is stopped, not just flagged: its job ends in needs_review, its results held until a lab
user confirms them (audited). Real data, jittered data and the bundled data are never held."""

from __future__ import annotations

import psycopg
import pytest

from testkit.support import jittered_csv, wdbc_csv
from tests.support import csrf, post_upload, sign_in
from tests.test_plausibility import german_misread


def _misread_in_parts(copies: int) -> bytes:
    """The misread file's rows repeated (with their own ids) until the file is stored in several parts."""
    header, *rows = german_misread(wdbc_csv()).decode().splitlines()
    lines = [header] + [f"R{k}-{row}" for k in range(copies) for row in rows]
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("model", ["wdbc-rf4", "wdbc-rf30"])
def test_a_file_misread_by_a_german_spreadsheet_is_held_for_review(client, finished, model):
    job_id = post_upload(client, german_misread(wdbc_csv()), "libreoffice-de.csv", model=model).get_json()["id"]
    job = finished(job_id)
    assert job["status"] == "needs_review"
    assert job["rows_total"] == 569 and job["rows_scored"] + job["rows_rejected"] == 569
    assert job["rows_out_of_range"] > 0
    assert "% of rows have values over 100× the usual range: check the decimal separator" in job["review"]
    if model == "wdbc-rf30":
        assert "rows break the geometry of a nucleus" in job["review"]
    for path in ("results?format=json", "results?format=csv", "errors?format=csv"):
        held = client.get(f"/api/v1/jobs/{job_id}/{path}")
        assert held.status_code == 409, path
        assert held.get_json()["status"] == "needs_review"
        assert "held for review" in held.get_json()["error"]


@pytest.mark.parametrize(
    ("content", "model", "out_of_range"),
    [
        (wdbc_csv(), "wdbc-rf4", 2),
        (wdbc_csv(), "wdbc-rf30", 3),
        (jittered_csv(200_000), "wdbc-rf4", None),
    ],
    ids=["real-rf4", "real-rf30", "jittered-200k"],
)
def test_real_and_jittered_files_are_not_held(client, finished, content, model, out_of_range):
    job = finished(post_upload(client, content, model=model).get_json()["id"], timeout=300)
    assert job["status"] == "succeeded", job
    assert job["review"] is None and job["rows_rejected"] == 0
    assert job["rows_out_of_range"] == out_of_range if out_of_range is not None else job["rows_out_of_range"] < 1000


def test_a_misread_file_in_several_parts_is_held_from_every_parts_counts(client, finished, settings, pg_url):
    copies = settings.parallel_min_bytes // len(german_misread(wdbc_csv())) + 2
    content = _misread_in_parts(copies)
    job_id = post_upload(client, content, "big-de.csv", model="wdbc-rf4").get_json()["id"]
    job = finished(job_id, timeout=600)
    with psycopg.connect(pg_url.replace("postgresql+psycopg:", "postgresql:")) as conn:
        parts = conn.execute("SELECT count(*) FROM job_input_parts WHERE job_id = %s", (job_id,)).fetchone()
    assert parts is not None and parts[0] > 1
    assert job["status"] == "needs_review"
    single = finished(post_upload(client, german_misread(wdbc_csv()), model="wdbc-rf4").get_json()["id"])
    assert job["rows_total"] == 569 * copies
    assert job["rows_out_of_range"] == single["rows_out_of_range"] * copies  # every part's flags added up
    assert job["rows_rejected"] == single["rows_rejected"] * copies
    assert "check the decimal separator" in job["review"]


def test_a_lab_user_confirms_a_held_job_and_the_release_is_audited(app, client, finished, people, pg_url):
    job_id = post_upload(client, german_misread(wdbc_csv()), "libreoffice-de.csv").get_json()["id"]
    assert finished(job_id)["status"] == "needs_review"
    lab = people["lab"]
    browser = sign_in(app, lab.email, lab.password)
    page = browser.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert 'id="review-reason"' in page and "check the decimal separator" in page
    assert 'id="results"' not in page and "Download results" not in page
    assert 'id="confirm"' in page

    clinician = people["clinician"].client(app)
    assert clinician.post(f"/api/v1/jobs/{job_id}/confirm").status_code == 404  # not theirs to see

    token = csrf(browser, f"/jobs/{job_id}")
    answer = browser.post(f"/jobs/{job_id}/confirm", data={"csrf_token": token})
    assert answer.status_code == 303
    released = client.get(f"/api/v1/jobs/{job_id}").get_json()
    assert released["status"] == "succeeded"
    assert released["reviewed_by"] == lab.email and released["reviewed_at"]
    assert "check the decimal separator" in released["review"]  # why it was held stays on the job
    assert client.get(f"/api/v1/jobs/{job_id}/results?format=json").status_code == 200
    page = browser.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert 'id="reviewed"' in page and f"released by {lab.email}" in page and 'id="results"' in page

    again = client.post(f"/api/v1/jobs/{job_id}/confirm")
    assert again.status_code == 409

    with psycopg.connect(pg_url.replace("postgresql+psycopg:", "postgresql:")) as conn:
        trail = conn.execute("SELECT actor, detail FROM audit_log WHERE job_id = %s AND action = 'job.confirm'",
                             (job_id,)).fetchall()  # fmt: skip
    assert len(trail) == 1 and trail[0][0] == lab.email and "check the decimal separator" in trail[0][1]


def test_the_api_confirms_a_held_job(client, finished):
    job_id = post_upload(client, german_misread(wdbc_csv()), "libreoffice-de.csv").get_json()["id"]
    assert finished(job_id)["status"] == "needs_review"
    confirmed = client.post(f"/api/v1/jobs/{job_id}/confirm")
    assert confirmed.status_code == 200
    assert confirmed.get_json()["status"] == "succeeded"


def test_a_job_that_waits_is_woken_when_it_is_held(client):
    answer = post_upload(client, german_misread(wdbc_csv()), "libreoffice-de.csv", path="/api/v1/jobs?wait=60")
    assert answer.status_code == 201
    body = answer.get_json()
    assert body["status"] == "needs_review" and "results" not in body


def test_an_implausible_value_in_an_upload_is_rejected_with_its_reason_never_scored(client, finished):
    header, *rows = wdbc_csv(slice(0, 30)).decode().splitlines()
    names = header.split(",")
    cells = rows[4].split(",")
    cells[names.index("smoothness_mean")] = "1.5"
    rows[4] = ",".join(cells)
    content = ("\n".join([header, *rows]) + "\n").encode()
    job = finished(post_upload(client, content, model="wdbc-rf30").get_json()["id"])
    assert (job["status"], job["rows_scored"], job["rows_rejected"]) == ("succeeded", 29, 1)
    results = client.get(f"/api/v1/jobs/{job['id']}/results?format=json").get_json()["results"]
    assert results[4]["diagnosis"] is None and results[4]["probability_malignant"] is None
    assert results[4]["error"].startswith("smoothness_mean '1.5': is above the plausible limit 1")
    report = client.get(f"/api/v1/jobs/{job['id']}/errors?format=json").get_json()["problems"]
    assert [(p["row"], p["column"], p["value"]) for p in report] == [(5, "smoothness_mean", "1.5")]
    assert report[0]["reason"].startswith("is above the plausible limit 1 (smoothness is")
