"""Result files for spreadsheets: text that could run as a formula is neutralised, numbers stay numbers."""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
from collections.abc import Iterable, Sequence
from typing import IO

import numpy as np

from shared.features import CASE_ID, DIAGNOSIS

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Characters XML 1.0 cannot carry; an XLSX cell cannot hold them at all.
_NOT_IN_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def neutralise(text: str) -> str:
    """Prefix "'" to text a spreadsheet would read as a formula (OWASP CSV injection); numbers are not text."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def _plain(value: object) -> object:
    """None, a finite float, an int, or neutralised text (non-finite numbers become empty cells)."""
    if value is None or isinstance(value, bool | np.bool_):
        return None if value is None else ("TRUE" if value else "FALSE")
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return neutralise(str(value))


def write_csv(out: IO[str], header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Write RFC 4180 CSV (CRLF line ends)."""
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([neutralise(name) for name in header])
    for row in rows:
        writer.writerow(["" if v is None else repr(v) if isinstance(v, float) else v for v in map(_plain, row)])


def write_xlsx(out: IO[bytes], header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Write one sheet with openpyxl's write-only mode; characters XML cannot hold become U+FFFD.

    openpyxl writes floats with 16 significant digits, so a value may move by one unit in the last place.
    """
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("results")
    sheet.append([_xml_safe(neutralise(name)) for name in header])
    for row in rows:
        sheet.append([_xml_safe(v) if isinstance(v, str) else v for v in map(_plain, row)])
    book.save(out)


def _xml_safe(text: str) -> str:
    return _NOT_IN_XML.sub("\ufffd", text)


def template_csv(features: Sequence[str]) -> str:
    """A blank CSV template: id, the features, and the optional diagnosis column."""
    buffer = io.StringIO()
    write_csv(buffer, [CASE_ID, *features, DIAGNOSIS], [])
    return buffer.getvalue()


def template_xlsx(features: Sequence[str]) -> bytes:
    """A blank XLSX template with one sheet named 'cases'."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    book.create_sheet("cases").append([CASE_ID, *features, DIAGNOSIS])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
