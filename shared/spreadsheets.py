"""Result files for spreadsheets: text that could run as a formula is neutralised, numbers stay numbers."""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import IO, Any

import numpy as np

from shared.features import CASE_ID, DIAGNOSIS

_FORMULA = frozenset("=+-@")
_CONTROL_START = ("\t", "\r", "\n")
# Characters XML 1.0 cannot carry; an XLSX cell cannot hold them at all. Lone UTF-16 surrogates cannot be written
# as UTF-8 at all (a JSON case id may hold one; it is rejected, but its input cell is still exported).
_NOT_IN_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_NOT_UTF8 = re.compile("[\ud800-\udfff]")


def _first_visible(text: str) -> str:
    """The first character a spreadsheet would act on: whitespace and invisible format characters (zero-width
    space, joiners, BOM, direction marks) are skipped, and compatibility forms folded (full-width U+FF1D is =)."""
    for ch in text:
        if not ch.isspace() and unicodedata.category(ch) != "Cf":
            return unicodedata.normalize("NFKC", ch)[:1]
    return ""


def neutralise(text: str) -> str:
    """Prefix "'" to text a spreadsheet could read as a formula (OWASP CSV injection): text starting with a tab,
    CR or LF, or whose first visible character is = + - @, also after leading spaces, zero-width characters or
    as a full-width or small form (U+FF1D, U+FE66, U+FF0B, U+FF0D, U+FF20). Numbers are not text and never come
    here."""
    if not text or (text[0].isascii() and text[0].isalnum()):
        return text  # the common case, decided by one character
    if text.startswith(_CONTROL_START) or _first_visible(text) in _FORMULA:
        return "'" + text
    return text


def csv_writer(out: IO[str], lineterminator: str = "\r\n") -> Any:
    """A CSV writer that quotes every text field (OWASP), so a `,` or `;` inside one never splits a cell in any
    locale; numbers are written bare and stay numbers."""
    return csv.writer(out, lineterminator=lineterminator, quoting=csv.QUOTE_NONNUMERIC)


def utf8_safe(text: str) -> str:
    """Text as it can be written to a UTF-8 file: a lone surrogate becomes U+FFFD."""
    return _NOT_UTF8.sub("\ufffd", text) if _NOT_UTF8.search(text) else text


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
    return neutralise(utf8_safe(str(value)))


def write_csv(out: IO[str], header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Write RFC 4180 CSV (CRLF line ends)."""
    writer = csv_writer(out)
    writer.writerow([neutralise(name) for name in header])
    for row in rows:
        writer.writerow(["" if v is None else v for v in map(_plain, row)])


#: A worksheet holds 1,048,576 rows (Excel's limit, and the format's); the export's header takes one.
XLSX_MAX_ROWS = 1_048_575


def write_xlsx(out: IO[bytes], header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Write one sheet with XlsxWriter, a row at a time (constant memory): text stays text (never a formula, a
    link or a number), characters XML cannot hold become U+FFFD, and a text longer than a cell holds is cut
    where it says so.

    Numbers are written with 16 significant digits, so a value may move by one unit in the last place.
    """
    import xlsxwriter

    book = xlsxwriter.Workbook(out, _AS_GIVEN)
    sheet = book.add_worksheet("results")
    sheet.write_row(0, 0, [_cell_text(neutralise(name)) for name in header])
    for i, row in enumerate(rows, 1):
        sheet.write_row(i, 0, [_cell_text(v) if isinstance(v, str) else v for v in map(_plain, row)])
    book.close()


#: Cells as given: XlsxWriter would otherwise make text that looks like a formula, a link or a number into one.
_AS_GIVEN = {
    "constant_memory": True,
    "strings_to_formulas": False,
    "strings_to_urls": False,
    "strings_to_numbers": False,
}
#: What one cell holds (Excel's limit, in UTF-16 units; XlsxWriter would cut a longer text without a word).
_CELL_MAX = 32_767


def _cell_text(text: str) -> str:
    text = _xml_safe(text)
    if len(text) * 2 <= _CELL_MAX or _utf16_units(text) <= _CELL_MAX:
        return text
    said = f"… [cut here: {len(text):,} characters, more than a cell holds; the CSV has them all]"
    budget = _CELL_MAX - len(said)
    units = itertools.accumulate(2 if ord(ch) > 0xFFFF else 1 for ch in text)  # outside the BMP: two units
    return text[: sum(1 for _ in itertools.takewhile(lambda n: n <= budget, units))] + said


def _utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _xml_safe(text: str) -> str:
    return _NOT_IN_XML.sub("\ufffd", text)


def template_csv(features: Sequence[str]) -> str:
    """A blank CSV template: id, the features, and the optional diagnosis column (our own names: unquoted, so the
    filled-in file reads on the plain path)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow([CASE_ID, *features, DIAGNOSIS])
    return buffer.getvalue()


def template_xlsx(features: Sequence[str]) -> bytes:
    """A blank XLSX template with one sheet named 'cases'."""
    import xlsxwriter

    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, _AS_GIVEN)
    book.add_worksheet("cases").write_row(0, 0, [CASE_ID, *features, DIAGNOSIS])
    book.close()
    return buffer.getvalue()
