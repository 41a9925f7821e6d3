"""A case's diagnosis confirmed later (histology, say): recorded on the case's page or through the API by whoever
may see the job, shown beside the answer, corrected and withdrawn with an audit trail, counted in the model's
figures of use (its training rows apart), and refused where there is no answer to check."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from shared.features import FEATURES
from shared.modelstore import row_hashes
from shared.settings import ROOT
from testkit.support import RF4, run_cli, wdbc, wdbc_csv
from tests.support import csrf, post_upload, sign_in

TRAINED = frozenset(json.loads((ROOT / "models" / "wdbc-rf4.json").read_text())["training_rows"]["hashes"])


def _wdbc_case(trained: bool) -> dict[str, Any]:
    """The first bundled case that was (or was not) one of wdbc-rf4's training rows, as a single case."""
    X, _ = wdbc()
    values = X[:, [FEATURES.index(f) for f in RF4]]
    i = next(i for i, h in enumerate(row_hashes(values)) if (h in TRAINED) == trained)
    return {"id": f"confirm-{i}", **{f: float(values[i, k]) for k, f in enumerate(RF4)}}


def _scored(client: Any, case: dict[str, Any]) -> dict[str, Any]:
    answer = client.post("/api/v1/jobs?wait=30", json={"cases": [case], "model": "wdbc-rf4"})
    assert answer.status_code == 201 and answer.get_json()["status"] == "succeeded", answer.get_json()
    return answer.get_json()


def _against(admin: Any) -> dict[str, int]:
    """wdbc-rf4's figures against a diagnosis, summed over the months the admin's use page shows."""
    months = admin.get("/api/v1/models/wdbc-rf4/use").get_json()["months"]
    sums: dict[str, int] = {}
    for m in months:
        d = m["against_diagnosis"]
        for key, n in [*((k, d[k]) for k in ("rows", "training_rows", "confirmed_rows")), *d["confusion"].items()]:
            sums[key] = sums.get(key, 0) + n
    return sums


def _moved(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {key: after[key] - before[key] for key in before if after[key] != before[key]}


def _trail(env: dict[str, str], job_id: str) -> list[str]:
    return [line for line in run_cli(["audit", "--limit", "500"], env).stdout.splitlines() if job_id in line]


def test_a_clinician_records_what_the_case_turned_out_to_be_and_the_model_is_checked_against_it(
    app, worker, people, service_env
):
    clinician, admin = people["clinician"], people["admin"].client(app)
    job = _scored(clinician.client(app), _wdbc_case(trained=False))
    answered = job["results"][0]["diagnosis"]
    truth = "B" if answered == "M" else "M"  # the answer turned out wrong: the figures must count a miss
    before = _against(admin)

    browser = sign_in(app, clinician.email, clinician.password)
    page = browser.get(f"/jobs/{job['id']}").get_data(as_text=True)
    assert "When the diagnosis is confirmed" in page and "Confirmed diagnosis <strong>" not in page
    sent = browser.post(
        f"/jobs/{job['id']}/rows/1/confirmed-diagnosis",
        data={"diagnosis": truth, "basis": "histology", "csrf_token": csrf(browser, f"/jobs/{job['id']}")},
    )
    assert sent.status_code == 303
    page = browser.get(sent.headers["Location"]).get_data(as_text=True)
    assert "The confirmed diagnosis is recorded." in page
    shown = re.search(r'<p class="supplied" id="confirmed-[^"]+">(.*?)</p>', page, re.S)
    assert shown, page
    words = " ".join(re.sub(r"<[^>]+>", " ", shown.group(1)).split())
    assert words.startswith(f"Confirmed diagnosis {truth} ({'malignant' if truth == 'M' else 'benign'}) by histology")
    assert clinician.email in words and words.endswith("≠ the model’s answer differs.")
    assert "Correct the confirmed diagnosis" in page and 'value="histology" required checked' in page

    api = clinician.client(app).get(f"/api/v1/jobs/{job['id']}/rows/1/confirmed-diagnosis").get_json()
    assert {k: api[k] for k in ("diagnosis", "basis", "answered", "agrees", "trained_on", "recorded_by")} == {
        "diagnosis": truth,
        "basis": "histology",
        "answered": answered,
        "agrees": False,
        "trained_on": False,
        "recorded_by": clinician.email,
    }
    missed = "fn" if truth == "M" else "fp"
    assert _moved(before, _against(admin)) == {"rows": 1, "confirmed_rows": 1, missed: 1}

    # Corrected through the API: the figures follow, and the trail says what it replaced.
    corrected = clinician.client(app).put(
        f"/api/v1/jobs/{job['id']}/rows/1/confirmed-diagnosis", json={"diagnosis": answered, "basis": "cytology"}
    )
    assert corrected.status_code == 200 and corrected.get_json()["agrees"] is True
    hit = "tp" if answered == "M" else "tn"
    assert _moved(before, _against(admin)) == {"rows": 1, "confirmed_rows": 1, hit: 1}
    page = browser.get(f"/jobs/{job['id']}").get_data(as_text=True)
    assert "by cytology, recorded" in page and "the model’s answer agrees." in page

    withdrawn = browser.post(
        f"/jobs/{job['id']}/rows/1/confirmed-diagnosis/withdraw",
        data={"csrf_token": csrf(browser, f"/jobs/{job['id']}")},
    )
    assert withdrawn.status_code == 303
    assert clinician.client(app).get(f"/api/v1/jobs/{job['id']}/rows/1/confirmed-diagnosis").status_code == 404
    assert _moved(before, _against(admin)) == {}
    assert "When the diagnosis is confirmed" in browser.get(f"/jobs/{job['id']}").get_data(as_text=True)

    trail = _trail(service_env, job["id"])
    assert any("case.confirm" in line and f"row 1: {truth} by histology" in line for line in trail), trail
    assert any(f"row 1: {answered} by cytology (was {truth} by histology)" in line for line in trail), trail
    assert any("case.unconfirm" in line and f"row 1: {answered} by cytology withdrawn" in line for line in trail)


def test_a_training_row_confirmed_later_is_counted_apart(app, worker, people):
    admin = people["admin"].client(app)
    clinician = people["clinician"].client(app)
    job = _scored(clinician, _wdbc_case(trained=True))
    before = _against(admin)
    found = clinician.put(
        f"/api/v1/jobs/{job['id']}/rows/1/confirmed-diagnosis", json={"diagnosis": "M", "basis": "follow-up"}
    )
    assert found.status_code == 200 and found.get_json()["trained_on"] is True
    assert _moved(before, _against(admin)) == {"training_rows": 1}


def test_a_file_rows_confirmed_diagnosis_stands_in_for_the_supplied_one_until_the_job_is_removed(
    app, client, finished, people, pg_url
):
    admin = people["admin"].client(app)
    job = finished(post_upload(client, wdbc_csv(slice(0, 40)), model="wdbc-rf4").get_json()["id"])
    rows = client.get(f"/api/v1/jobs/{job['id']}/results").get_json()["results"]
    X, _ = wdbc()
    held_out = [h not in TRAINED for h in row_hashes(X[:40, [FEATURES.index(f) for f in RF4]])]
    row = next(r for r, out in zip(rows, held_out, strict=True) if out)  # not a training row; it has a diagnosis
    other = "B" if row["supplied_diagnosis"] == "M" else "M"
    before = _against(admin)
    path = f"/api/v1/jobs/{job['id']}/rows/{row['row']}/confirmed-diagnosis"
    assert client.put(path, json={"diagnosis": other, "basis": "histology"}).status_code == 200
    cell = {("M", "M"): "tp", ("M", "B"): "fn", ("B", "B"): "tn", ("B", "M"): "fp"}
    moved = _moved(before, _against(admin))
    assert moved.pop("confirmed_rows") == 1
    assert moved == {cell[row["supplied_diagnosis"], row["diagnosis"]]: -1, cell[other, row["diagnosis"]]: 1}

    assert admin.post(f"/api/v1/jobs/{job['id']}/purge").status_code == 200
    assert client.get(path).status_code == 410
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        left = conn.execute(text("SELECT count(*) FROM confirmed_diagnoses WHERE job_id = :id"), {"id": job["id"]})
        assert left.scalar_one() == 0
    engine.dispose()


def _bad_row_file() -> bytes:
    header, *rows = wdbc_csv(slice(0, 5)).decode().splitlines()
    cells = rows[2].split(",")
    cells[2] = "abc"  # radius_mean of row 3
    rows[2] = ",".join(cells)
    return ("\n".join([header, *rows]) + "\n").encode()


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"diagnosis": "X", "basis": "histology"}, 'diagnosis: must be "M" (malignant) or "B" (benign)'),
        ({"diagnosis": "M", "basis": "biopsy"}, "basis: must be one of histology, cytology, follow-up"),
        ({"diagnosis": "m", "basis": "histology"}, 'diagnosis: must be "M" (malignant) or "B" (benign)'),
        (["M", "histology"], 'diagnosis: must be "M" (malignant) or "B" (benign)'),
    ],
)
def test_a_confirmed_diagnosis_must_say_m_or_b_and_what_confirmed_it(app, worker, people, body, problem):
    clinician = people["clinician"].client(app)
    job = _scored(clinician, _wdbc_case(trained=False))
    answer = clinician.put(f"/api/v1/jobs/{job['id']}/rows/1/confirmed-diagnosis", json=body)
    assert answer.status_code == 422 and problem in answer.get_json()["problems"]
    assert clinician.get(f"/api/v1/jobs/{job['id']}/rows/1/confirmed-diagnosis").status_code == 404


def test_only_a_scored_row_of_a_job_you_may_see_takes_a_confirmed_diagnosis(app, client, finished, people):
    clinician = people["clinician"].client(app)
    case = _scored(clinician, _wdbc_case(trained=False))
    body = {"diagnosis": "B", "basis": "histology"}

    def put(who: Any, job_id: str, row: int) -> Any:
        return who.put(f"/api/v1/jobs/{job_id}/rows/{row}/confirmed-diagnosis", json=body)

    assert put(clinician, case["id"], 2).status_code == 404  # a single case has one row
    assert put(clinician, case["id"], 2**40).status_code == 404
    assert put(people["lab"].client(app), case["id"], 1).status_code == 404  # someone else's, as a missing one
    assert put(app.test_client(), case["id"], 1).status_code == 401

    upload = finished(post_upload(client, _bad_row_file(), model="wdbc-rf4").get_json()["id"])
    assert upload["status"] == "succeeded" and upload["rows_rejected"] == 1
    refused = put(client, upload["id"], 3)
    assert refused.status_code == 409 and "row 3 was not scored" in refused.get_json()["error"]
    assert put(client, upload["id"], 2).status_code == 200
    assert put(people["admin"].client(app), upload["id"], 2).get_json()["recorded_by"] == people["admin"].email

    browser = sign_in(app, people["clinician"].email, people["clinician"].password)
    no_basis = browser.post(
        f"/jobs/{case['id']}/rows/1/confirmed-diagnosis",
        data={"diagnosis": "B", "csrf_token": csrf(browser, f"/jobs/{case['id']}")},
    )
    assert no_basis.status_code == 422 and "basis: must be one of" in no_basis.get_data(as_text=True)
    assert clinician.get(f"/api/v1/jobs/{case['id']}/rows/1/confirmed-diagnosis").status_code == 404


def test_a_read_only_token_cannot_record_a_confirmed_diagnosis(app, worker, people):
    person = people["clinician"]
    job = _scored(person.client(app), _wdbc_case(trained=False))
    browser = sign_in(app, person.email, person.password)
    made = browser.post("/account/tokens", data={"name": "reader", "days": "30", "may": "read",
                                                 "csrf_token": csrf(browser)})  # fmt: skip
    plain = re.search(r'<code id="token-value">([^<]+)</code>', made.get_data(as_text=True)).group(1)
    reader = app.test_client()
    reader.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {plain}"
    path = f"/api/v1/jobs/{job['id']}/rows/1/confirmed-diagnosis"
    refused = reader.put(path, json={"diagnosis": "B", "basis": "histology"})
    assert refused.status_code == 403 and "this token may only read" in refused.get_json()["error"]
    assert reader.get(path).status_code == 404  # nothing was recorded
