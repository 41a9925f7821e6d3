"""What lab staff download: every input column kept, formulas neutralised, numbers kept as numbers."""

from __future__ import annotations

import csv
import gc
import io

import openpyxl
import pytest

from testkit.support import jittered_csv, wdbc, wdbc_csv
from tests.support import post_upload, sign_in

RF4 = ["radius_mean", "texture_mean", "smoothness_mean", "compactness_mean"]


def _sheet(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


@pytest.fixture
def mixed_job(client, finished):
    """Four cases: plain, a formula-looking id and note, a rejected row, a leading-zero id."""
    X, _ = wdbc()
    good = [repr(float(v)) for v in X[0, [0, 1, 4, 5]]]
    rows = [
        ["id", *RF4, "diagnosis", "notes"],
        ["000123", *good, "M", "plain"],
        ['=HYPERLINK("http://x")', *good, "B", "+SUM(A1:A9)"],
        ["r3", "abc", *good[1:], "M", "@cmd"],
        ["-1", *good, "m", "\tTabbed"],
    ]
    job_id = post_upload(client, _sheet(rows), "mixed.csv").get_json()["id"]
    job = finished(job_id)
    assert job["status"] == "succeeded"
    assert (job["rows_scored"], job["rows_rejected"]) == (3, 1)
    return job_id, good


def test_csv_export_keeps_every_input_column_and_neutralises_formulas(client, mixed_job):
    job_id, good = mixed_job
    response = client.get(f"/api/v1/jobs/{job_id}/results?format=csv")
    assert response.status_code == 200 and "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["case_id"] for r in rows] == ["000123", '\'=HYPERLINK("http://x")', "r3", "'-1"]
    assert [r["input:notes"] for r in rows] == ["plain", "'+SUM(A1:A9)", "'@cmd", "'\tTabbed"]
    assert rows[0]["input:radius_mean"] == good[0]  # a number stays exactly as sent
    assert rows[2]["input:radius_mean"] == "abc"
    assert rows[2]["diagnosis"] == "" and "radius_mean" in rows[2]["error"] and "not a number" in rows[2]["error"]
    assert {r["model_name"] for r in rows} == {"wdbc-rf4"} and all(len(r["model_sha256"]) == 64 for r in rows)
    assert all("not a diagnosis" in r["notice"] for r in rows)
    assert [r["supplied_diagnosis"] for r in rows] == ["M", "B", "M", "M"]


def test_xlsx_export_has_numeric_measurements_and_text_ids(client, mixed_job):
    job_id, _ = mixed_job
    response = client.get(f"/api/v1/jobs/{job_id}/results?format=xlsx")
    assert response.status_code == 200
    assert response.content_length == len(response.data) > 0  # a browser shows how much of it has come
    sheet = openpyxl.load_workbook(io.BytesIO(response.data), read_only=True).active
    header, *rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    col = {name: i for i, name in enumerate(header)}
    assert rows[0][col["case_id"]] == "000123"
    assert rows[0][col["input:id"]] == "000123"
    assert rows[1][col["case_id"]].startswith("'=")
    assert isinstance(rows[0][col["input:radius_mean"]], float)
    assert isinstance(rows[0][col["probability_malignant"]], float)
    assert rows[2][col["input:notes"]] == "'@cmd"


def test_xlsx_export_keeps_text_as_text_and_says_where_a_cell_was_cut(client, finished):
    X, _ = wdbc()
    good = [repr(float(v)) for v in X[0, [0, 1, 4, 5]]]
    essay = "Clinical history: " + "nodule, " * 5000  # 40,018 characters: a cell holds 32,767
    rows = [
        ["id", *RF4, "notes"],
        ["c1", *good, "https://example.org/case/1"],
        ["c2", *good, "0042"],
        ["c3", *good, essay],
    ]
    job_id = post_upload(client, _sheet(rows), "notes.csv").get_json()["id"]
    assert finished(job_id)["status"] == "succeeded"

    book = openpyxl.load_workbook(io.BytesIO(client.get(f"/api/v1/jobs/{job_id}/results?format=xlsx").data))
    sheet = book.active
    header = [c.value for c in sheet[1]]
    notes = [sheet.cell(row, header.index("input:notes") + 1) for row in (2, 3, 4)]
    assert (notes[0].value, notes[0].hyperlink) == ("https://example.org/case/1", None)  # text, not a link
    assert (notes[1].value, notes[1].data_type) == ("0042", "s")  # text, not the number 42
    said = "… [cut here: 40,018 characters, more than a cell holds; the CSV has them all]"
    assert len(notes[2].value) == 32_767 and notes[2].value == essay[: 32_767 - len(said)] + said

    exported = client.get(f"/api/v1/jobs/{job_id}/results?format=csv").get_data(as_text=True)
    assert [r["input:notes"] for r in csv.DictReader(io.StringIO(exported))][2] == essay


def test_json_results_carry_the_input_row_as_sent(client, mixed_job):
    job_id, good = mixed_job
    results = client.get(f"/api/v1/jobs/{job_id}/results").get_json()["results"]
    assert results[0]["input"]["id"] == "000123"
    assert results[0]["input"]["radius_mean"] == good[0]
    assert results[1]["case_id"] == '=HYPERLINK("http://x")'  # JSON is data, not a spreadsheet: unchanged


def test_error_report_lists_row_column_value_and_reason(client, mixed_job):
    job_id, _ = mixed_job
    problems = client.get(f"/api/v1/jobs/{job_id}/errors?format=json").get_json()["problems"]
    assert problems == [
        {"row": 3, "case_id": "r3", "column": "radius_mean", "value": "abc", "reason": problems[0]["reason"]}
    ]
    assert "not a number" in problems[0]["reason"]
    report = client.get(f"/api/v1/jobs/{job_id}/errors?format=csv")
    assert report.status_code == 200 and "attachment" in report.headers["Content-Disposition"]
    lines = list(csv.reader(io.StringIO(report.get_data(as_text=True))))
    assert lines[0] == ["row", "case_id", "column", "value", "reason"] and lines[1][:4] == [
        "3",
        "r3",
        "radius_mean",
        "abc",
    ]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
@pytest.mark.parametrize("model", ["wdbc-rf4", "wdbc-rf30"])
def test_a_filled_in_template_is_accepted(client, finished, fmt, model):
    response = client.get(f"/api/v1/models/{model}/template?format={fmt}")
    assert response.status_code == 200 and "attachment" in response.headers["Content-Disposition"]
    features = client.get("/api/v1/models").get_json()["models"]
    features = next(m["features"] for m in features if m["name"] == model)
    X, _ = wdbc()
    from shared.features import FEATURES

    if fmt == "csv":
        header = next(csv.reader(io.StringIO(response.get_data(as_text=True))))
        assert header == ["id", *features, "diagnosis"]
        filled = response.get_data() + _sheet([["t1", *(repr(float(X[5, FEATURES.index(f)])) for f in features), ""]])
    else:
        book = openpyxl.load_workbook(io.BytesIO(response.data))
        sheet = book["cases"]
        assert [c.value for c in sheet[1]] == ["id", *features, "diagnosis"]
        sheet.append(["t1", *(float(X[5, FEATURES.index(f)]) for f in features)])
        out = io.BytesIO()
        book.save(out)
        filled = out.getvalue()
    job = post_upload(client, filled, f"filled.{fmt}", model=model)
    assert job.status_code == 202, job.get_json()
    assert finished(job.get_json()["id"])["rows_scored"] == 1


def test_a_semicolon_file_is_read_and_its_delimiter_named(client, finished):
    text = wdbc_csv(slice(0, 5)).decode().replace(",", ";")
    job_id = post_upload(client, text.encode(), "semi.csv").get_json()["id"]
    job = finished(job_id)
    assert job["status"] == "succeeded" and job["rows_scored"] == 5
    assert job["input"]["delimiter"] == ";"


def test_an_upload_over_the_size_limit_answers_413_with_a_message(app_with, people):
    response = post_upload(people["lab"].client(app_with(max_upload_bytes=1024)), wdbc_csv(), "big.csv")
    assert response.status_code == 413
    assert "limit" in response.get_json()["error"]


def test_agreement_with_a_supplied_diagnosis_is_shown(client, finished):
    job_id = post_upload(client, wdbc_csv(slice(0, 100))).get_json()["id"]
    finished(job_id)
    page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "agrees with the supplied diagnosis in" in page and "of 100" in page


def test_a_decimal_comma_file_exports_numbers_and_a_rejected_value_as_written(client, finished):
    """A semicolon file with decimal commas: its XLSX export holds numbers, not "17,99"; a rejected -0.5 is shown
    as -0.5 (not `'-0.5`); a note holding `;=` is one quoted cell."""
    X, _ = wdbc()
    good = [f"{float(v):.4f}".replace(".", ",") for v in X[0, [0, 1, 4, 5]]]
    text = "id;" + ";".join(RF4) + ";notes\n" + f"a1;{';'.join(good)};plain\n"
    text += f'a2;-0,5;{";".join(good[1:])};"x;=1+1"\n'
    job_id = post_upload(client, text.encode(), "comma.csv").get_json()["id"]
    assert finished(job_id)["rows_rejected"] == 1
    book = client.get(f"/api/v1/jobs/{job_id}/results?format=xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(book.data), read_only=True).active
    header, *rows = list(sheet.iter_rows(values_only=True))
    at = header.index("input:radius_mean")
    assert rows[0][at] == float(good[0].replace(",", ".")) and rows[1][at] == -0.5
    report = client.get(f"/api/v1/jobs/{job_id}/errors?format=csv").get_data(as_text=True)
    assert list(csv.reader(io.StringIO(report)))[1][:4] == ["2", "a2", "radius_mean", "-0,5"]
    exported = client.get(f"/api/v1/jobs/{job_id}/results?format=csv").get_data(as_text=True)
    assert '"x;=1+1"' in exported  # quoted: one cell, whichever separator a spreadsheet's locale expects


@pytest.mark.parametrize(("limit", "said"), [(1024, "1 KiB"), (512 * 1024, "512 KiB"), (3 * 1024 * 1024, "3 MiB")])
def test_the_413_message_names_the_limit_in_readable_units(app_with, people, limit, said):
    response = post_upload(people["lab"].client(app_with(max_upload_bytes=limit)), b"x" * (limit + 10), "big.csv")
    assert response.status_code == 413
    assert f"limit of {said}" in response.get_json()["error"]


def test_a_download_the_reader_stops_early_closes_what_it_read_from(client, finished):
    """A person who cancels a download leaves no server-side cursor open. The rows are read 5,000 at a time, so
    with more than that the cursor is still open when the reader goes; left open, it warns when collected, which
    this suite turns into an error."""
    job_id = post_upload(client, jittered_csv(12_000), "many.csv").get_json()["id"]
    assert finished(job_id)["status"] == "succeeded"
    response = client.get(f"/api/v1/jobs/{job_id}/results?format=csv", buffered=False)
    assert response.status_code == 200
    next(iter(response.response))  # the first piece, then the reader goes away
    response.close()
    gc.collect()


def test_a_download_gives_its_database_connection_back_when_it_ends(app, client, mixed_job):
    """A streamed download reads on the request's session after the view has returned. When it ends, its
    connection goes back to the web's pool at once, not when the garbage collector frees the session (until then
    it would sit idle in a transaction, one of the pool's few)."""
    job_id, _ = mixed_job
    pool = app.extensions["cytoscore.engine"].pool
    gc.collect()
    gc.disable()
    try:
        before = pool.checkedout()
        for query in ("results?format=csv", "results?format=json", "errors?format=csv", "errors?format=json"):
            response = client.get(f"/api/v1/jobs/{job_id}/{query}")
            assert response.status_code == 200 and response.data
            assert pool.checkedout() == before, query
    finally:
        gc.enable()


@pytest.mark.parametrize("fmt", ["json", "csv", "xlsx"])
def test_a_filter_that_keeps_no_row_leaves_no_file_open(client, finished, fmt):
    """A job with no rejected row, its rejected rows asked for: nothing is read from its spooled input, which must
    be closed all the same (found by schemathesis, as a ResourceWarning in a later request)."""
    job_id = post_upload(client, wdbc_csv(), "clean.csv").get_json()["id"]
    assert finished(job_id)["status"] == "succeeded"
    response = client.get(f"/api/v1/jobs/{job_id}/results?format={fmt}&show=rejected")
    assert response.status_code == 200
    if fmt == "json":
        assert response.get_json()["results"] == []
    del response
    gc.collect()


def test_the_rows_a_filter_shows_download_with_their_input_columns(client, finished, app, people):
    """The job page's 'Differs from the supplied diagnosis (11)' downloads those 11 rows, each with its own input."""
    lines = wdbc_csv().decode().splitlines()
    lines[3] = lines[3].replace(lines[3].split(",")[2], "-1", 1)  # row 3: a negative radius, rejected
    job_id = post_upload(client, ("\n".join(lines) + "\n").encode(), "ward.csv", model="wdbc-rf4").get_json()["id"]
    assert finished(job_id)["status"] == "succeeded"
    everything = client.get(f"/api/v1/jobs/{job_id}/results?format=json").get_json()["results"]
    differing = [r for r in everything if r["diagnosis"] and r["diagnosis"] != r["supplied_diagnosis"]]
    assert len(differing) > 3

    shown = client.get(f"/api/v1/jobs/{job_id}/results?format=json&show=differs").get_json()["results"]
    assert shown == differing  # the same records, each with its own row's input
    assert all(r["input"]["id"] == r["case_id"] for r in shown)

    exported = client.get(f"/api/v1/jobs/{job_id}/results?format=csv&show=differs")
    assert exported.headers["Content-Disposition"] == f'attachment; filename="cytoscore-{job_id}-differs.csv"'
    table = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    assert [(int(r["row"]), r["input:radius_mean"]) for r in table] == [
        (r["row"], r["input"]["radius_mean"]) for r in differing
    ]
    book = client.get(f"/api/v1/jobs/{job_id}/results?format=xlsx&show=rejected").get_data()
    sheet = openpyxl.load_workbook(io.BytesIO(book)).active
    (header, rejected) = list(sheet.iter_rows(values_only=True))
    assert (rejected[header.index("row")], rejected[header.index("input:radius_mean")]) == (3, -1.0)
    assert client.get(f"/api/v1/jobs/{job_id}/results?format=csv&show=some").status_code == 400

    page = sign_in(app, people["lab"].email, people["lab"].password).get(f"/jobs/{job_id}?show=differs")
    text = " ".join(page.get_data(as_text=True).split())
    assert f"Download these {len(differing)} rows, with their input columns:" in text
    assert f'href="/api/v1/jobs/{job_id}/results?format=csv&amp;show=differs"' in text


def test_rows_that_do_not_fit_in_one_xlsx_sheet_are_offered_as_csv_only(app, client, mixed_job, people, monkeypatch):
    from shared import spreadsheets

    monkeypatch.setattr(spreadsheets, "XLSX_MAX_ROWS", 3)  # a sheet's 1,048,575 rows, made small: the job has 4
    job_id, _ = mixed_job
    refused = client.get(f"/api/v1/jobs/{job_id}/results?format=xlsx")
    assert refused.status_code == 409
    assert refused.get_json()["error"] == (
        "4 rows do not fit in one XLSX sheet, which holds 3 rows under its header: download them as CSV"
    )
    assert client.get(f"/api/v1/jobs/{job_id}/results?format=csv").status_code == 200
    rejected = client.get(f"/api/v1/jobs/{job_id}/results?format=xlsx&show=rejected")  # one row fits
    assert rejected.status_code == 200
    assert [r[0] for r in openpyxl.load_workbook(io.BytesIO(rejected.data)).active.iter_rows(values_only=True)] == [
        "row",
        3,
    ]

    lab = people["lab"]
    browser = sign_in(app, lab.email, lab.password)
    page = browser.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "No XLSX: 4 rows do not fit in one sheet, which holds 3 under its header. The CSV has them all." in page
    assert "format=xlsx" not in page.split('id="filtered-downloads"')[0]
    filtered = browser.get(f"/jobs/{job_id}?show=rejected").get_data(as_text=True)
    assert f"/api/v1/jobs/{job_id}/results?format=xlsx&amp;show=rejected" in filtered
