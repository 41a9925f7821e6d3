"""XLSX workbooks: checked as a zip before anything is parsed, then read with calamine (Rust).

calamine gives each cell's value but, for a formula, only the result a spreadsheet cached when it last saved, and
for an error cell nothing. Neither may be scored as if typed: the sheet's XML is searched for them (`<f>` and
`t="e"`, rare in lab files, found without parsing the rest), and those cells come back as what they are.
"""

from __future__ import annotations

import datetime as dt
import posixpath
import re
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import defusedxml.ElementTree as SafeXML
from python_calamine import CalamineWorkbook

from .cells import Typed
from .errors import FileRejected
from .source import Content, stream

OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
MAX_UNZIPPED = 200 * 1024 * 1024
MAX_RATIO = 100
MAX_ENTRIES = 10_000
_LEGACY = "the file is an encrypted workbook or a legacy .xls file; save it as an unencrypted .xlsx or as CSV UTF-8"


def zip_problems(content: Content) -> list[str]:
    """Everything wrong with the container, found from the zip directory before any XML is parsed."""
    try:
        archive = zipfile.ZipFile(stream(content))
        infos = archive.infolist()
    except Exception:
        return ["the file is not a valid XLSX workbook (damaged or truncated zip)"]
    names = {info.filename for info in infos}
    problems = []
    if "xl/workbook.xml" not in names:
        problems.append("the file is a zip archive but not an XLSX workbook (no xl/workbook.xml)")
    if any(info.flag_bits & 0x1 for info in infos):
        problems.append("the workbook is encrypted; save it without a password")
    total = sum(info.file_size for info in infos)
    if len(infos) > MAX_ENTRIES or total > MAX_UNZIPPED:
        problems.append(f"the workbook unpacks to more than {MAX_UNZIPPED // 2**20} MB; refused before reading")
    elif any(info.file_size > max(2**20, MAX_RATIO * info.compress_size) for info in infos):
        problems.append(f"the workbook is compressed more than {MAX_RATIO}:1 (a zip bomb?); refused")
    if any(name.lower().endswith("vbaproject.bin") for name in names) or _macro_enabled(archive, names):
        problems.append("the workbook contains macros (.xlsm); save it as a plain .xlsx")
    return problems


def _macro_enabled(archive: zipfile.ZipFile, names: set[str]) -> bool:
    name = "[Content_Types].xml"
    if name not in names or archive.getinfo(name).file_size > 2**20:
        return False
    try:
        return b"macroenabled" in archive.read(name).lower()
    except Exception:
        return False


class Workbook:
    """One sheet of a workbook: the only sheet, or the one named 'cases' (any letter case)."""

    def __init__(self, content: Content) -> None:
        problems = zip_problems(content)
        if problems:
            raise FileRejected(problems)
        try:
            self._book = CalamineWorkbook.from_filelike(stream(content))
            names = [m.name for m in self._book.sheets_metadata]
            self._archive = zipfile.ZipFile(stream(content))
        except Exception as exc:
            raise FileRejected(f"the workbook could not be read ({type(exc).__name__})") from None
        self.sheet = _chosen_sheet(names)

    def rows(self) -> Iterator[tuple[int, list[object]]]:
        """Yield (sheet row number, cells from column A) for each row that is not wholly empty."""
        try:
            # calamine parses the sheet without holding the GIL: the search for marked cells runs meanwhile.
            with ThreadPoolExecutor(max_workers=1) as beside:
                searched = beside.submit(_marked_cells, self._archive, _sheet_member(self._archive, self.sheet))
                sheet = self._book.get_sheet_by_name(self.sheet)
                marked = searched.result()
            # Without skipping the empty area, the rows start at A1: the first is sheet row 1, cells from column A.
            values: list[object]
            for offset, values in enumerate(sheet.to_python(skip_empty_area=False)):  # type: ignore[assignment]
                number = offset + 1
                # Most rows hold only numbers and text: kept as calamine gives them, after one test of the row's
                # types instead of a look at each cell in Python.
                plain = _AS_GIVEN.issuperset(map(type, values)) and "" not in values
                cells: list[object] = values if plain else [_value(v) for v in values]
                for column in marked.get(number, {}):
                    cells += [None] * (column + 1 - len(cells))
                    cells[column] = marked[number][column]
                while cells and cells[-1] is None:
                    cells.pop()
                if cells:
                    yield number, cells
        except FileRejected:
            raise
        except Exception as exc:
            raise FileRejected(f"the sheet {self.sheet!r} could not be read ({type(exc).__name__})") from None
        finally:
            self._archive.close()


def _chosen_sheet(names: list[str]) -> str:
    """The sheet to read: the only one, or the one named 'cases' (any letter case)."""
    chosen = names if len(names) == 1 else [n for n in names if n.strip().lower() == "cases"]
    if len(chosen) != 1:
        listed = ", ".join(repr(n) for n in names)
        raise FileRejected(
            f"the workbook has {len(names)} sheets ({listed}); keep one sheet or name the one to read 'cases'"
        )
    return chosen[0]


_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"


def first_row(content: Content) -> list[object]:
    """The cells, from column A, of the chosen sheet's first row that holds a value, as `Workbook.rows` gives it.

    Only the start of the sheet's XML is parsed (and of the shared strings, up to the last one the row uses), so
    a header costs milliseconds where reading a sheet of 100k rows costs seconds: what the web may spend on a
    workbook in a request. The container is checked first, as for `Workbook`.
    """
    problems = zip_problems(content)
    if problems:
        raise FileRejected(problems)
    try:
        with zipfile.ZipFile(stream(content)) as archive:
            book = SafeXML.fromstring(archive.read("xl/workbook.xml"))
            sheets = book.find(_SHEETS)
            names = [s.get("name", "") for s in (sheets if sheets is not None else [])]
            member = _sheet_member(archive, _chosen_sheet(names))
            if member is None or member not in archive.namelist():
                raise FileRejected("the workbook's sheet could not be found")
            cells = _first_cells(archive, member)
            wanted = {int(raw) for kind, raw in cells.values() if kind == "s"}
            strings = _shared_strings(archive, wanted) if wanted else {}
    except FileRejected:
        raise
    except Exception as exc:
        raise FileRejected(f"the workbook could not be read ({type(exc).__name__})") from None
    row: list[object] = [None] * (max(cells) + 1 if cells else 0)
    for column, (kind, raw) in cells.items():
        row[column] = strings.get(int(raw)) if kind == "s" else _raw_value(kind, raw)
    while row and row[-1] is None:
        row.pop()
    return row


def _first_cells(archive: zipfile.ZipFile, member: str) -> dict[int, tuple[str, str]]:
    """(type, raw text) by 0-based column for the first sheet row with a value; the rest of the XML is not read."""
    with archive.open(member) as xml:
        for _, row in SafeXML.iterparse(xml, events=("end",)):
            if row.tag != f"{_MAIN}row":
                continue
            cells: dict[int, tuple[str, str]] = {}
            for at, cell in enumerate(row.iter(f"{_MAIN}c")):
                ref = re.match(r"[A-Z]{1,3}", cell.get("r", ""))
                column = _column_index(ref.group(0).encode()) if ref else at
                formula, value = cell.find(f"{_MAIN}f"), cell.find(f"{_MAIN}v")
                kind = cell.get("t", "n")
                if formula is not None:
                    cells[column] = ("formula", "=" + (formula.text or ""))
                elif kind == "inlineStr":
                    cells[column] = ("str", "".join(t.text or "" for t in cell.iter(f"{_MAIN}t")))
                elif value is not None and value.text:
                    cells[column] = (kind, value.text)
            if any(raw for _, raw in cells.values()):
                return cells
            row.clear()
    return {}


def _shared_strings(archive: zipfile.ZipFile, wanted: set[int]) -> dict[int, str]:
    """The shared strings at the indexes wanted, read in order up to the last of them."""
    found: dict[int, str] = {}
    if "xl/sharedStrings.xml" not in archive.namelist():
        return found
    with archive.open("xl/sharedStrings.xml") as xml:
        index = 0
        for _, item in SafeXML.iterparse(xml, events=("end",)):
            if item.tag != f"{_MAIN}si":
                continue
            if index in wanted:  # plain text, or the runs of rich text (not their phonetic guides)
                plain = item.find(f"{_MAIN}t")
                runs = [plain] if plain is not None else [r.find(f"{_MAIN}t") for r in item.findall(f"{_MAIN}r")]
                found[index] = "".join(t.text or "" for t in runs if t is not None)
                if len(found) == len(wanted):
                    break
            item.clear()
            index += 1
    return found


def _raw_value(kind: str, raw: str) -> object:
    """A cell of the first row from its XML type and text, as calamine would give it through `_value`."""
    if kind == "formula":
        return Typed("formula", raw)
    if kind == "b":
        return Typed("boolean", "TRUE" if raw == "1" else "FALSE")
    if kind == "e":
        return Typed("error", raw)
    if kind in ("str", "inlineStr"):
        return raw or None
    try:
        return float(raw)
    except ValueError:
        return raw


_AS_GIVEN = frozenset({float, int, str})  # what `_value` returns unchanged (but '', which is None there)


def _value(value: object) -> object:
    """A cell as calamine gives it: text ('' when empty), a number, a boolean or a date."""
    if isinstance(value, bool):
        return Typed("boolean", "TRUE" if value else "FALSE")
    if isinstance(value, float | int):
        return value
    if isinstance(value, str):
        return value or None
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return Typed("date", value.isoformat())
    if isinstance(value, dt.timedelta):
        return Typed("date", str(value))
    return Typed("other", str(value))


_RELS = "{http://schemas.openxmlformats.org/package/2006/relationships}Relationship"
_SHEETS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}sheets"
_REL_ID = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"


def _sheet_member(archive: zipfile.ZipFile, name: str) -> str | None:
    """The zip member that holds the named sheet's XML (workbook.xml names it, its relationships locate it)."""
    try:
        book = SafeXML.fromstring(archive.read("xl/workbook.xml"))
        rels = SafeXML.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
    except KeyError:
        return None
    sheets = book.find(_SHEETS)
    rel_id = next((s.get(_REL_ID) for s in (sheets if sheets is not None else []) if s.get("name") == name), None)
    target = next((r.get("Target", "") for r in rels.iter(_RELS) if r.get("Id") == rel_id), None)
    if target is None:
        return None
    return target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join("xl", target))


_CELL_REF = re.compile(rb'<c\b[^>]*?\br="([A-Z]{1,3})([0-9]+)"[^>]*>')
_FORMULA = re.compile(rb"<f\b[^>]*?(?:/>|>(.*?)</f>)", re.DOTALL)
_ERROR_VALUE = re.compile(rb"<v>(.*?)</v>", re.DOTALL)


def _marked_cells(archive: zipfile.ZipFile, member: str | None) -> dict[int, dict[int, Typed]]:
    """Formula and error cells by sheet row and 0-based column, found in the sheet's XML."""
    if member is None or member not in archive.namelist():
        return {}
    xml = archive.read(member)  # its unpacked size was checked by zip_problems
    found: dict[int, dict[int, Typed]] = {}
    for marker in (b"<f>", b"<f ", b'"e"'):
        at = xml.find(marker)
        while at >= 0:
            start = xml.rfind(b"<c ", 0, at)
            end = xml.find(b"</c>", at)
            cell = _CELL_REF.match(xml, start) if start >= 0 else None
            if cell and (marker != b'"e"' or b' t="e"' in cell.group(0)):
                kind, text = _typed(xml[cell.end() : end if end >= 0 else len(xml)], marker)
                column = _column_index(cell.group(1))
                found.setdefault(int(cell.group(2)), {})[column] = Typed(kind, text)
            at = xml.find(marker, at + 1)
    return found


def _typed(inner: bytes, marker: bytes) -> tuple[str, str]:
    if marker == b'"e"':
        value = _ERROR_VALUE.search(inner)
        return "error", _unescape(value.group(1) if value else b"#ERROR")
    formula = _FORMULA.search(inner)
    return "formula", "=" + _unescape(formula.group(1) or b"" if formula else b"")


def _unescape(text: bytes) -> str:
    decoded = text.decode("utf-8", "replace")
    for entity, char in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'"), ("&amp;", "&")):
        decoded = decoded.replace(entity, char)
    return decoded


def _column_index(letters: bytes) -> int:
    index = 0
    for letter in letters:
        index = index * 26 + letter - 64
    return index - 1
