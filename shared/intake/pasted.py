"""A case pasted from a spreadsheet into the Score page: the header row and one case's row, copied together.

The columns are matched by name, as a file's are (`columns.resolve_name`), never by position: a row pasted
without its header is refused. The values are handed to the form as written, to be checked when the case is
scored, like every value typed there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared.features import CASE_ID, DIAGNOSIS, FEATURES

from .columns import resolve_name
from .csvfile import detect_delimiter, records
from .errors import FileRejected

MAX_CHARS = 20_000  # a header and one row of a wide sheet, with room to spare


@dataclass(frozen=True)
class Pasted:
    values: dict[str, str]  # form field (a feature, or case_id) -> the text as pasted
    not_read: list[str]  # pasted columns this model does not read, as their headers say
    missing: list[str]  # the model's features the paste had no column for
    present: frozenset[str]  # every feature the paste has a column for, read by this model or not


def form_values(text: str, features: Sequence[str]) -> Pasted:
    """The form's values from a pasted header and row; FileRejected, saying why, for anything else."""
    if len(text) > MAX_CHARS:
        raise FileRejected(f"paste at most {MAX_CHARS:,} characters: a header row and one case's row")
    content = text.strip("\r\n").encode()
    if not content.strip():
        raise FileRejected("paste two rows copied from a spreadsheet: its header row and one case's row")
    rows = [row for _, row in records(content, detect_delimiter(content))]
    header, cases = rows[0], rows[1:]
    named = [resolve_name(column) for column in header]
    if not any(name in features or name == CASE_ID for name in named):
        raise FileRejected("the first row must name the columns (radius_mean, …), as a spreadsheet's header does: "
                           "values are never matched to fields by their position")  # fmt: skip
    if len(cases) != 1:
        raise FileRejected(f"paste the header row and exactly one case's row; this paste has {len(cases)} rows under "
                           "the header")  # fmt: skip
    (row,) = cases
    if len(row) != len(header):
        raise FileRejected(f"the case's row has {len(row)} cells and the header {len(header)}: copy them together")
    values: dict[str, str] = {}
    not_read: list[str] = []
    for column, name, value in zip(header, named, row, strict=True):
        if name in features or name == CASE_ID:
            if name in values:
                raise FileRejected(f"two pasted columns mean {name}: keep one")
            values["case_id" if name == CASE_ID else str(name)] = value.strip()
        elif name != DIAGNOSIS:
            not_read.append(column)
    present = frozenset(name for name in named if name in FEATURES)
    return Pasted(values, not_read, [f for f in features if f not in values], present)
