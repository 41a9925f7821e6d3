"""The one number grammar every path (CSV, XLSX, form, JSON) reads measurements with.

A measurement written as text is, after trimming surrounding ASCII spaces,
``[+-]?(\\d+(\\.\\d*)?|\\.\\d+)([eE][+-]?\\d+)?`` with ASCII digits only, converted with ``float()``.
No ``_``, no Unicode digits, no thousands separators, no ``inf``/``nan``/``NA``/``null``/``None``.
A result that is not finite (``1e309``) is refused. In a semicolon-delimited CSV the decimal mark may
instead be a single comma between digits (``[+-]?\\d+,\\d+``, read as a point), never a thousands separator;
a file that mixes both marks is refused (see ``DecimalMarks``).

The vectorised fast path relies on this equivalence: a string made only of ``0-9 . e E + -`` and ASCII
spaces is accepted by ``float()`` exactly when it matches the grammar above (``float()`` then differs only
in ``_``, Unicode digits/whitespace and ``inf``/``nan``, all of which use other characters).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt

from .cells import Typed, cell_text
from .errors import FileRejected, shorten

NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
DECIMAL_COMMA = re.compile(r"[+-]?[0-9]+,[0-9]+")
_OUTSIDE_ALPHABET = re.compile(r"[^0-9.eE+\- ]")
_THOUSANDS = re.compile(r"[+-]?[0-9]{1,3}(?:[,.' ][0-9]{3})+(?:[.,][0-9]+)?")
NA_WORDS = frozenset({"na", "n/a", "nan", "null", "none", "nil", "missing", "#n/a", "n.a.", "-", "?"})
INF_WORDS = frozenset({"inf", "infinity", "∞", "1.#inf"})

NOT_FINITE = "is out of range (not finite)"

_FLOAT = frozenset({float})
Cell = tuple[int, int]  # (row index in the batch, column index in `features`)


def parse_text(text: str, decimal_comma: bool = False) -> tuple[float, str | None]:
    """Read one measurement written as text: (value, None) or (nan, reason)."""
    s = text.strip(" ")
    if not text.strip():
        return math.nan, "is empty"
    if NUMBER.fullmatch(s):
        value = float(s)
    elif decimal_comma and DECIMAL_COMMA.fullmatch(s):
        value = float(s.replace(",", "."))
    else:
        return math.nan, _why_not(s, decimal_comma)
    return (value, None) if math.isfinite(value) else (math.nan, NOT_FINITE)


def _why_not(s: str, decimal_comma: bool) -> str:
    low = s.strip().lower()
    if low in NA_WORDS:
        return f"text not allowed: {shorten(s.strip(), 20)}"
    if low.lstrip("+-") in INF_WORDS:
        return "is infinite"
    if "_" in s and any(c.isdigit() for c in s):
        return "is not a number (no '_' digit separators)"
    if any(c.isdigit() and not c.isascii() for c in s):
        return "is not a number (only the digits 0-9)"
    if _THOUSANDS.fullmatch(s):
        return "is not a number (no thousands separators)"
    if not decimal_comma and DECIMAL_COMMA.fullmatch(s):
        point = s.replace(",", ".")  # a suggestion in the reason; the value itself stays refused
        return f"is not a number: write a decimal point ({point}); a decimal comma is read only in semicolon files"
    return "is not a number"


def parse_value(value: object, decimal_comma: bool = False) -> tuple[float, str | None]:
    """Read one measurement of any input type: text, a JSON/XLSX number, or a typed spreadsheet cell."""
    if value is None:
        return math.nan, "is empty"
    if isinstance(value, str):
        return parse_text(value, decimal_comma)
    if isinstance(value, bool):
        return math.nan, "is a boolean"
    if isinstance(value, Typed):
        return math.nan, value.reason
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            return math.nan, NOT_FINITE
        return (number, None) if math.isfinite(number) else (math.nan, NOT_FINITE)
    return math.nan, "is not a number"


class DecimalMarks:
    """Where a semicolon file first used a decimal comma and a decimal point; both at once is refused."""

    def __init__(self) -> None:
        self.comma: str | None = None
        self.point: str | None = None

    def note(self, kind: str, row: int, column: str, text: str) -> None:
        where = f"row {row} {column} {shorten(text, 30)!r}"
        if kind == "comma" and self.comma is None:
            self.comma = where
        elif kind == "point" and self.point is None:
            self.point = where
        if self.comma and self.point:
            raise FileRejected(self.conflict())

    def conflict(self) -> str:
        return (
            f"the file is delimited by ';' and uses both a decimal comma ({self.comma}) and a decimal point "
            f"({self.point}); a point may be a thousands separator here, so the numbers are ambiguous: "
            "use one decimal mark throughout"
        )


def parse_matrix(
    rows: Sequence[Sequence[object]],
    names: Sequence[str],
    *,
    all_text: bool,
    marks: DecimalMarks | None = None,
    row0: int = 1,
) -> tuple[npt.NDArray[np.float64], dict[Cell, str]]:
    """Parse an (n, k) block of cells; bad cells hold NaN and have a reason. `marks` set = ';' file."""
    n, k = len(rows), len(names)
    if n:
        flat: list[Any] = list(chain.from_iterable(rows))
        block = _all_numbers(flat) if all_text else _all_floats(flat)
        if block is not None:
            if marks is not None:
                _note_point(flat, marks, lambda i: (row0 + i // k, names[i % k]))
            return block.reshape(n, k), {}
    X = np.empty((n, k), dtype=np.float64)
    bad: dict[Cell, str] = {}
    for j, name in enumerate(names):
        column = [r[j] for r in rows]
        X[:, j] = _parse_column(column, j, bad, all_text, marks, row0, name)
    return X, bad


def _all_numbers(text: list[str]) -> npt.NDArray[np.float64] | None:
    """The fast path: every cell is a finite number in the grammar (see the module docstring), or None."""
    if _OUTSIDE_ALPHABET.search("".join(text)):
        return None
    try:
        values = np.fromiter(map(float, text), np.float64, len(text))
    except ValueError:
        return None
    return values if np.isfinite(values).all() else None


def _all_floats(values: list[object]) -> npt.NDArray[np.float64] | None:
    """The fast path for cells as a workbook or JSON gives them: every one a finite float, or None."""
    if not _FLOAT.issuperset(map(type, values)):
        return None
    numbers = np.array(values, dtype=np.float64)
    return numbers if np.isfinite(numbers).all() else None


def _note_point(text: list[str], marks: DecimalMarks, where: Callable[[int], tuple[int, str]]) -> None:
    if marks.point is None:
        for i, cell in enumerate(text):
            if "." in cell:
                row, name = where(i)
                marks.note("point", row, name, cell)
                return


def _parse_column(
    column: list[object],
    j: int,
    bad: dict[Cell, str],
    all_text: bool,
    marks: DecimalMarks | None,
    row0: int,
    name: str,
) -> npt.NDArray[np.float64]:
    if all_text:
        text: list[str] = column  # type: ignore[assignment]
        values = _all_numbers(text)
        if values is not None:
            if marks is not None:
                _note_point(text, marks, lambda i: (row0 + i, name))
            return values
    else:
        floats = _all_floats(column)
        if floats is not None:
            return floats
    out = np.empty(len(column), dtype=np.float64)
    for i, cell in enumerate(column):
        out[i], reason = parse_value(cell, marks is not None)
        if reason is not None:
            bad[(i, j)] = reason
        elif marks is not None and isinstance(cell, str):
            if "," in cell:
                marks.note("comma", row0 + i, name, cell)
            elif "." in cell:
                marks.note("point", row0 + i, name, cell)
    return out


def value_text(value: object) -> str:
    """The value for a message; a lone surrogate (possible in JSON text) is written as its escape, `\\ud800`."""
    return shorten(cell_text(value).encode("utf-8", "backslashreplace").decode("utf-8"))
