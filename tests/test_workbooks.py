"""XLSX uploads: stored as sent, then read once by the worker (calamine), checked whole, counted, and scored."""

from __future__ import annotations

import io

import openpyxl

from shared.features import FEATURES
from testkit.support import wdbc
from tests.support import post_upload

RF4 = ["radius_mean", "texture_mean", "smoothness_mean", "compactness_mean"]


def _workbook(header: list[str], rows: list[list[object]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "cases"
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_a_workbook_is_scored_exactly_as_the_same_rows_in_csv(client, finished):
    X, y = wdbc()
    rows = [[f"W{i}", str(y[i]), *(float(v) for v in X[i])] for i in range(50)]
    sheet = _workbook(["id", "diagnosis", *FEATURES], rows)
    lines = ["id,diagnosis," + ",".join(FEATURES), *(",".join([r[0], r[1], *map(repr, r[2:])]) for r in rows)]
    csv = ("\n".join(lines) + "\n").encode()
    from_xlsx = post_upload(client, sheet, "cases.xlsx", model="wdbc-rf30")
    from_csv = post_upload(client, csv, "cases.csv", model="wdbc-rf30")
    assert from_xlsx.status_code == from_csv.status_code == 202
    job = finished(from_xlsx.get_json()["id"])
    assert (job["status"], job["rows_total"], job["rows_scored"], job["input"]["format"]) == (
        "succeeded",
        50,
        50,
        "xlsx",
    )
    finished(from_csv.get_json()["id"])
    fields = ("row", "case_id", "diagnosis", "probability_malignant", "supplied_diagnosis", "error")
    results = [
        client.get(f"/api/v1/jobs/{r.get_json()['id']}/results").get_json()["results"] for r in (from_xlsx, from_csv)
    ]
    assert [[rec[f] for f in fields] for rec in results[0]] == [[rec[f] for f in fields] for rec in results[1]]


def test_a_workbook_missing_a_column_fails_its_job_naming_the_column(client, finished):
    X, _ = wdbc()
    sheet = _workbook(
        ["id", *RF4[:3]], [[f"M{i}", *(float(X[i, FEATURES.index(f)]) for f in RF4[:3])] for i in range(5)]
    )
    response = post_upload(client, sheet, "three-columns.xlsx")
    assert response.status_code == 202  # stored as sent: the sheet is read by the worker
    job = finished(response.get_json()["id"])
    assert job["status"] == "failed" and "missing required columns: compactness_mean" in job["error"]
    assert client.get(f"/api/v1/jobs/{job['id']}/results").status_code == 409


def test_a_damaged_workbook_is_still_refused_at_once(client):
    sheet = _workbook(["id", *RF4], [["a", 1.0, 2.0, 0.1, 0.1]])
    response = post_upload(client, sheet[: len(sheet) // 2], "damaged.xlsx")
    assert response.status_code == 422
    assert "damaged or truncated" in " ".join(response.get_json()["problems"])
