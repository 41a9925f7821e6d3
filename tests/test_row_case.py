"""One row of a job opened as a single case: the values the file sent, the same answer, and now the reasons."""

from __future__ import annotations

import html
import io
import re

import openpyxl

from shared.explain import TOLERANCE
from shared.features import FEATURES
from testkit.support import RF4, wdbc
from tests.support import csrf, post_upload, sign_in, wait_for_job

ROWS = 569


def _wdbc_csv(delimiter: str = ",", written: dict[tuple[int, str], str] | None = None) -> bytes:
    """The bundled WDBC rows as a lab's file, every value as Python writes it unless `written` says otherwise."""
    X, y = wdbc()
    lines = [delimiter.join(["id", "diagnosis", *FEATURES])]
    for i in range(ROWS):
        cells = [(written or {}).get((i + 1, f), repr(float(X[i, j]))) for j, f in enumerate(FEATURES)]
        if delimiter == ";":
            cells = [c.replace(".", ",") for c in cells]
        lines.append(delimiter.join([f"P{i:04d}", y[i], *cells]))
    return ("\n".join(lines) + "\n").encode()


def _results(client, job_id: str) -> list[dict]:  # type: ignore[no-untyped-def]
    return client.get(f"/api/v1/jobs/{job_id}/results?format=json").get_json()["results"]


def _open(client, job_id: str, row: int):  # type: ignore[no-untyped-def]
    return client.post(f"/api/v1/jobs/{job_id}/rows/{row}/case?wait=30")


def test_a_row_opened_as_a_case_answers_as_the_file_did_and_says_why(parts_app, worker, people):
    client = people["lab"].client(parts_app)  # every upload stored in parts of 64 kB: row 500 is in a later one
    X, _ = wdbc()
    as_written = f"{X[499, FEATURES.index('radius_mean')]:.4f}"  # trailing zeros the file keeps: 13.8700
    content = _wdbc_csv(written={(500, "radius_mean"): as_written})
    job = post_upload(client, content, "lab.csv", model="wdbc-rf30").get_json()
    finished = wait_for_job(client, job["id"])
    assert finished["status"] == "succeeded"
    row = _results(client, job["id"])[499]

    opened = _open(client, job["id"], 500)
    assert opened.status_code == 201, opened.get_data(as_text=True)
    case = opened.get_json()
    assert case["source"] == {"job_id": job["id"], "row": 500}
    assert case["model"] == finished["model"] and case["rows_total"] == 1
    (answer,) = case["results"]
    assert (answer["case_id"], answer["diagnosis"]) == ("P0499", row["diagnosis"])
    assert answer["supplied_diagnosis"] == row["supplied_diagnosis"] == wdbc()[1][499]  # the file's diagnosis
    assert answer["probability_malignant"] == row["probability_malignant"]  # the same model, the same values
    contributions = answer["explanation"]["contributions"]
    assert list(contributions) == list(FEATURES)
    total = answer["explanation"]["base"] + sum(contributions.values())
    assert abs(total - answer["probability_malignant"]) <= TOLERANCE
    (sent,) = _results(client, case["id"])
    assert sent["input"]["radius_mean"] == as_written  # as the file wrote it, not as a float prints

    again = _open(client, job["id"], 500)  # the same row again: the case already opened, not a copy of it
    assert (again.status_code, again.get_json()["id"]) == (201, case["id"])
    admin = _open(people["admin"].client(parts_app), job["id"], 500)  # someone else opening it gets their own
    assert admin.status_code == 201 and admin.get_json()["id"] != case["id"]


def test_a_decimal_comma_row_opens_as_the_job_read_it(client):
    job = post_upload(client, _wdbc_csv(";"), "komma.csv").get_json()
    assert wait_for_job(client, job["id"])["status"] == "succeeded"
    row = _results(client, job["id"])[11]
    (answer,) = _open(client, job["id"], 12).get_json()["results"]
    assert answer["probability_malignant"] == row["probability_malignant"]
    assert list(answer["explanation"]["contributions"]) == list(FEATURES)  # the best model the file fits


def test_a_workbook_row_opens_with_the_numbers_its_cells_hold(client):
    X, y = wdbc()
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["id", "diagnosis", *RF4])
    for i in range(40):
        sheet.append([f"W{i}", y[i], *(float(X[i, FEATURES.index(f)]) for f in RF4)])
    out = io.BytesIO()
    book.save(out)
    job = post_upload(client, out.getvalue(), "ward.xlsx").get_json()
    assert wait_for_job(client, job["id"])["status"] == "succeeded"
    row = _results(client, job["id"])[32]
    (answer,) = _open(client, job["id"], 33).get_json()["results"]
    assert (answer["case_id"], answer["probability_malignant"]) == ("W32", row["probability_malignant"])


def test_a_row_that_cannot_be_opened_says_why(client, people, app):
    content = _wdbc_csv(written={(3, "radius_mean"): "-4"})
    job = post_upload(client, content, "one-bad.csv").get_json()
    assert wait_for_job(client, job["id"])["status"] == "succeeded"
    rejected = _open(client, job["id"], 3)
    assert rejected.status_code == 409
    assert "row 3 was not scored" in rejected.get_json()["error"] and "radius_mean" in rejected.get_json()["error"]
    assert _open(client, job["id"], ROWS + 1).status_code == 404
    assert _open(client, job["id"], 0).status_code == 404
    assert _open(client, job["id"], 2**31).status_code == 404  # beyond the row column, not a database error
    someone_else = people["clinician"].client(app)
    assert _open(someone_else, job["id"], 1).status_code == 404  # answered as for a job that does not exist
    single = client.post("/api/v1/jobs?wait=30", json={"cases": [dict.fromkeys(RF4, 12.0)]}).get_json()
    assert _open(client, single["id"], 1).status_code == 404  # a single case is already one


def test_the_rows_table_opens_a_row_and_the_case_names_where_it_came_from(app, client, people):
    job = post_upload(client, _wdbc_csv(), "clinic-week.csv").get_json()
    assert wait_for_job(client, job["id"])["status"] == "succeeded"
    browser = sign_in(app, people["lab"].email, people["lab"].password)
    page = browser.get(f"/jobs/{job['id']}").get_data(as_text=True)
    assert f'action="/jobs/{job["id"]}/rows/7/case"' in page
    assert 'aria-label="Why row 7 (case P0006) was answered M: open it as a case"' in page
    assert browser.post(f"/jobs/{job['id']}/rows/7/case").status_code == 400  # a form from elsewhere: no token
    answered = browser.post(f"/jobs/{job['id']}/rows/7/case", data={"csrf_token": csrf(browser, f"/jobs/{job['id']}")})
    assert answered.status_code == 303
    new = answered.headers["Location"].rsplit("/", 1)[-1]
    assert wait_for_job(client, new)["status"] == "succeeded"
    case_page = html.unescape(re.sub(r"<[^>]+>", "", browser.get(f"/jobs/{new}").get_data(as_text=True)))
    assert "Case P0006" in case_page and "Why the model said it" in case_page
    assert "Supplied diagnosis M: the model’s answer agrees." in " ".join(case_page.split())
    assert "row 7 of clinic-week.csv, opened as a case" in case_page
    assert f"row 7 of clinic-week.csv, job {job['id']}" in " ".join(case_page.split())
    token = csrf(browser, f"/jobs/{job['id']}")
    again = browser.post(f"/jobs/{job['id']}/rows/7/case", data={"csrf_token": token})
    assert (again.status_code, again.headers["Location"].rsplit("/", 1)[-1]) == (303, new)  # no second copy
    source_page = " ".join(
        html.unescape(re.sub(r"<[^>]+>", "", browser.get(f"/jobs/{job['id']}").get_data(as_text=True))).split()
    )
    assert "1 case opened from its rows keeps its own copy of the row’s values: remove it from its page." in source_page
    listed = html.unescape(re.sub(r"<[^>]+>", "", browser.get("/jobs").get_data(as_text=True)))
    assert "case P0006, row 7 of clinic-week.csv" in " ".join(listed.split())  # the jobs list says so too
