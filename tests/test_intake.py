"""The intake promises: every value is scored as given or refused with its row, column, value and reason."""

from __future__ import annotations

import csv
import io
import random
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

import numpy as np
import openpyxl
import pytest
from sklearn.datasets import load_breast_cancer

from shared.features import FEATURES, SKLEARN_NAMES
from shared.intake import (
    Batch,
    FileRejected,
    Limits,
    inspect_upload,
    iter_batches,
    read_header,
    read_rows,
    sniff_format,
    validate_cases,
)
from shared.intake.upload import read_source_rows

DATA = load_breast_cancer()
F4 = ("radius_mean", "texture_mean", "smoothness_mean", "compactness_mean")
F4_AT = [FEATURES.index(f) for f in F4]
HEADER = ["id", *F4]


def good_rows(n: int = 3) -> list[list[str]]:
    return [[str(842300 + i), *(repr(float(v)) for v in DATA.data[i, F4_AT])] for i in range(n)]


def to_csv(rows: Sequence[Sequence[str]], delimiter: str = ",", eol: str = "\n") -> bytes:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator=eol).writerows(rows)
    return out.getvalue().encode()


def with_cell(column: str, value: str, row: int = 2, features: Sequence[str] = HEADER) -> bytes:
    """The good 3-row file with one cell (data row `row`, 1-based) replaced."""
    rows = good_rows()
    rows[row - 1][list(features).index(column)] = value
    return to_csv([list(features), *rows])


def _col(i: int) -> str:
    name, i = "", i + 1
    while i:
        i, r = divmod(i - 1, 26)
        name = chr(65 + r) + name
    return name


def _cell_xml(ref: str, v: object) -> str:
    if isinstance(v, bool):
        return f'<c r="{ref}" t="b"><v>{int(v)}</v></c>'
    if isinstance(v, int | float):
        return f'<c r="{ref}"><v>{v!r}</v></c>'  # full precision, as Excel writes it
    text = str(v)
    if text.startswith("="):
        return f'<c r="{ref}"><f>{escape(text[1:])}</f></c>'
    return f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{escape(text)}</t></is></c>'


_CT = (
    '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>{sheets}</Types>'
)
_REL = '<Relationship Id="{id}" Type="http://schemas.openxmlformats.org/{type}" Target="{target}"/>'
_RELS = '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{}</Relationships>'


def raw_xlsx(sheets: dict[str, Sequence[Sequence[object]]], extra: dict[str, bytes] | None = None) -> bytes:
    """A minimal XLSX written by hand: numbers keep all 17 digits (openpyxl's writer keeps 16)."""
    files: dict[str, str | bytes] = {}
    overrides, entries, rels = "", "", ""
    for n, (name, rows) in enumerate(sheets.items(), start=1):
        body = "".join(
            f'<row r="{r + 1}">'
            + "".join(_cell_xml(f"{_col(c)}{r + 1}", v) for c, v in enumerate(row) if v is not None)
            + "</row>"
            for r, row in enumerate(rows)
        )
        files[f"xl/worksheets/sheet{n}.xml"] = (
            '<?xml version="1.0" encoding="UTF-8"?><worksheet '
            f'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>{body}</sheetData></worksheet>'
        )
        overrides += (
            f'<Override PartName="/xl/worksheets/sheet{n}.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        )
        entries += f'<sheet name="{escape(name)}" sheetId="{n}" r:id="rId{n}"/>'
        rels += _REL.format(
            id=f"rId{n}", type="officeDocument/2006/relationships/worksheet", target=f"worksheets/sheet{n}.xml"
        )
    files["[Content_Types].xml"] = _CT.format(sheets=overrides)
    files["_rels/.rels"] = _RELS.format(
        _REL.format(id="rId1", type="officeDocument/2006/relationships/officeDocument", target="xl/workbook.xml")
    )
    files["xl/workbook.xml"] = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        f'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>{entries}</sheets></workbook>'
    )
    files["xl/_rels/workbook.xml.rels"] = _RELS.format(rels)
    files.update(extra or {})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def xlsx_with(column: str, value: object, row: int = 2) -> bytes:
    rows: list[list[object]] = [list(HEADER), *([r[0], *map(float, r[1:])] for r in good_rows())]
    rows[row][HEADER.index(column)] = value
    return raw_xlsx({"Sheet1": rows})


def merge(batches: list[Batch]) -> Batch:
    return Batch(
        rows=np.concatenate([b.rows for b in batches]),
        case_ids=[c for b in batches for c in b.case_ids],
        X=np.vstack([b.X for b in batches]),
        ok=np.concatenate([b.ok for b in batches]),
        errors=[e for b in batches for e in b.errors],
        problems=[p for b in batches for p in b.problems],
        supplied_diagnosis=[d for b in batches for d in b.supplied_diagnosis],
        out_of_range=[o for b in batches for o in b.out_of_range],
        warnings=[w for b in batches for w in b.warnings],
    )


def score(content: bytes | list[dict[str, object]], features: Sequence[str] = F4, limits: Limits = Limits()) -> Batch:
    """Run an input the way the product does: inspect, then stream in small batches (or the JSON path)."""
    if isinstance(content, list):
        return validate_cases(content, features)
    inspect_upload(content, "upload", features, limits)
    return merge(list(iter_batches(content, "upload", features, batch_rows=2)))


def good_x(n: int = 3) -> np.ndarray:
    return DATA.data[:n, F4_AT]


def good_case(i: int = 0) -> dict[str, object]:
    return {"id": str(842300 + i), **{f: float(DATA.data[i, FEATURES.index(f)]) for f in F4}}


def refused(text: str) -> Expect:
    return Expect(refusal=text)


def rejects(row: int, column: str, reason: str, value: str | None = None) -> Expect:
    return Expect(rejected={row: (column, reason, value)})


@dataclass
class Expect:
    refusal: str | None = None
    rejected: dict[int, tuple[str, str, str | None]] = field(default_factory=dict)


def _ole2() -> bytes:
    return b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


GOOD_XLSX = raw_xlsx({"Sheet1": [HEADER, *([r[0], *map(float, r[1:])] for r in good_rows())]})
BASE = to_csv([HEADER, *good_rows()])
LONG_ID = "x" * 65

# A table at B2 whose second row has a formula for radius_mean (column C, sheet row 4).
_FORMULA_ROWS = [good_rows()[0], [good_rows()[1][0], "=B3*2", *good_rows()[1][2:]], good_rows()[2]]

BAD_INPUTS: list[tuple[str, bytes | list[dict[str, object]], Expect]] = [
    # values: the row is rejected, the other rows keep their exact values
    ("empty cell", with_cell("radius_mean", ""), rejects(2, "radius_mean", "is empty")),
    ("spaces only", with_cell("radius_mean", "   "), rejects(2, "radius_mean", "is empty")),
    ("NA text", with_cell("radius_mean", "NA"), rejects(2, "radius_mean", "text not allowed: NA")),
    ("null text", with_cell("texture_mean", "null"), rejects(2, "texture_mean", "text not allowed: null")),
    ("None text", with_cell("texture_mean", "None"), rejects(2, "texture_mean", "text not allowed: None")),
    ("nan text", with_cell("smoothness_mean", "nan"), rejects(2, "smoothness_mean", "text not allowed: nan")),
    ("N/A text", with_cell("smoothness_mean", "N/A"), rejects(2, "smoothness_mean", "text not allowed: N/A")),
    ("inf", with_cell("radius_mean", "inf"), rejects(2, "radius_mean", "is infinite")),
    ("-Infinity", with_cell("texture_mean", "-Infinity"), rejects(2, "texture_mean", "is infinite")),
    ("1e309 overflows", with_cell("radius_mean", "1e309"), rejects(2, "radius_mean", "is out of range (not finite)")),
    ("text", with_cell("radius_mean", "abc"), rejects(2, "radius_mean", "is not a number", "abc")),
    ("underscore", with_cell("radius_mean", "1_000"), rejects(2, "radius_mean", "is not a number (no '_'")),
    ("full-width digits", with_cell("radius_mean", "１２"), rejects(2, "radius_mean", "is not a number (only the")),
    ("Arabic digits", with_cell("radius_mean", "١٢"), rejects(2, "radius_mean", "is not a number (only the")),
    ("thousands comma", with_cell("radius_mean", "1,234"), rejects(2, "radius_mean", "is not a number (no thousands")),
    (
        "decimal comma in , file",
        with_cell("radius_mean", "12,5"),
        rejects(2, "radius_mean", "is not a number: write a decimal point (12.5); a decimal comma is read only in"),
    ),
    ("hex", with_cell("radius_mean", "0x10"), rejects(2, "radius_mean", "is not a number")),
    ("dangling exponent", with_cell("radius_mean", "1e"), rejects(2, "radius_mean", "is not a number")),
    ("two points", with_cell("radius_mean", "1.2.3"), rejects(2, "radius_mean", "is not a number")),
    ("inner space", with_cell("radius_mean", "1 2"), rejects(2, "radius_mean", "is not a number")),
    ("tab padding", with_cell("radius_mean", "\t12"), rejects(2, "radius_mean", "is not a number")),
    ("negative", with_cell("texture_mean", "-1"), rejects(2, "texture_mean", "is negative", "-1")),
    ("zero radius", with_cell("radius_mean", "0"), rejects(2, "radius_mean", "must be greater than zero")),
    ("minus zero radius", with_cell("radius_mean", "-0.0"), rejects(2, "radius_mean", "must be greater than zero")),
    (
        "underflow to zero radius",
        with_cell("radius_mean", "1e-400"),
        rejects(2, "radius_mean", "must be greater than zero"),
    ),
    # case ids
    ("blank id", with_cell("id", " "), rejects(2, "id", "is empty")),
    ("long id", with_cell("id", LONG_ID), rejects(2, "id", "is longer than 64 characters")),
    ("bidi id", with_cell("id", "12\u202e34"), rejects(2, "id", "contains a Unicode direction-control")),
    ("isolate id", with_cell("id", "\u206612"), rejects(2, "id", "contains a Unicode direction-control")),
    ("control id", with_cell("id", "12\x07"), rejects(2, "id", "contains a control character")),
    ("newline id", with_cell("id", "12\n34"), rejects(2, "id", "contains a control character")),
    # whole-file refusals
    ("empty file", b"", refused("the file is empty")),
    ("header only", b"id,radius_mean,texture_mean,smoothness_mean,compactness_mean\n", refused("no data rows")),
    ("NUL byte", BASE.replace(b"842301", b"8423\x0001"), refused("NUL byte on line 3")),
    ("not UTF-8", BASE.replace(b"842301", b"84\xe930"), refused("not UTF-8 text: byte")),
    ("not UTF-8 line", BASE.replace(b"842301", b"84\xe930"), refused("(line 3)")),
    (
        "unterminated quote",
        BASE + b'842399,"12.5,1,1,1\n842400,1,1,1,1\n',
        refused("line 5: a quoted field is never closed"),
    ),
    ("junk after quote", BASE.replace(b"842301", b'"842301"x'), refused("line 3: malformed quoting")),
    ("extra field row 1 (pandas index trap)", BASE.replace(b"842300,", b"842300,9,", 1), refused("line 2 (6)")),
    (
        "missing field",
        BASE.replace(b"842302,", b"", 1),
        refused("different number of fields than the header (5): line 4 (4)"),
    ),
    (
        "duplicate column (pandas .1 trap)",
        to_csv([[*HEADER, "radius_mean"], *([*r, "1"] for r in good_rows())]),
        refused("both mean radius_mean"),
    ),
    (
        "alias duplicate",
        to_csv([[*HEADER, "Mean Radius"], *([*r, "1"] for r in good_rows())]),
        refused("'radius_mean' (column 2) and 'Mean Radius' (column 6)"),
    ),
    ("id and case_id", to_csv([[*HEADER, "case_id"], *([*r, "1"] for r in good_rows())]), refused("both mean id")),
    (
        "missing feature",
        to_csv([r[:-1] for r in [HEADER, *good_rows()]]),
        refused("missing required columns: compactness_mean"),
    ),
    (
        "near-miss spelling",
        to_csv([["id", "radius_mean", "texture_mean", "smoothness_mean", "compactness-mean"], *good_rows()]),
        refused("'compactness-mean' is not an accepted spelling"),
    ),
    (
        "a typo and a unit in the header",
        to_csv([["id", "radius mean (px)", "texure_mean", "smoothness_mean", "compactness_mean"], *good_rows()]),
        refused(
            "missing required columns: radius_mean, texture_mean ('radius mean (px)' is not an accepted spelling"
            " of 'radius_mean'; 'texure_mean' is not an accepted spelling of 'texture_mean')"
        ),
    ),
    ("missing id", to_csv([r[1:] for r in [HEADER, *good_rows()]]), refused("missing required column: id")),
    ("no header", to_csv(good_rows()), refused("the first line looks like data")),
    (
        "unnamed column with values",
        to_csv([[*HEADER, ""], *([*r, "7"] for r in good_rows())]),
        refused("column 6 has no name but holds values (first on line 2)"),
    ),
    (
        "unnamed middle column with values",
        to_csv([["id", "", *F4], *([r[0], "x", *r[1:]] for r in good_rows())]),
        refused("column 2 has no name"),
    ),
    ("two delimiters", b"id;radius_mean\tx\n1;2\t3\n", refused("cannot tell the delimiter")),
    (
        "semicolon file mixing marks",
        to_csv([HEADER, ["1", "12,5", "10.5", "0,1", "0,2"]], ";"),
        refused("uses both a decimal comma (row 1 radius_mean '12,5') and a decimal point (row 1 texture_mean '10.5')"),
    ),
    (
        "semicolon mix across batches",
        to_csv(
            [
                HEADER,
                ["1", "12,5", "10", "1", "1"],
                *([str(i), "1", "1", "1", "1"] for i in range(2, 40)),
                ["40", "1.5", "1", "1", "1"],
            ],
            ";",
        ),
        refused("decimal point (row 40 radius_mean '1.5')"),
    ),
    # XLSX
    ("legacy xls / encrypted", _ole2(), refused("encrypted workbook or a legacy .xls")),
    ("zip, not a workbook", _zip({"hello.txt": b"hi"}), refused("no xl/workbook.xml")),
    ("truncated xlsx", GOOD_XLSX[: len(GOOD_XLSX) // 2], refused("damaged or truncated")),
    (
        "xlsm macros",
        raw_xlsx({"Sheet1": [HEADER]}, {"xl/vbaProject.bin": b"\x00" * 10}),
        refused("contains macros (.xlsm)"),
    ),
    (
        "zip bomb ratio",
        raw_xlsx({"Sheet1": [HEADER]}, {"xl/media/pad.bin": bytes(3 * 2**20)}),
        refused("compressed more than 100:1"),
    ),
    ("two sheets, none 'cases'", raw_xlsx({"Data": [HEADER], "Notes": [["x"]]}), refused("2 sheets ('Data', 'Notes')")),
    ("xlsx formula", xlsx_with("radius_mean", "=A2*2"), rejects(2, "radius_mean", "is a formula", "=A2*2")),
    ("xlsx boolean", xlsx_with("texture_mean", True), rejects(2, "texture_mean", "is a boolean", "TRUE")),
    ("xlsx text NA", xlsx_with("texture_mean", "NA"), rejects(2, "texture_mean", "text not allowed: NA")),
    ("xlsx negative", xlsx_with("texture_mean", -2.5), rejects(2, "texture_mean", "is negative", "-2.5")),
    ("xlsx value beyond header", raw_xlsx({"S": [HEADER, [*good_rows()[0], None, "x"]]}), refused("sheet row 2 (7)")),
    ("xlsx bool id", xlsx_with("id", False), rejects(2, "id", "is a boolean")),
    (
        "xlsx formula, the table not at A1",
        raw_xlsx({"S": [[None], [None, *HEADER], *([None, *row] for row in _FORMULA_ROWS)]}),
        rejects(2, "radius_mean", "is a formula", "=B3*2"),
    ),
    # JSON / form values
    (
        "json bool",
        [good_case(0), {**good_case(1), "radius_mean": True}, good_case(2)],
        rejects(2, "radius_mean", "is a boolean"),
    ),
    (
        "json null",
        [good_case(0), {**good_case(1), "radius_mean": None}, good_case(2)],
        rejects(2, "radius_mean", "is empty"),
    ),
    (
        "json NaN",
        [good_case(0), {**good_case(1), "radius_mean": float("nan")}, good_case(2)],
        rejects(2, "radius_mean", "is out of range (not finite)"),
    ),
    (
        "json huge int",
        [good_case(0), {**good_case(1), "radius_mean": 10**400}, good_case(2)],
        rejects(2, "radius_mean", "is out of range (not finite)"),
    ),
    (
        "json string grammar",
        [good_case(0), {**good_case(1), "radius_mean": "1_0"}, good_case(2)],
        rejects(2, "radius_mean", "is not a number (no '_'"),
    ),
    (
        "json long id",
        [good_case(0), {**good_case(1), "id": LONG_ID}, good_case(2)],
        rejects(2, "id", "is longer than 64"),
    ),
    # JSON / form structure
    (
        "json unknown key",
        [good_case(0), {**good_case(1), "radius_mea": 1}],
        refused("cases[1]: unknown key 'radius_mea'"),
    ),
    (
        "json missing key",
        [good_case(0), {k: v for k, v in good_case(1).items() if k != "texture_mean"}],
        refused("cases[1]: missing key 'texture_mean'"),
    ),
    (
        "json alias duplicate",
        [{**good_case(0), "mean radius": 1.0}],
        refused("cases[0]: keys 'radius_mean' and 'mean radius' both mean radius_mean"),
    ),
    ("json not an object", [good_case(0), ["radius_mean", 1]], refused("cases[1] is not an object")),  # type: ignore[list-item]
    ("json empty list", [], refused("the list of cases is empty")),
]


@pytest.mark.parametrize(("content", "expect"), [p[1:] for p in BAD_INPUTS], ids=[p[0] for p in BAD_INPUTS])
def test_bad_input(content: bytes | list[dict[str, object]], expect: Expect) -> None:
    if expect.refusal is not None:
        with pytest.raises(FileRejected) as caught:
            score(content)
        assert any(expect.refusal in p for p in caught.value.problems), caught.value.problems
        return
    batch = score(content)
    bad = {p.row: (p.column, p.reason, p.value) for p in batch.problems}
    assert set(bad) == set(expect.rejected), batch.problems
    for row, (column, reason, value) in expect.rejected.items():
        assert bad[row][0] == column and bad[row][1].startswith(reason), bad[row]
        if value is not None:
            assert bad[row][2] == value
        assert not batch.ok[row - 1] and np.isnan(batch.X[row - 1]).all()
        assert batch.errors[row - 1] is not None and column in batch.errors[row - 1]  # type: ignore[operator]
    good = [r - 1 for r in (1, 2, 3) if r not in expect.rejected]
    assert batch.ok[good].all()
    np.testing.assert_array_equal(batch.X[good], good_x()[good])
    assert [batch.errors[i] for i in good] == [None] * len(good)


def test_the_table_covers_at_least_forty_inputs() -> None:
    assert len(BAD_INPUTS) >= 40


# --- what must be read exactly as given -----------------------------------------------------------------


def test_leading_zero_ids_stay_text_and_surrounding_spaces_do_not_make_another_id() -> None:
    rows = good_rows()
    rows[0][0], rows[1][0], rows[2][0] = "00123", " 00123 ", "123"
    batch = score(to_csv([HEADER, *rows]))
    assert batch.case_ids == ["00123", "00123", "123"]  # repeats are marked when the job is written
    assert batch.warnings == [None, None, None]
    assert batch.ok.all()


def test_problem_text_names_row_column_value_and_reason() -> None:
    rows = good_rows()
    rows[1][0], rows[1][1] = "", "abc"
    batch = score(to_csv([HEADER, *rows]))
    assert batch.errors[1] == "radius_mean 'abc': is not a number; id: is empty"
    assert [(p.row, p.column) for p in batch.problems] == [(2, "radius_mean"), (2, "id")]


def test_odd_but_valid_numbers_are_read_exactly() -> None:
    values = ["  017.5 ", "+.5", "5.", "1E2", "2.5e-1"]
    rows = [[str(i), v, "20.1", "0.1", v] for i, v in enumerate(values)]  # radius and compactness: no upper limit
    batch = score(to_csv([HEADER, *rows]))
    assert batch.ok.all()
    np.testing.assert_array_equal(batch.X[:, 0], [17.5, 0.5, 5.0, 100.0, 0.25])
    np.testing.assert_array_equal(batch.X[:, 3], [17.5, 0.5, 5.0, 100.0, 0.25])


def test_zero_is_allowed_where_a_measurement_can_be_zero() -> None:
    batch = score(with_cell("smoothness_mean", "0"))
    assert batch.ok.all() and batch.X[1, 2] == 0.0


def test_semicolon_file_with_decimal_commas() -> None:
    rows = [[r[0], *(v.replace(".", ",") for v in r[1:])] for r in good_rows()]
    content = to_csv([HEADER, *rows], ";", "\r\n")
    summary = inspect_upload(content, "x.csv", F4)
    assert summary.delimiter == ";"
    batch = merge(list(iter_batches(content, None, F4, 2)))
    np.testing.assert_array_equal(batch.X, good_x())


def test_semicolon_file_refuses_a_decimal_comma_with_exponent() -> None:
    batch = score(to_csv([HEADER, *[[r[0], *r[1:]] for r in good_rows()[:2]], ["9", "1,5e3", "1", "1", "1"]], ";"))
    assert [(p.row, p.reason) for p in batch.problems] == [(3, "is not a number")]


def test_tab_delimited_file() -> None:
    summary = inspect_upload(to_csv([HEADER, *good_rows()], "\t"), None, F4)
    assert summary.delimiter == "\t" and summary.rows_total == 3


def test_diagnosis_is_carried_and_normalised() -> None:
    rows = [[*r, d] for r, d in zip(good_rows(), [" m ", "Benign", "X"], strict=True)]
    content = to_csv([[*HEADER, "Diagnosis"], *rows])
    assert inspect_upload(content, None, F4).has_diagnosis
    batch = score(content)
    assert batch.supplied_diagnosis == ["M", "B", None]
    assert batch.warnings[2] == "diagnosis 'X' is not M or B (ignored)"
    assert batch.ok.all()


def test_out_of_range_values_are_scored_and_listed() -> None:
    ranges = {"radius_mean": (6.98, 28.11), "texture_mean": (9.71, 39.28)}
    content = with_cell("radius_mean", "45.2")
    batch = merge(list(iter_batches(content, None, F4, 10, ranges=ranges)))
    assert batch.ok.all()
    assert batch.out_of_range == [None, "radius_mean 45.2 above training range 6.98–28.11", None]
    assert batch.X[1, 0] == 45.2


def test_unused_columns_are_ignored_but_kept_for_exports() -> None:
    rows = [[r[0], "=cmd()", *r[1:], ""] for r in good_rows()]
    content = to_csv([["id", "notes", *F4, ""], *rows])
    batch = score(content)
    np.testing.assert_array_equal(batch.X, good_x())
    for layout in ("csv", "plain"):  # what an export keeps, read as any CSV or as a plain one
        header, source = read_rows(content, layout)
        assert header == ["id", "notes", *F4]
        assert list(source) == [r[:-1] for r in rows]


def test_blank_lines_are_not_rows() -> None:
    content = BASE.replace(b"\n842301", b"\n\n842301") + b"\n\n"
    summary = inspect_upload(content, None, F4)
    assert summary.rows_total == 3
    np.testing.assert_array_equal(score(content).X, good_x())


def test_xlsx_ids_dates_and_sheet_choice() -> None:
    rows: list[list[object]] = [[*HEADER, "diagnosis"], [842302.0, 17.99, 10.38, 0.1184, 0.2776, "M"]]
    content = raw_xlsx({"Readme": [["hello"]], "CASES": rows})
    summary = inspect_upload(content, "whatever.csv", F4)
    assert (summary.format, summary.sheet, summary.delimiter, summary.rows_total) == ("xlsx", "CASES", None, 1)
    batch = score(content)
    assert batch.case_ids == ["842302"] and batch.supplied_diagnosis == ["M"]


def test_xlsx_date_cell_rejects_the_row() -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(HEADER)
    sheet.append(["1", 10.0, 10.0, 0.1, 0.1])
    import datetime as dt

    sheet.append(["2", dt.datetime(2020, 1, 2), 10.0, 0.1, 0.1])
    buffer = io.BytesIO()
    book.save(buffer)
    batch = score(buffer.getvalue())
    assert [(p.row, p.column, p.reason, p.value) for p in batch.problems] == [
        (2, "radius_mean", "is a date", "2020-01-02")  # a date cell, shown as the date it holds
    ]


def test_limits() -> None:
    with pytest.raises(FileRejected, match="more than 2 data rows"):
        inspect_upload(BASE, None, F4, Limits(max_rows=2))
    with pytest.raises(FileRejected, match="the header has 5 columns; the limit is 3"):
        inspect_upload(BASE, None, F4, Limits(max_columns=3))
    with pytest.raises(FileRejected, match="the limit is 10 bytes"):
        inspect_upload(BASE, None, F4, Limits(max_bytes=10))


def test_every_whole_file_problem_is_listed() -> None:
    rows = [["1", "2"], ["3"], *(["4", "5", "6", "7"] for _ in range(25))]
    content = to_csv([["id", "radius_mean", "Mean Radius"], *rows])
    with pytest.raises(FileRejected) as caught:
        inspect_upload(content, None, F4)
    problems = caught.value.problems
    assert any("both mean radius_mean" in p for p in problems)
    assert any("missing required columns: texture_mean, smoothness_mean, compactness_mean" in p for p in problems)
    ragged = next(p for p in problems if "different number of fields" in p)
    assert "line 2 (2), line 3 (1)" in ragged and ragged.endswith("and 7 more")


def test_sniff_format_uses_bytes_not_names() -> None:
    assert sniff_format(GOOD_XLSX, "data.csv") == "xlsx"
    assert sniff_format(BASE, "data.xlsx") == "csv"
    with pytest.raises(FileRejected):
        sniff_format(b"\x89PNG\r\n\x1a\n\x00\x00", "x.png")


def test_openpyxl_parses_xml_with_defusedxml() -> None:
    assert openpyxl.DEFUSEDXML is True


# --- equivalence: the same cases in every layout give the same X ------------------------------------------


def _kaggle_csv(features: Sequence[str], names: Sequence[str], order: Sequence[int], eol: str = "\n") -> str:
    header = ["id", "diagnosis", *(names[i] for i in order)]
    lines = [",".join(header) + ","]
    for i in range(len(DATA.data)):
        cells = [str(842300 + i), "MB"[DATA.target[i]], *(repr(float(DATA.data[i, j])) for j in order)]
        lines.append(",".join(c if " " not in c else f'"{c}"' for c in cells) + ",")
    return eol.join(lines) + eol


def test_layouts_give_identical_values() -> None:
    every = list(range(30))
    canonical = to_csv(
        [["id", *FEATURES], *([str(842300 + i), *map(repr, map(float, DATA.data[i]))] for i in range(len(DATA.data)))]
    )
    shuffled = every[:]
    random.Random(7).shuffle(shuffled)
    four_only = to_csv(
        [["id", *F4], *([str(842300 + i), *map(repr, map(float, DATA.data[i, F4_AT]))] for i in range(569))]
    )
    xlsx = raw_xlsx({"Sheet1": [["id", *FEATURES], *([842300 + i, *map(float, DATA.data[i])] for i in range(569))]})
    layouts = {
        "kaggle trailing comma": _kaggle_csv(FEATURES, FEATURES, every).encode(),
        "BOM + CRLF": b"\xef\xbb\xbf" + _kaggle_csv(FEATURES, FEATURES, every, "\r\n").encode(),
        "CR only": _kaggle_csv(FEATURES, FEATURES, every, "\r").encode(),
        "scikit-learn names shuffled": _kaggle_csv(FEATURES, SKLEARN_NAMES, shuffled).encode(),
        "xlsx": xlsx,
        "four columns": four_only,
    }
    expected = score(canonical, FEATURES)
    np.testing.assert_array_equal(expected.X, DATA.data)
    for name, content in layouts.items():
        batch = score(content)
        assert batch.ok.all(), name
        np.testing.assert_array_equal(batch.X, expected.X[:, F4_AT], err_msg=name)
        assert batch.case_ids == expected.case_ids, name
        if name != "four columns" and name != "xlsx":
            np.testing.assert_array_equal(score(content, FEATURES).X, DATA.data, err_msg=name)
    summary = inspect_upload(layouts["kaggle trailing comma"], "data.csv", FEATURES)
    assert summary.columns == ["id", "diagnosis", *FEATURES] and summary.has_diagnosis


def test_form_and_json_cases_match_files() -> None:
    cases: list[dict[str, object]] = [
        {
            "case_id": "a",
            "mean radius": "17.99",
            "Texture_Mean": 10.38,
            "smoothness_mean": 0.1184,
            "compactness_mean": 1,
        }
    ]
    batch = validate_cases(cases, F4)
    np.testing.assert_array_equal(batch.X, [[17.99, 10.38, 0.1184, 1.0]])
    blank = validate_cases([{**good_case(0), "id": ""}, {k: v for k, v in good_case(1).items() if k != "id"}], F4)
    assert blank.case_ids == [None, None] and blank.ok.all()


# --- nothing but FileRejected for bad input ------------------------------------------------------------------


def _attempt(content: bytes) -> None:
    try:
        inspect_upload(content, None, F4)
        list(iter_batches(content, None, F4, 7))
        _header, rows = read_rows(content, "csv")
        list(rows)
    except FileRejected:
        pass


def test_fuzzed_bytes_raise_only_file_rejected() -> None:
    rng = random.Random(42)
    seeds = [BASE, GOOD_XLSX, to_csv([HEADER, *good_rows()], ";")]
    for _ in range(300):
        seed = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 8)):
            at = rng.randrange(len(seed))
            seed[at : at + rng.randint(0, 3)] = bytes(rng.randrange(256) for _ in range(rng.randint(0, 3)))
        _attempt(bytes(seed))
    for _ in range(50):
        _attempt(bytes(rng.randrange(256) for _ in range(rng.randint(0, 200))))
    for cut in range(0, len(GOOD_XLSX), max(1, len(GOOD_XLSX) // 40)):
        _attempt(GOOD_XLSX[:cut])


XXE_SHEET = (
    '<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE worksheet [<!ENTITY leak SYSTEM "file:///etc/passwd">]>'
    '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
    '<row r="1"><c r="A1" t="inlineStr"><is><t>id</t></is></c><c r="B1" t="inlineStr"><is><t>radius_mean</t></is></c>'
    '<c r="C1" t="inlineStr"><is><t>texture_mean</t></is></c>'
    '<c r="D1" t="inlineStr"><is><t>smoothness_mean</t></is></c>'
    '<c r="E1" t="inlineStr"><is><t>compactness_mean</t></is></c></row>'
    '<row r="2"><c r="A2" t="inlineStr"><is><t>&leak;</t></is></c><c r="B2"><v>12</v></c><c r="C2"><v>20</v></c>'
    '<c r="D2"><v>0.1</v></c><c r="E2"><v>0.1</v></c></row></sheetData></worksheet>'
)
LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="&lol3;" sheetId="1" r:id="rId1"/></sheets></workbook>'
)


@pytest.mark.parametrize(
    "content",
    [raw_xlsx({"Sheet1": [HEADER]}, {"xl/worksheets/sheet1.xml": XXE_SHEET}),
     raw_xlsx({"Sheet1": [HEADER]}, {"xl/workbook.xml": LAUGHS})],
    ids=["external entity", "entity expansion"],
)  # fmt: skip
def test_a_workbook_never_reads_files_or_expands_entities(content: bytes) -> None:
    try:
        summary = inspect_upload(content, "x.xlsx", F4)
        header, rows = read_rows(content, "xlsx")
        seen = " ".join([*header, *(cell for row in rows for cell in row), str(summary)])
    except FileRejected as exc:
        seen = " ".join(exc.problems)
    assert "root:" not in seen and "lollol" not in seen  # refused, or read with the entity left unexpanded


def _openpyxl_book(rows: Sequence[Sequence[object]], sheets: Sequence[str] = ("Sheet1",)) -> bytes:
    """A workbook as openpyxl writes it: text in the shared strings, the rows on the last sheet named."""
    book = openpyxl.Workbook()
    book.active.title = sheets[0]
    for name in sheets[1:]:
        book.create_sheet(name)
    sheet = book[sheets[-1]]
    for row in rows:
        sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


_DATA = [r[0] for r in good_rows()][:3]


@pytest.mark.parametrize(
    "workbook",
    [
        pytest.param(lambda: raw_xlsx({"Sheet1": [list(HEADER), *good_rows()]}), id="inline strings"),
        pytest.param(lambda: _openpyxl_book([list(HEADER), *good_rows()]), id="shared strings"),
        pytest.param(lambda: _openpyxl_book([[None], [None, *HEADER], [None, *_DATA]]), id="blank row and column A"),
        pytest.param(lambda: _openpyxl_book([["id", None, "Radius", 7.5, True, "=1+1"], ["a"]]), id="odd cells"),
        pytest.param(lambda: _openpyxl_book([["x"], *([v] for v in _DATA)] * 50 + [["late"]]), id="repeated strings"),
        pytest.param(lambda: _openpyxl_book([list(HEADER)], sheets=("notes", "Cases")), id="the sheet named cases"),
    ],
)
def test_a_workbooks_header_is_read_from_the_start_of_its_sheet_as_the_whole_read_gives_it(workbook):
    """The web reads only a workbook's header (to pick a model), from the first bytes of its sheet's XML; it must
    be the header the worker's full read of the sheet gives."""
    content = workbook()
    header, _ = read_source_rows(content, "book.xlsx")
    assert read_header(content, "book.xlsx") == header


def test_a_workbooks_header_read_refuses_what_the_whole_read_refuses():
    many = _openpyxl_book([list(HEADER)], sheets=("one", "two"))
    with pytest.raises(FileRejected, match="keep one sheet or name the one to read 'cases'"):
        read_header(many, "book.xlsx")
    with pytest.raises(FileRejected, match="not a valid XLSX"):
        read_header(b"PK\x03\x04 truncated", "book.xlsx")


def test_a_reader_left_unfinished_after_its_file_was_closed_ends_quietly():
    """A filtered download stops at its last wanted row and closes the stored input it spooled; the line reader,
    still part-way through the file, is finished later, when collected. Touching the closed file then raised in
    the garbage collector, as an error the suite reports (and schemathesis once did, as a flaky failure)."""
    import tempfile

    from shared.intake.csvfile import records

    with tempfile.TemporaryFile() as spooled:
        spooled.write(b"id,radius_mean\n1,10.0\n2,11.0\n3,12.0\n")
        reader = records(spooled, ",")
        assert next(reader) == (1, ["id", "radius_mean"])
        spooled.close()
        reader.close()  # raised ValueError (I/O operation on closed file) before
