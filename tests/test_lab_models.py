"""A model for each upload: the best that fits when none is named, a refusal naming the missing columns, a rescore
of the stored input with another model, the rows where two jobs on the same input differ, and which of the two is
right where a row's diagnosis is known."""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
import openpyxl
import pytest
from scipy.stats import binomtest

from shared.features import FEATURES
from shared.modelstore import load_model, row_hashes
from shared.settings import ROOT
from testkit.support import case_ids, wdbc, wdbc_csv
from tests.support import post_upload, without_diagnosis

RF4 = ["radius_mean", "texture_mean", "smoothness_mean", "compactness_mean"]


def csv_of(columns: list[str], rows: slice = slice(0, 40)) -> bytes:
    X, y = wdbc()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", *columns, "diagnosis"])
    for case, values, label in zip(case_ids(len(y))[rows], X[rows], y[rows], strict=True):
        writer.writerow([case, *(repr(float(values[FEATURES.index(c)])) for c in columns), label])
    return out.getvalue().encode()


def answers(settings, name: str, rows: slice) -> list[str]:
    model = load_model(name, settings.models_dir)
    X, _ = wdbc()
    labels, _ = model.diagnose(X[rows][:, [FEATURES.index(f) for f in model.features]])
    return [str(v) for v in labels]


@pytest.mark.parametrize(("columns", "chosen"), [(list(FEATURES), "wdbc-rf30"), (RF4, "wdbc-rf4")])
def test_an_upload_naming_no_model_is_scored_with_the_best_model_its_columns_fit(client, finished, columns, chosen):
    response = post_upload(client, csv_of(columns))
    assert response.status_code == 202, response.get_json()
    job = finished(response.get_json()["id"])
    assert job["status"] == "succeeded" and job["model"]["name"] == chosen


def test_the_server_rule_picks_the_best_held_out_roc_auc_among_fitting_models(client):
    models = {m["name"]: m for m in client.get("/api/v1/models").get_json()["models"]}
    assert models["wdbc-rf30"]["metrics"]["roc_auc"] > models["wdbc-rf4"]["metrics"]["roc_auc"]


def test_a_file_lacking_the_chosen_models_columns_is_refused_with_the_missing_columns(client):
    response = post_upload(client, csv_of(RF4), model="wdbc-rf30")
    assert response.status_code == 422
    problems = " ".join(response.get_json()["problems"])
    assert "missing required columns" in problems
    for feature in ("perimeter_mean", "area_mean", "fractal_dimension_worst"):
        assert feature in problems
    assert "radius_mean," not in problems.split("missing required columns:")[1]


def test_rescore_scores_the_stored_input_with_another_model_and_lists_the_rows_that_differ(client, finished, settings):
    first = finished(post_upload(client, wdbc_csv(), model="wdbc-rf4").get_json()["id"])
    assert first["model"]["name"] == "wdbc-rf4"
    page = client.get(f"/jobs/{first['id']}").get_data(as_text=True)
    assert "A better model fits this file" in page and "Rescore with wdbc-rf30" in page

    response = client.post(f"/api/v1/jobs/{first['id']}/rescore", json={"model": "wdbc-rf30"})
    assert response.status_code == 202, response.get_json()
    second = finished(response.get_json()["id"])
    assert second["status"] == "succeeded" and second["model"]["name"] == "wdbc-rf30"
    assert second["input"]["sha256"] == first["input"]["sha256"] and second["rows_total"] == 569

    rf4, rf30 = answers(settings, "wdbc-rf4", slice(None)), answers(settings, "wdbc-rf30", slice(None))
    expected = [i + 1 for i in range(569) if rf4[i] != rf30[i]]
    assert expected, "the two bundled models disagree on some WDBC rows"

    compared = client.get(f"/api/v1/jobs/{first['id']}/compare/{second['id']}").get_json()
    assert (compared["compared"], compared["differing"]) == (569, len(expected))
    assert [r["row"] for r in compared["rows"]] == expected
    assert all(r["first_diagnosis"] == rf4[r["row"] - 1] and r["second_diagnosis"] == rf30[r["row"] - 1]
               for r in compared["rows"])  # fmt: skip

    exported = client.get(f"/api/v1/jobs/{first['id']}/compare/{second['id']}?format=csv")
    assert exported.status_code == 200 and "attachment" in exported.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    assert [int(r["row"]) for r in rows] == expected
    assert {r["first_model"] for r in rows} == {"wdbc-rf4"} and {r["second_model"] for r in rows} == {"wdbc-rf30"}

    compare_page = client.get(f"/jobs/{first['id']}/compare/{second['id']}").get_data(as_text=True)
    assert f"The answers differ in <strong>{len(expected)}</strong> of 569 rows" in compare_page
    # The better model's own job offers nothing better; both pages link the comparison.
    assert "A better model fits this file" not in client.get(f"/jobs/{second['id']}").get_data(as_text=True)


def _trained(name: str) -> np.ndarray:
    """For each bundled WDBC row, whether it was one of the model's training rows (by the hashes its card lists)."""
    card = json.loads((ROOT / "models" / f"{name}.json").read_text())
    X, _ = wdbc()
    hashes = frozenset(card["training_rows"]["hashes"])
    return np.array([h in hashes for h in row_hashes(X[:, [FEATURES.index(f) for f in card["features"]]])])


def test_two_jobs_are_compared_against_the_known_diagnoses_confirmed_on_either(client, finished, settings):
    first = finished(post_upload(client, wdbc_csv(), model="wdbc-rf4").get_json()["id"])
    second = finished(client.post(f"/api/v1/jobs/{first['id']}/rescore", json={"model": "wdbc-rf30"}).get_json()["id"])
    rf4, rf30 = answers(settings, "wdbc-rf4", slice(None)), answers(settings, "wdbc-rf30", slice(None))
    differing = [i for i in range(569) if rf4[i] != rf30[i]]
    _, y = wdbc()
    known = [str(v) for v in y]
    other = {"M": "B", "B": "M"}

    # Histology on the first job corrects one differing row's file diagnosis; the second job confirms another's;
    # a third row is confirmed differently on each job, so it counts for neither.
    corrected, agreed, disputed = differing[:3]
    for job, row, diagnosis in [(first, corrected, other[known[corrected]]), (second, agreed, known[agreed]),
                                (first, disputed, "M"), (second, disputed, "B")]:  # fmt: skip
        sent = client.put(f"/api/v1/jobs/{job['id']}/rows/{row + 1}/confirmed-diagnosis",
                          json={"diagnosis": diagnosis, "basis": "histology"})  # fmt: skip
        assert sent.status_code == 200, sent.get_json()
    known[corrected] = other[known[corrected]]
    counted = [i for i in range(569) if i != disputed]
    trained = _trained("wdbc-rf4") | _trained("wdbc-rf30")

    def paired(rows: list[int]) -> dict[str, object]:
        right4 = [rf4[i] == known[i] for i in rows]
        right30 = [rf30[i] == known[i] for i in rows]
        only4 = sum(a and not b for a, b in zip(right4, right30, strict=True))
        only30 = sum(b and not a for a, b in zip(right4, right30, strict=True))
        return {"rows": len(rows), "first": sum(right4), "second": sum(right30), "only_first_right": only4,
                "only_second_right": only30, "mcnemar_p": binomtest(only4, only4 + only30).pvalue}  # fmt: skip

    got = client.get(f"/api/v1/jobs/{first['id']}/compare/{second['id']}").get_json()["against_known"]
    held_out = [i for i in counted if not trained[i]]
    assert (got["reference"], got["confirmed_rows"], got["conflicting_rows"]) == ("confirmed or supplied", 2, 1)
    assert (got["training_rows"], got["unchecked_rows"]) == (len(counted) - len(held_out), 0) and held_out
    for block, rows in [("all", counted), ("not_in_training", held_out)]:
        figures = got[block]
        assert {key: figures[key]["numerator"] if key in ("first", "second") else figures[key]
                for key in paired(rows)} == pytest.approx(paired(rows))  # fmt: skip
        assert figures["first"]["denominator"] == len(rows) and figures["first"]["ci_low"] < figures["first"]["value"]

    page = client.get(f"/jobs/{first['id']}/compare/{second['id']}").get_data(as_text=True)
    expected = paired(held_out)
    assert re.search(rf"wdbc-rf4 [^<]*\(<code>{first['id'][:8]}</code>\)</th>\s*<td class=\"num\">"
                     rf"{expected['first']} / {len(held_out)}</td>", page)  # fmt: skip
    assert "1 row has a different confirmed diagnosis on each job, and is left out." in page
    assert "Rows neither model was trained on" in page and "McNemar’s exact test of the" in page
    shown = dict(re.findall(r'<td data-label="Row">(\d+)</td>.*?<td data-label="Confirmed">([^<]*)</td>', page, re.S))
    assert (shown[str(corrected + 1)], shown[str(agreed + 1)]) == (known[corrected], known[agreed])
    assert shown[str(disputed + 1)] == "M on the first, B on the second"

    exported = client.get(f"/api/v1/jobs/{first['id']}/compare/{second['id']}?format=csv")
    rows = {int(r["row"]): r for r in csv.DictReader(io.StringIO(exported.get_data(as_text=True)))}
    confirmed = [(rows[i + 1]["first_confirmed_diagnosis"], rows[i + 1]["second_confirmed_diagnosis"])
                 for i in (corrected, agreed, disputed)]  # fmt: skip
    assert confirmed == [(known[corrected], ""), ("", known[agreed]), ("M", "B")]

    # The other way round, the first job is the other one: the figures swap, nothing else moves.
    back = client.get(f"/api/v1/jobs/{second['id']}/compare/{first['id']}").get_json()["against_known"]
    assert (back["all"]["first"], back["all"]["only_first_right"]) == (
        got["all"]["second"],
        got["all"]["only_second_right"],
    )


def test_a_comparison_without_any_known_diagnosis_says_how_to_get_one(client, finished):
    content = without_diagnosis(wdbc_csv(slice(0, 30)))
    first = finished(post_upload(client, content, model="wdbc-rf4").get_json()["id"])
    second = finished(client.post(f"/api/v1/jobs/{first['id']}/rescore", json={"model": "wdbc-rf30"}).get_json()["id"])
    assert client.get(f"/api/v1/jobs/{first['id']}/compare/{second['id']}").get_json()["against_known"] is None
    page = client.get(f"/jobs/{first['id']}/compare/{second['id']}").get_data(as_text=True)
    assert "No row both jobs answered has a known diagnosis." in page

    # One confirmation on the second job, of a row its model was not trained on: whether the first model was is
    # unknown, since the first job's row had no diagnosis to check it for.
    row = 1 + next(i for i in range(30) if not _trained("wdbc-rf30")[i])
    assert client.put(f"/api/v1/jobs/{second['id']}/rows/{row}/confirmed-diagnosis",
                      json={"diagnosis": "M", "basis": "histology"}).status_code == 200  # fmt: skip
    got = client.get(f"/api/v1/jobs/{first['id']}/compare/{second['id']}").get_json()["against_known"]
    assert (got["reference"], got["all"]["rows"], got["unchecked_rows"]) == ("confirmed", 1, 1)


def test_rescore_refuses_a_model_whose_columns_the_stored_input_lacks(client, finished):
    job = finished(post_upload(client, csv_of(RF4)).get_json()["id"])
    response = client.post(f"/api/v1/jobs/{job['id']}/rescore", json={"model": "wdbc-rf30"})
    assert response.status_code == 422
    assert "missing required columns" in " ".join(response.get_json()["problems"])
    assert "A better model fits this file" not in client.get(f"/jobs/{job['id']}").get_data(as_text=True)


def test_jobs_on_different_inputs_are_not_compared(client, finished):
    a = finished(post_upload(client, csv_of(RF4, slice(0, 5))).get_json()["id"])
    b = finished(post_upload(client, csv_of(RF4, slice(5, 10))).get_json()["id"])
    assert client.get(f"/api/v1/jobs/{a['id']}/compare/{b['id']}").status_code == 409


def test_someone_elses_job_cannot_be_rescored(app, client, finished, people):
    job = finished(post_upload(client, csv_of(RF4, slice(0, 3))).get_json()["id"])
    other = people["admin"].client(app)  # the admin sees every job; a clinician may not upload at all
    assert other.post(f"/api/v1/jobs/{job['id']}/rescore", json={}).status_code == 202
    clinician = people["clinician"].client(app)
    assert clinician.post(f"/api/v1/jobs/{job['id']}/rescore", json={}).status_code == 404


def test_a_workbook_naming_no_model_gets_the_best_fit_and_can_be_rescored(client, finished):
    X, y = wdbc()
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["id", "diagnosis", *FEATURES])
    for i in range(40):
        sheet.append([f"W{i}", str(y[i]), *(float(v) for v in X[i])])
    out = io.BytesIO()
    book.save(out)
    job = finished(post_upload(client, out.getvalue(), "cases.xlsx").get_json()["id"])
    assert job["status"] == "succeeded" and job["model"]["name"] == "wdbc-rf30"
    again = client.post(f"/api/v1/jobs/{job['id']}/rescore?wait=30", json={"model": "wdbc-rf4"})
    assert again.status_code == 201, again.get_json()
    assert again.get_json()["model"]["name"] == "wdbc-rf4" and again.get_json()["rows_scored"] == 40
    validation = client.get(f"/api/v1/jobs/{job['id']}/validation").get_json()["validation"]
    assert validation["all"]["rows"] == 40
