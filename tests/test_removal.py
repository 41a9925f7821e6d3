"""A finished job's file and results can be removed for good by whoever may see it: a file uploaded by mistake, or a
patient's data that must be erased. The job stays, saying who removed what and when; nothing of the data is served
again, and no page shows counts made from results that are gone."""

from __future__ import annotations

import html
import re

import psycopg

from testkit.support import wdbc_csv
from tests.support import csrf, post_upload, queued_case, sign_in, wait_for_job


def _dsn(pg_url: str) -> str:
    return pg_url.replace("postgresql+psycopg:", "postgresql:")


def _text(response) -> str:  # type: ignore[no-untyped-def]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))).split())


def test_the_api_removes_a_finished_jobs_file_and_results_and_serves_none_of_them(client, people, app, pg_url):
    lab = people["lab"]
    job_id = post_upload(client, wdbc_csv(), "wrong-patient.csv").get_json()["id"]
    assert wait_for_job(client, job_id)["status"] == "succeeded"
    assert people["clinician"].client(app).post(f"/api/v1/jobs/{job_id}/purge").status_code == 404  # not theirs

    answer = client.post(f"/api/v1/jobs/{job_id}/purge")
    assert answer.status_code == 200, answer.get_json()
    job = answer.get_json()
    assert job["purged_by"] == lab.email and job["purged_at"] is not None
    assert (job["status"], job["rows_total"], job["rows_scored"]) == ("succeeded", 569, 569)  # the counts stay
    for path in ("results?format=csv", "results?format=json", "errors?format=csv", "validation"):
        assert client.get(f"/api/v1/jobs/{job_id}/{path}").status_code == 410, path
    assert client.post(f"/api/v1/jobs/{job_id}/rows/1/case").status_code == 409
    rescore = client.post(f"/api/v1/jobs/{job_id}/rescore", json={"model": "wdbc-rf4"})
    assert rescore.status_code == 422 and "input has been removed" in str(rescore.get_json())
    again = client.post(f"/api/v1/jobs/{job_id}/purge")
    assert again.status_code == 200 and again.get_json()["purged_at"] == job["purged_at"]

    with psycopg.connect(_dsn(pg_url)) as conn:
        left = conn.execute(
            "SELECT (SELECT count(*) FROM results WHERE job_id = %(j)s), "
            "(SELECT count(*) FROM job_inputs WHERE job_id = %(j)s), "
            "(SELECT count(*) FROM job_input_parts WHERE job_id = %(j)s)",
            {"j": job_id},
        ).fetchone()
        trail = conn.execute(
            "SELECT actor, detail FROM audit_log WHERE job_id = %s AND action = 'job.purge'", (job_id,)
        ).fetchall()
    assert left == (0, 0, 0)
    assert trail == [(lab.email, "file and results removed (569 rows)")]  # once: removing it again changed nothing


def test_a_job_that_has_not_finished_is_cancelled_before_its_data_is_removed(app, people, pg_url):
    clinician = people["clinician"].client(app)
    job_id = queued_case(_dsn(pg_url), people["clinician"].email)
    refused = clinician.post(f"/api/v1/jobs/{job_id}/purge")
    assert refused.status_code == 409
    assert refused.get_json()["error"] == "the job is queued: cancel it first, then remove its file and results"
    assert clinician.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 200
    removed = clinician.post(f"/api/v1/jobs/{job_id}/purge").get_json()
    assert (removed["status"], removed["purged_by"]) == ("cancelled", people["clinician"].email)


def test_the_job_page_removes_on_a_ticked_box_and_says_what_stays(app, client, people):
    lab = people["lab"]
    job_id = post_upload(client, wdbc_csv(), "sent-by-mistake.csv").get_json()["id"]
    assert wait_for_job(client, job_id)["status"] == "succeeded"
    browser = sign_in(app, lab.email, lab.password)
    page = browser.get(f"/jobs/{job_id}")
    assert "Remove this job’s file and results" in _text(page) and 'id="remove-data"' in page.get_data(as_text=True)
    assert f" UTC by {lab.email} " in _text(page)  # who sent it, beside when

    token = csrf(browser, f"/jobs/{job_id}")
    unticked = browser.post(f"/jobs/{job_id}/purge", data={"csrf_token": token})
    assert unticked.status_code == 422 and "tick the box" in _text(unticked)
    assert client.get(f"/api/v1/jobs/{job_id}/results?format=json").status_code == 200  # nothing was removed

    removed = browser.post(f"/jobs/{job_id}/purge", data={"csrf_token": token, "understood": "yes"})
    assert removed.status_code == 303 and removed.headers["Location"].endswith(f"/jobs/{job_id}")
    shown = _text(browser.get(f"/jobs/{job_id}"))
    assert "File and results removed" in shown and f"Removed by {lab.email} at " in shown
    assert "569 of 569 rows" in shown  # the counts stay
    assert "Download results" not in shown and "malignant (M)" not in shown and "Remove this job" not in shown
    listed = browser.get("/jobs?q=sent-by-mistake.csv").get_data(as_text=True)
    row = next(r for r in listed.split("<tr>") if job_id[:8] in r)
    assert 'data-label="M">–</td>' in row and 'data-label="B">–</td>' in row and "removed" in row
