"""A case's diagnosis confirmed later (histology, say): recorded on the case's page or through the API by whoever
may see the job, shown beside the answer, corrected and withdrawn with an audit trail, counted in the model's
figures of use (its training rows apart), and refused where there is no answer to check."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from shared.features import FEATURES
from shared.modelstore import row_hashes
from shared.settings import ROOT
from testkit.support import RF4, run_cli, wdbc, wdbc_csv
from tests.support import csrf, post_upload, sign_in, wait_for_job, without_diagnosis

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


def _recent_confirmed(browser: Any, job: dict[str, Any]) -> str:
    """What the home page's recent cases say of the case's confirmed diagnosis."""
    page = browser.get("/").get_data(as_text=True)
    row = re.search(rf'<tr>\s*<td data-label="Case"><a href="/jobs/{job["id"]}">.*?</tr>', page, re.S)
    assert row, page
    cell = re.search(r'<td data-label="Confirmed">(.*?)</td>', row.group(0), re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", cell.group(1)).split()).replace(" :", ":")


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
    assert _recent_confirmed(browser, job) == "Not yet: record it"
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
    assert _recent_confirmed(browser, job) == f"{truth} ≠ differs"  # the home page's list of recent cases

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
    assert _recent_confirmed(browser, job) == f"{answered} (agrees)"

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


def test_a_lab_pastes_the_confirmed_diagnoses_of_a_file_and_sees_them_on_its_page(parts_app, worker, people):
    lab, admin = people["lab"], people["admin"].client(parts_app)
    client = lab.client(parts_app)
    job = wait_for_job(client, post_upload(client, without_diagnosis(wdbc_csv()), model="wdbc-rf4").get_json()["id"])
    assert job["status"] == "succeeded" and job["rows_total"] == 569
    results = client.get(f"/api/v1/jobs/{job['id']}/results").get_json()["results"]
    X, y = wdbc()
    trained = [h in TRAINED for h in row_hashes(X[:, [FEATURES.index(f) for f in RF4]])]
    truth = list(y)
    # Rows from the file's first and last parts (64 kB each here), named by case id as the lab's sheet has them.
    picked = [0, 1, 300, 568]
    assert {trained[i] for i in picked} == {True, False}
    words = {"M": "malignant", "B": "B"}
    pasted = "id\tdiagnosis\r\n" + "".join(f"{results[i]['case_id']}\t{words[truth[i]]}\r\n" for i in picked)
    before = _against(admin)

    browser = sign_in(parts_app, lab.email, lab.password)
    sent = browser.post(
        f"/jobs/{job['id']}/confirmed-diagnoses",
        data={"pasted": pasted, "basis": "histology", "csrf_token": csrf(browser, f"/jobs/{job['id']}")},
    )
    assert sent.status_code == 303, sent.get_data(as_text=True)[-3000:]
    page = browser.get(sent.headers["Location"]).get_data(as_text=True)
    assert "4 confirmed diagnoses are recorded." in page
    differs = sum(results[i]["diagnosis"] != truth[i] for i in picked)
    count = re.search(r'<p id="confirmed-count">(.*?)</p>', page, re.S).group(1)
    assert " ".join(re.sub(r"<[^>]+>", " ", count).split()).startswith(
        f"4 rows have a diagnosis confirmed after scoring; the model’s answer differs on {differs}"
    )
    assert f"Confirmed {truth[0]} by histology" in page  # row 1 is on the first page of the rows

    for i in picked:
        found = client.get(f"/api/v1/jobs/{job['id']}/rows/{i + 1}/confirmed-diagnosis").get_json()
        assert (found["diagnosis"], found["basis"], found["trained_on"]) == (truth[i], "histology", trained[i])
    held_out = [i for i in picked if not trained[i]]
    cells = {("M", "M"): "tp", ("M", "B"): "fn", ("B", "B"): "tn", ("B", "M"): "fp"}
    expected: dict[str, int] = {"rows": len(held_out), "confirmed_rows": len(held_out)}
    expected["training_rows"] = len(picked) - len(held_out)
    for i in held_out:
        cell = cells[truth[i], results[i]["diagnosis"]]
        expected[cell] = expected.get(cell, 0) + 1
    assert _moved(before, _against(admin)) == expected


def test_a_paste_with_any_problem_records_nothing_and_says_why_by_line(app, client, finished, people):
    lab = people["lab"]
    job = finished(post_upload(client, without_diagnosis(_bad_row_file()), model="wdbc-rf4").get_json()["id"])
    ids = [r["case_id"] for r in client.get(f"/api/v1/jobs/{job['id']}/results").get_json()["results"]]
    browser = sign_in(app, lab.email, lab.password)

    def paste(text_: str, basis: str = "histology") -> tuple[int, str]:
        token = csrf(browser, f"/jobs/{job['id']}")
        sent = browser.post(f"/jobs/{job['id']}/confirmed-diagnoses",
                            data={"pasted": text_, "basis": basis, "csrf_token": token})  # fmt: skip
        return sent.status_code, sent.get_data(as_text=True)

    pasted = f"diagnosis,id\nM,{ids[0]}\nmaybe,{ids[1]}\nB,{ids[2]}\nB,no-such-case\nB,{ids[0]}\n"
    status, page = paste(pasted)
    assert status == 422
    problems = re.findall(r"<li>(.*?)</li>", re.search(r'id="confirm-problems">(.*?)</div>', page, re.S).group(1))
    assert [p.replace("&#39;", "'").replace("&#34;", '"') for p in problems] == [
        'line 3: diagnosis \'maybe\' is not "M" (malignant) or "B" (benign)',
        "line 4: row 3 was not scored (radius_mean 'abc': is not a number): there is no answer to check",
        "line 5: case id 'no-such-case' is not the case id of any row of this job",
        "line 6: row 1 was given already, on line 2",
    ]
    assert "Nothing was recorded: 4 problems, listed under Confirmed diagnoses." in page  # at the top of the page
    assert f"M,{ids[0]}" in page  # the paste is kept, to be put right
    assert "No row has a confirmed diagnosis yet." in page

    status, page = paste(f"id,diagnosis\n{ids[0]},M\n", basis="")
    assert status == 422 and "basis: must be one of histology, cytology, follow-up" in page
    status, page = paste(f"{ids[0]},M\n{ids[1]},B\n")
    assert status == 422 and "the header row needs a diagnosis column and either a case id (id) or a row column" in page
    results_csv = client.get(f"/api/v1/jobs/{job['id']}/results?format=csv").get_data(as_text=True)
    status, page = paste(results_csv)
    assert status == 422 and "these are cytoscore&#39;s results: their diagnosis column is the model" in page
    assert client.get(f"/api/v1/jobs/{job['id']}/rows/1/confirmed-diagnosis").status_code == 404

    assert paste("row,diagnosis\n1,B\n2,benign\n")[0] == 303
    assert "2 rows have a diagnosis confirmed after scoring" in browser.get(f"/jobs/{job['id']}").get_data(as_text=True)


def test_the_api_records_several_rows_by_number_or_case_id_all_or_none(app, client, finished):
    content = wdbc_csv(slice(0, 3)).decode().replace("\n000002,", "\n000001,")  # one case id on two rows
    job = finished(post_upload(client, content.encode(), model="wdbc-rf4").get_json()["id"])
    path = f"/api/v1/jobs/{job['id']}/confirmed-diagnoses"

    refused = client.post(path, json={"basis": "cytology", "diagnoses": [
        {"row": 3, "diagnosis": "B"}, {"case_id": "000001", "diagnosis": "M"}, {"row": 9, "diagnosis": "M"},
        "M", {"row": True, "diagnosis": "M"}, {"row": 2, "case_id": "000003", "diagnosis": "B"}]})  # fmt: skip
    assert refused.status_code == 422
    assert refused.get_json()["problems"] == [
        "diagnoses[1]: case id '000001' is on rows 1 and 2: give the row number",
        "diagnoses[2]: row 9 is not a row of this job (1 to 3)",
        'diagnoses[3]: diagnosis None is not "M" (malignant) or "B" (benign)',
        "diagnoses[4]: row True is not a row of this job (1 to 3)",
        "diagnoses[5]: case id '000003' is on row 3, not row 2",
    ]
    assert client.get(f"/api/v1/jobs/{job['id']}/rows/3/confirmed-diagnosis").status_code == 404

    twice = [{"row": 3, "diagnosis": "B"}, {"row": 2, "diagnosis": "M"}, {"case_id": "000003", "diagnosis": "M"}]
    ok = client.post(path, json={"basis": "cytology", "diagnoses": twice})
    assert ok.status_code == 422
    assert ok.get_json()["problems"] == ["diagnoses[2]: row 3 was given already, on diagnoses[0]"]
    ok = client.post(path, json={"basis": "cytology", "diagnoses": [
        {"row": 2, "diagnosis": "M"}, {"case_id": "000003", "diagnosis": "M"}]})  # fmt: skip
    assert ok.status_code == 200 and ok.get_json() == {"recorded": 2}
    assert client.get(f"/api/v1/jobs/{job['id']}/rows/3/confirmed-diagnosis").get_json()["diagnosis"] == "M"
    assert client.post(path, json={"basis": "cytology"}).status_code == 422


def test_the_results_carry_the_confirmed_diagnosis_and_a_filter_keeps_the_rows_it_contradicts(app, client, finished):
    job = finished(post_upload(client, without_diagnosis(wdbc_csv(slice(0, 10))), model="wdbc-rf4").get_json()["id"])
    said = [r["diagnosis"] for r in client.get(f"/api/v1/jobs/{job['id']}/results").get_json()["results"]]
    other = {"M": "B", "B": "M"}
    for row, diagnosis, basis in [(2, said[1], "histology"), (5, other[said[4]], "follow-up")]:
        sent = client.put(f"/api/v1/jobs/{job['id']}/rows/{row}/confirmed-diagnosis",
                          json={"diagnosis": diagnosis, "basis": basis})  # fmt: skip
        assert sent.status_code == 200

    def download(show: str) -> list[dict[str, str]]:
        answer = client.get(f"/api/v1/jobs/{job['id']}/results?format=csv&show={show}")
        assert answer.status_code == 200
        return list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))

    confirmed = {int(r["row"]): (r["confirmed_diagnosis"], r["confirmed_basis"]) for r in download("all")}
    assert confirmed == {n: ("", "") for n in range(1, 11)} | {
        2: (said[1], "histology"),
        5: (other[said[4]], "follow-up"),
    }
    assert [(int(r["row"]), r["diagnosis"], r["confirmed_diagnosis"]) for r in download("confirmed-differs")] == [
        (5, said[4], other[said[4]])
    ]
    records = client.get(f"/api/v1/jobs/{job['id']}/results").get_json()["results"]
    assert (records[4]["confirmed_diagnosis"], records[4]["confirmed_basis"]) == (other[said[4]], "follow-up")
    assert records[0]["confirmed_diagnosis"] is None

    page = client.get(f"/jobs/{job['id']}").get_data(as_text=True)
    assert "Differs from the confirmed diagnosis (1)" in page and f"/jobs/{job['id']}?show=confirmed-differs" in page
    shown = client.get(f"/jobs/{job['id']}?show=confirmed-differs").get_data(as_text=True)
    assert re.findall(r'<tr class="([^"]*)">\s*<td data-label="Row">(\d+)</td>', shown) == [("differs", "5")]


def test_a_rescored_job_brings_the_confirmed_diagnoses_of_the_job_on_the_same_file(
    app, client, finished, people, service_env
):
    header, *rows = wdbc_csv(slice(0, 5)).decode().splitlines()
    cells = rows[2].split(",")
    cells[header.split(",").index("area_worst")] = "abc"  # wdbc-rf30 reads it, wdbc-rf4 does not
    rows[2] = ",".join(cells)
    content = without_diagnosis(("\n".join([header, *rows]) + "\n").encode())
    first = finished(post_upload(client, content, model="wdbc-rf4").get_json()["id"])
    assert first["rows_rejected"] == 0
    path = f"/api/v1/jobs/{first['id']}/confirmed-diagnoses"
    assert client.post(path, json={"basis": "histology", "diagnoses": [
        {"row": 1, "diagnosis": "M"}, {"row": 3, "diagnosis": "M"}]}).status_code == 200  # fmt: skip
    assert (
        client.post(path, json={"basis": "follow-up", "diagnoses": [{"row": 2, "diagnosis": "B"}]}).status_code == 200
    )
    rescored = client.post(f"/api/v1/jobs/{first['id']}/rescore", json={"model": "wdbc-rf30"}).get_json()
    second = finished(rescored["id"])
    assert second["rows_rejected"] == 1

    # Its page offers them; row 3, rejected by this model, stops them all.
    lab = people["lab"]
    browser = sign_in(app, lab.email, lab.password)
    page = browser.get(f"/jobs/{second['id']}").get_data(as_text=True)
    assert (
        "on the same file, scored with wdbc-rf4 1.0.0, has 3 confirmed diagnoses" in page and "Bring them here" in page
    )
    sent = browser.post(f"/jobs/{second['id']}/confirmed-diagnoses/copy",
                        data={"source": first["id"], "csrf_token": csrf(browser, f"/jobs/{second['id']}")})  # fmt: skip
    assert sent.status_code == 422
    assert "row 3: row 3 was not scored" in sent.get_data(as_text=True)
    assert client.get(f"/api/v1/jobs/{second['id']}/rows/1/confirmed-diagnosis").status_code == 404

    assert client.delete(f"/api/v1/jobs/{first['id']}/rows/3/confirmed-diagnosis").status_code == 204
    copy = f"/api/v1/jobs/{second['id']}/confirmed-diagnoses/copy"
    assert client.post(copy, json={"source": first["id"]}).get_json() == {"recorded": 2}
    got = {row: client.get(f"/api/v1/jobs/{second['id']}/rows/{row}/confirmed-diagnosis").get_json() for row in (1, 2)}
    assert {row: (g["diagnosis"], g["basis"]) for row, g in got.items()} == {
        1: ("M", "histology"),
        2: ("B", "follow-up"),
    }
    v = client.get(f"/api/v1/jobs/{second['id']}/validation").get_json()["validation"]
    assert (v["reference"], v["confirmed_rows"], v["all"]["rows"]) == ("confirmed", 2, 2)
    trail = _trail(service_env, second["id"])
    assert any(f"from job {first['id']}: row 1: M by histology; row 2: B by follow-up" in line for line in trail)

    other_file = finished(post_upload(client, wdbc_csv(slice(0, 3)), model="wdbc-rf4").get_json()["id"])
    assert client.post(copy, json={"source": other_file["id"]}).status_code == 409
    theirs = _scored(people["clinician"].client(app), _wdbc_case(trained=False))
    assert client.post(copy, json={"source": theirs["id"]}).status_code == 404  # someone else's, as a missing one
    assert client.post(copy, json={"source": second["id"]}).status_code == 409  # itself


def test_a_row_opened_as_a_case_shares_the_rows_confirmed_diagnosis(app, client, finished, people, service_env):
    X, _ = wdbc()
    hashes = row_hashes(X[:20][:, [FEATURES.index(f) for f in RF4]])
    row = 1 + next(i for i, h in enumerate(hashes) if h not in TRAINED)  # counted in the model's figures
    job = finished(post_upload(client, wdbc_csv(slice(0, 20)), model="wdbc-rf4").get_json()["id"])
    result = client.get(f"/api/v1/jobs/{job['id']}/results").get_json()["results"][row - 1]
    answered, supplied = result["diagnosis"], result["supplied_diagnosis"]
    truth = {"M": "B", "B": "M"}[supplied]  # histology says otherwise than the file
    admin = people["admin"].client(app)
    before = _against(admin)

    opened = client.post(f"/api/v1/jobs/{job['id']}/rows/{row}/case?wait=30")
    assert opened.status_code == 201, opened.get_json()
    case = opened.get_json()["id"]
    assert _moved(before, _against(admin)) == {}  # the row scored again is not a second row of the model's use

    sent = client.put(
        f"/api/v1/jobs/{case}/rows/1/confirmed-diagnosis", json={"diagnosis": truth, "basis": "histology"}
    )
    assert sent.status_code == 200, sent.get_json()
    assert (sent.get_json()["job"], sent.get_json()["row"]) == (job["id"], row)
    records = client.get(f"/api/v1/jobs/{job['id']}/results").get_json()["results"]
    assert [r["row"] for r in records if r["confirmed_diagnosis"]] == [row]
    v = client.get(f"/api/v1/jobs/{job['id']}/validation").get_json()["validation"]
    assert (v["confirmed_rows"], v["corrected_rows"]) == (1, 1)
    cell = {("M", "M"): "tp", ("M", "B"): "fn", ("B", "B"): "tn", ("B", "M"): "fp"}
    moved = {"confirmed_rows": 1, cell[supplied, answered]: -1, cell[truth, answered]: 1}
    assert _moved(before, _against(admin)) == moved

    lab = people["lab"]
    browser = sign_in(app, lab.email, lab.password)
    page = browser.get(f"/jobs/{case}").get_data(as_text=True)
    assert f"by {lab.email} on row {row} of the file this case was opened from" in page
    assert f"This case is row {row} of\n      {job['input']['filename']} scored again" in page
    read = client.get(f"/api/v1/jobs/{case}/rows/1/confirmed-diagnosis").get_json()
    assert (read["job"], read["row"], read["diagnosis"]) == (job["id"], row, truth)
    several = client.post(f"/api/v1/jobs/{case}/confirmed-diagnoses",
                          json={"basis": "histology", "diagnoses": [{"row": 1, "diagnosis": "M"}]})  # fmt: skip
    assert several.status_code == 409 and f"row {row} of job {job['id']}" in several.get_json()["error"]

    withdrawn = browser.post(f"/jobs/{case}/rows/1/confirmed-diagnosis/withdraw",
                             data={"csrf_token": csrf(browser, f"/jobs/{case}")})  # fmt: skip
    assert withdrawn.status_code == 303
    assert client.get(f"/api/v1/jobs/{job['id']}/rows/{row}/confirmed-diagnosis").status_code == 404
    assert _moved(before, _against(admin)) == {}
    trail = _trail(service_env, job["id"])
    assert any(f"through case {case}: row {row}: {truth} by histology" in line for line in trail), trail
    assert any(f"through case {case}: row {row}: {truth} by histology withdrawn" in line for line in trail), trail
