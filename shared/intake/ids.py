"""Case ids (kept as text) and the optional diagnosis."""

from __future__ import annotations

import re
from collections.abc import Sequence

from .cells import Typed, number_text
from .numbers import value_text

MAX_ID_LENGTH = 64
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_SURROGATE = re.compile("[\ud800-\udfff]")  # a JSON string may hold one alone (`"\\ud800"`); UTF-8 cannot
_ANY_BAD = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def parse_id(value: object, required: bool) -> tuple[str | None, str | None]:
    """Read one case id: (id or None, reason it is refused or None). Surrounding spaces are trimmed."""
    if isinstance(value, Typed):
        return None, value.reason
    if isinstance(value, bool):
        return None, "is a boolean"
    if isinstance(value, int | float):
        text = number_text(float(value)) if isinstance(value, float) else str(value)
    elif value is None:
        text = ""
    elif isinstance(value, str):
        text = value.strip(" ")
    else:
        return None, "is not text or a number"
    if not text:
        return None, ("is empty" if required else None)
    if len(text) > MAX_ID_LENGTH:
        return None, f"is longer than {MAX_ID_LENGTH} characters"
    if _CONTROL.search(text):
        return None, "contains a control character"
    if _BIDI.search(text):
        return None, "contains a Unicode direction-control character"
    if _SURROGATE.search(text):
        return None, "contains a lone UTF-16 surrogate, which is not a character"
    return text, None


def parse_ids(values: Sequence[object], required: bool) -> tuple[list[str | None], dict[int, str]]:
    """Read a column of ids; refused ones are None with a reason by row index."""
    if all(type(v) is str for v in values):
        text = [str(v).strip(" ") for v in values]
        lengths = list(map(len, text))
        if text and min(lengths) > 0 and max(lengths) <= MAX_ID_LENGTH and not _ANY_BAD.search("".join(text)):
            return list(text), {}
    ids: list[str | None] = []
    bad: dict[int, str] = {}
    for i, value in enumerate(values):
        case_id, reason = parse_id(value, required)
        ids.append(case_id)
        if reason is not None:
            bad[i] = reason
    return ids, bad


_DIAGNOSES = {"m": "M", "malignant": "M", "b": "B", "benign": "B"}


def parse_diagnosis(value: object) -> tuple[str | None, str | None]:
    """The user's own diagnosis, normalised to M/B: (label or None, warning or None). Never scored."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, None
    label = _DIAGNOSES.get(value.strip().lower()) if isinstance(value, str) else None
    if label is None:
        return None, f"diagnosis {value_text(value)!r} is not M or B (ignored)"
    return label, None
