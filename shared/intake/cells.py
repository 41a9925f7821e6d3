"""Cell values that are neither text nor numbers (spreadsheet formulas, dates, booleans, errors)."""

from __future__ import annotations

import math
from dataclasses import dataclass

_REASONS = {
    "formula": "is a formula",
    "date": "is a date",
    "boolean": "is a boolean",
    "error": "is a spreadsheet error value",
}


@dataclass(frozen=True)
class Typed:
    """A spreadsheet cell whose type says it is not a measurement; `text` is how it reads."""

    kind: str  # "formula" | "date" | "boolean" | "error" | "other"
    text: str

    @property
    def reason(self) -> str:
        return _REASONS.get(self.kind, "is not a number")


def number_text(value: float) -> str:
    """Write a number the way a case id or an exported cell shows it: 842302.0 -> '842302'."""
    if math.isfinite(value) and value == int(value) and abs(value) < 1e21:
        return str(int(value))
    return repr(float(value))


def cell_text(value: object) -> str:
    """The value as given, as text (for messages and for exports that keep every input column)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Typed):
        return value.text
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return number_text(value)
    return str(value)


def is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")
