"""Exports: text a spreadsheet would run is neutralised, numbers stay numbers, templates read back."""

from __future__ import annotations

import csv
import io

import numpy as np
import openpyxl
import pytest

from shared.features import FEATURES
from shared.intake import FileRejected, inspect_upload
from shared.spreadsheets import neutralise, template_csv, template_xlsx, write_csv, write_xlsx


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@x", "'@x"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("842302", "842302"),
        ("a=b", "a=b"),
        ("", ""),
        # A spreadsheet skips leading spaces and invisible characters, and folds full-width and small forms.
        (" =1+1", "' =1+1"),
        ("\u00a0\u00a0-2+3", "'\u00a0\u00a0-2+3"),
        ("\u200b=1+1", "'\u200b=1+1"),
        ("\ufeff\u200d@SUM(A1)", "'\ufeff\u200d@SUM(A1)"),
        ("\uff1d1+1", "'\uff1d1+1"),
        ("\uff0b1", "'\uff0b1"),
        ("\uff0d1", "'\uff0d1"),
        ("\uff20x", "'\uff20x"),
        ("\ufe66cmd", "'\ufe66cmd"),
        ("\ncmd", "'\ncmd"),
        ("x;=1+1", "x;=1+1"),  # not at the start: kept, and quoted in the CSV (below)
        (" plain", " plain"),
    ],
)
def test_neutralise(text: str, safe: str) -> None:
    assert neutralise(text) == safe


ROWS: list[list[object]] = [
    ["-1", -1.0, '=HYPERLINK("x")', 0.1 + 0.2, np.float64(0.25), np.int64(3), None, float("nan")]
]
HEADER = ["id", "value", "note", "p", "q", "n", "empty", "missing"]


def test_csv_export_neutralises_text_but_not_numbers() -> None:
    out = io.StringIO()
    write_csv(out, HEADER, ROWS)
    assert out.getvalue().endswith("\r\n")
    header, row = list(csv.reader(io.StringIO(out.getvalue())))
    assert header == HEADER
    assert row == ["'-1", "-1.0", '\'=HYPERLINK("x")', "0.30000000000000004", "0.25", "3", "", ""]


def test_csv_export_quotes_text_so_no_separator_splits_a_cell() -> None:
    out = io.StringIO()
    write_csv(out, ["id", "note", "p"], [["x;=1+1", "a,=2", 0.5], ["plain", "\ud800", 1]])
    lines = out.getvalue().split("\r\n")
    assert lines[1] == '"x;=1+1","a,=2",0.5'  # a semicolon locale cannot split the field into a formula cell
    assert lines[2] == '"plain","\ufffd",1'  # a lone surrogate cannot be written as UTF-8
    assert next(csv.reader(io.StringIO(lines[1]))) == ["x;=1+1", "a,=2", "0.5"]


def test_xlsx_export_keeps_numbers_numeric_and_text_inert() -> None:
    out = io.BytesIO()
    write_xlsx(out, [*HEADER, "=bad header"], [[*ROWS[0], "bell\x07"]])
    sheet = openpyxl.load_workbook(io.BytesIO(out.getvalue())).active
    assert sheet is not None
    header, row = list(sheet.iter_rows(values_only=True))
    assert header[-1] == "'=bad header"
    assert row[:7] == ("'-1", -1.0, '\'=HYPERLINK("x")', 0.3, 0.25, 3, None)  # 16 significant digits
    assert row[7] is None and row[8] == "bell\ufffd"
    cells = list(sheet.iter_rows())[1]
    assert [c.data_type for c in cells[:3]] == ["s", "n", "s"]


def test_a_text_longer_than_a_cell_holds_is_cut_where_it_says_so() -> None:
    out = io.BytesIO()
    wide = "\U0001f600" * 20_000  # 40,000 UTF-16 units, two a character: a cell holds 32,767
    write_xlsx(out, ["notes"], [[wide], ["short"]])
    sheet = openpyxl.load_workbook(io.BytesIO(out.getvalue())).active
    assert sheet is not None
    _, (cut,), (short,) = list(sheet.iter_rows(values_only=True))
    said = "… [cut here: 20,000 characters, more than a cell holds; the CSV has them all]"
    assert cut.endswith(said) and set(cut[: -len(said)]) == {"\U0001f600"}
    assert len(cut.encode("utf-16-le")) // 2 == 32_767  # as many as fit
    assert short == "short"


def test_templates_are_refused_only_for_having_no_rows() -> None:
    assert template_csv(FEATURES).splitlines()[0] == ",".join(["id", *FEATURES, "diagnosis"])
    for content in (template_csv(FEATURES).encode(), template_xlsx(FEATURES)):
        with pytest.raises(FileRejected) as caught:
            inspect_upload(content, None, FEATURES)
        assert caught.value.problems == ["the file has a header but no data rows"]
    book = openpyxl.load_workbook(io.BytesIO(template_xlsx(FEATURES)))
    assert book.sheetnames == ["cases"]
