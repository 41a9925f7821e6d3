"""XLSX workbooks: checked as a zip before parsing, then read with openpyxl (read-only, formulas visible)."""

from __future__ import annotations

import datetime as dt
import warnings
import zipfile
from collections.abc import Iterator
from typing import Any

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
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # openpyxl warns about styles/extensions it skips
                import openpyxl

                self._book: Any = openpyxl.load_workbook(stream(content), read_only=True, data_only=False)
        except Exception as exc:
            raise FileRejected(f"the workbook could not be read ({type(exc).__name__})") from None
        names: list[str] = list(self._book.sheetnames)
        chosen = names if len(names) == 1 else [n for n in names if n.strip().lower() == "cases"]
        if len(chosen) != 1 or not hasattr(self._book[chosen[0]], "iter_rows"):
            self._book.close()
            listed = ", ".join(repr(n) for n in names)
            raise FileRejected(
                f"the workbook has {len(names)} sheets ({listed}); keep one sheet or name the one to read 'cases'"
            )
        self.sheet = chosen[0]

    def rows(self) -> Iterator[tuple[int, list[object]]]:
        """Yield (sheet row number, cells) for each row that is not wholly empty."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for number, row in enumerate(self._book[self.sheet].iter_rows(), start=1):
                    cells = [_value(cell) for cell in row]
                    while cells and cells[-1] is None:
                        cells.pop()
                    if cells:
                        yield next((c.row for c in row if getattr(c, "row", None)), number), cells
        except FileRejected:
            raise
        except Exception as exc:
            raise FileRejected(f"the sheet {self.sheet!r} could not be read ({type(exc).__name__})") from None
        finally:
            self._book.close()


def _value(cell: Any) -> object:
    value = cell.value
    kind = cell.data_type
    if value is None or (kind == "n" and type(value) in (float, int)) or (kind == "s" and type(value) is str):
        return value
    if kind == "f":
        return Typed("formula", str(value))
    if kind == "b" or isinstance(value, bool):
        return Typed("boolean", "TRUE" if value else "FALSE")
    if kind == "e":
        return Typed("error", str(value))
    if isinstance(value, dt.datetime | dt.date | dt.time | dt.timedelta):
        return Typed("date", value.isoformat() if not isinstance(value, dt.timedelta) else str(value))
    if isinstance(value, float):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return value
    return Typed("other", str(value))
