"""A job can be stopped: a lab that uploaded the wrong file, or a clinician who sent the wrong case, cancels it while
it waits or runs. It stops at once for everyone who looks, its worker writes nothing more, its results are never
served, and its stored file can be scored again without uploading it."""

from __future__ import annotations

import re
import threading
import time
import uuid

import psycopg

from shared import jobs
from shared.queue import make_celery
from testkit.support import jittered_csv, wdbc_csv
from tests.support import csrf, post_upload, queued_case, sign_in, wait_for_job


def _dsn(pg_url: str) -> str:
    return pg_url.replace("postgresql+psycopg:", "postgresql:")


def test_a_running_job_stops_at_its_next_write_and_serves_nothing(parts_app, worker, people, pg_url):
    lab = people["lab"]
    client = lab.client(parts_app)
    job_id = post_upload(client, jittered_csv(300_000), "wrong-file.csv").get_json()["id"]
    deadline = time.monotonic() + 60
    while (job := client.get(f"/api/v1/jobs/{job_id}").get_json())["rows_scored"] == 0:
        assert time.monotonic() < deadline and job["status"] in ("queued", "running"), job
        time.sleep(0.05)

    answer = client.post(f"/api/v1/jobs/{job_id}/cancel")
    assert answer.status_code == 200, answer.get_json()
    cancelled = answer.get_json()
    assert cancelled["status"] == "cancelled" and cancelled["cancelled_by"] == lab.email
    assert cancelled["finished_at"] is not None
    done = cancelled["rows_scored"] + cancelled["rows_rejected"]
    assert 0 < done < 300_000

    worker.wait_for_log(f"job {job_id}: attempt 1 superseded", timeout=60)
    time.sleep(1)  # a helper's last batch, had it one, would have been refused by now
    after = client.get(f"/api/v1/jobs/{job_id}").get_json()
    assert (after["status"], after["rows_scored"] + after["rows_rejected"]) == ("cancelled", done)
    with psycopg.connect(_dsn(pg_url)) as conn:
        stored = conn.execute("SELECT count(*) FROM results WHERE job_id = %s", (job_id,)).fetchone()
        trail = conn.execute("SELECT actor, detail FROM audit_log WHERE job_id = %s AND action = 'job.cancel'",
                             (job_id,)).fetchall()  # fmt: skip
    assert stored is not None and stored[0] == done  # every batch committed before the cancel, none after
    assert trail == [(lab.email, f"cancelled while running, {done} of 300000 rows done")]

    for path in ("results?format=csv", "results?format=json", "errors?format=csv", "validation"):
        refused = client.get(f"/api/v1/jobs/{job_id}/{path}")
        assert refused.status_code == 409, path
        assert refused.get_json()["status"] == "cancelled"
    again = client.post(f"/api/v1/jobs/{job_id}/cancel")
    assert again.status_code == 409
    assert "already finished (cancelled)" in again.get_json()["error"]

    # The workers are free for the next job, and the cancelled file is scored again without an upload.
    rescored = client.post(f"/api/v1/jobs/{job_id}/rescore", json={"model": "wdbc-rf4"}).get_json()
    rescored = wait_for_job(client, rescored["id"], timeout=180)
    assert rescored["status"] == "succeeded" and rescored["rows_scored"] == 300_000


def test_a_queued_job_is_never_claimed_and_a_waiting_request_returns_at_once(client, people, pg_url, settings):
    clinician = people["clinician"].client(client.application)
    job_id = queued_case(_dsn(pg_url), people["clinician"].email)
    waited: dict[str, object] = {}

    def wait() -> None:
        started = time.monotonic()
        answer = clinician.get(f"/api/v1/jobs/{job_id}?wait=30")
        waited.update(status=answer.get_json()["status"], seconds=time.monotonic() - started)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(1)
    assert client.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 404  # someone else's job: not found
    answer = clinician.post(f"/api/v1/jobs/{job_id}/cancel")
    assert answer.status_code == 200 and answer.get_json()["status"] == "cancelled"
    waiter.join(timeout=40)
    assert waited["status"] == "cancelled" and float(waited["seconds"]) < 20  # type: ignore[arg-type]

    # Its message, arriving late, finds nothing to claim.
    assert jobs.publish(make_celery(settings), uuid.UUID(job_id), settings.cases_queue)
    time.sleep(3)
    job = clinician.get(f"/api/v1/jobs/{job_id}").get_json()
    assert (job["status"], job["attempts"], job["started_at"]) == ("cancelled", 0, None)


def test_a_finished_job_cannot_be_cancelled(client, finished):
    job_id = post_upload(client, wdbc_csv(), "done.csv").get_json()["id"]
    assert finished(job_id)["status"] == "succeeded"
    answer = client.post(f"/api/v1/jobs/{job_id}/cancel")
    assert answer.status_code == 409
    assert answer.get_json()["error"] == "the job has already finished (succeeded): there is nothing to cancel"
    assert client.get(f"/api/v1/jobs/{job_id}/results?format=json").status_code == 200


def test_the_job_page_cancels_and_offers_to_score_the_file_again(parts_app, worker, people):
    lab = people["lab"]
    browser = sign_in(parts_app, lab.email, lab.password)
    job_id = post_upload(lab.client(parts_app), jittered_csv(300_000), "wrong-model.csv").get_json()["id"]
    page = browser.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert 'id="cancel"' in page and "Cancel this job" in page

    answer = browser.post(f"/jobs/{job_id}/cancel", data={"csrf_token": csrf(browser, f"/jobs/{job_id}")})
    assert answer.status_code == 303 and answer.headers["Location"].endswith(f"/jobs/{job_id}")
    page = browser.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert 'data-outcome="cancelled"' in page and 'id="cancel"' not in page
    assert f"Cancelled by {lab.email} at " in page
    assert "Nothing from it is shown or can be downloaded." in page and "Download results" not in page

    listed = browser.get("/jobs?q=wrong-model.csv").get_data(as_text=True)
    row = next(r for r in listed.split("<tr>") if job_id[:8] in r)
    assert 'data-label="M">–</td>' in row and 'data-label="B">–</td>' in row  # no counts of unserved results

    token = csrf(browser, f"/jobs/{job_id}")
    late = browser.post(f"/jobs/{job_id}/cancel", data={"csrf_token": token})  # pressed again, from an old page
    assert late.status_code == 303
    assert "The job has already finished (cancelled): there is nothing to cancel." in browser.get(
        f"/jobs/{job_id}"
    ).get_data(as_text=True)
    again = browser.post(f"/jobs/{job_id}/rescore", data={"csrf_token": token, "model": "wdbc-rf4"})
    assert again.status_code in (302, 303)
    new_id = again.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    assert new_id != job_id
    assert wait_for_job(lab.client(parts_app), new_id, timeout=180)["rows_scored"] == 300_000


def test_a_cancelled_file_is_scored_again_with_any_model_it_fits(app, client, people, pg_url):
    """Cancelled because the wrong model was chosen: the page offers every model the stored file fits."""
    lab = people["lab"]
    job_id = post_upload(client, wdbc_csv(), "ward-all-columns.csv", model="wdbc-rf4").get_json()["id"]
    assert wait_for_job(client, job_id)["status"] == "succeeded"
    with psycopg.connect(_dsn(pg_url)) as conn:  # as if cancelled mid-way: the page reads only the status
        conn.execute("UPDATE jobs SET status = 'cancelled', cancelled_by = %s WHERE id = %s", (lab.email, job_id))
    browser = sign_in(app, lab.email, lab.password)
    page = browser.get(f"/jobs/{job_id}").get_data(as_text=True)
    offered = re.findall(r'<option value="([^"]+)"( selected)?>', page[page.index('id="again-model"') :])
    assert offered == [("wdbc-rf30", ""), ("wdbc-rf4", " selected")]  # best first; the job's own chosen

    token = csrf(browser, f"/jobs/{job_id}")
    again = browser.post(f"/jobs/{job_id}/rescore", data={"csrf_token": token, "model": "wdbc-rf30"})
    new = wait_for_job(client, again.headers["Location"].rsplit("/", 1)[-1])
    assert (new["status"], new["model"]["name"], new["rows_scored"]) == ("succeeded", "wdbc-rf30", 569)


def test_a_queued_job_says_how_many_jobs_are_ahead_of_it(app, people, pg_url):
    """Two cases waiting since yesterday, one sent a second after the other: the second has the first ahead."""
    clinician = people["clinician"].client(app)
    first, second = (queued_case(_dsn(pg_url), people["clinician"].email) for _ in range(2))
    with psycopg.connect(_dsn(pg_url)) as conn:
        for job_id, seconds in ((first, 0), (second, 1)):
            conn.execute(
                "UPDATE jobs SET created_at = now() - interval '1 day' + make_interval(secs => %s) WHERE id = %s",
                (seconds, job_id),
            )
    try:
        ahead = [clinician.get(f"/api/v1/jobs/{job_id}").get_json()["jobs_ahead"] for job_id in (first, second)]
        assert ahead == [0, 1]
        page = clinician.get(f"/jobs/{second}").get_data(as_text=True)
        assert "Waiting for a worker: 1 job is ahead of it." in page
        assert "Waiting for a worker.<" in clinician.get(f"/jobs/{first}").get_data(as_text=True)
    finally:
        for job_id in (first, second):
            clinician.post(f"/api/v1/jobs/{job_id}/cancel")
    assert clinician.get(f"/api/v1/jobs/{second}").get_json()["jobs_ahead"] is None  # once it is not waiting
