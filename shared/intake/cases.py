"""Cases sent as JSON objects or by the web form, checked by the same validator as files."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence

from shared.features import CASE_ID, DIAGNOSIS

from .batch import Batch
from .columns import check_features, resolve_name
from .errors import LIST_AT_MOST, FileRejected
from .source import Content, stream
from .validate import BatchBuilder, Ranges


def validate_cases(
    cases: Sequence[Mapping[str, object]], features: Sequence[str], ranges: Ranges | None = None, first_row: int = 1
) -> Batch:
    """Validate cases given as objects: {"id" or "case_id": ..., "<feature or alias>": value, "diagnosis"?: ...}.

    Values are JSON numbers (never booleans) or text read with the one number grammar. Structural problems
    (not a list of objects, unknown keys, a missing feature key, two keys meaning the same name) refuse the
    whole request, naming cases by their 0-based index (`cases[2]`). Value problems reject only their row;
    row numbers are 1-based (cases[0] is row `first_row`). Unlike uploads, a missing or blank id is allowed and stays
    None: the single-case form may leave it empty.
    """
    features = check_features(features)
    if isinstance(cases, str | bytes | bytearray) or not isinstance(cases, Sequence):
        raise FileRejected("the cases must be a list of objects")
    if not cases:
        raise FileRejected("the list of cases is empty")
    slots = {CASE_ID: 0, DIAGNOSIS: 1} | {f: 2 + j for j, f in enumerate(features)}
    problems: list[str] = []
    rows: list[list[object]] = []
    for index, case in enumerate(cases):
        if not isinstance(case, Mapping):
            problems.append(f"cases[{index}] is not an object")
            continue
        row: list[object] = [None] * len(slots)
        given: dict[str, str] = {}
        for key, value in case.items():
            target = resolve_name(key) if isinstance(key, str) else None
            if target is None:
                problems.append(f"cases[{index}]: unknown key {key!r}")
            elif target in given:
                problems.append(f"cases[{index}]: keys {given[target]!r} and {key!r} both mean {target}")
            else:
                given[target] = key
                if target in slots:
                    row[slots[target]] = value
        problems += [f"cases[{index}]: missing key {f!r}" for f in features if f not in given]
        rows.append(row)
    if problems:
        more = len(problems) - LIST_AT_MOST
        raise FileRejected(problems[:LIST_AT_MOST] + ([f"… and {more} more problems"] if more > 0 else []))
    builder = BatchBuilder(
        features, range(2, 2 + len(features)), 0, 1, ranges=ranges, all_text=False, id_required=False
    )
    return builder.build(first_row, rows)


def read_batches(
    content: Content, features: Sequence[str], batch_rows: int, ranges: Ranges | None = None
) -> Iterator[Batch]:
    """Stored cases (their structure was checked when they were sent), validated `batch_rows` at a time."""
    cases = json.load(stream(content))["cases"]
    for start in range(0, len(cases), batch_rows):
        yield validate_cases(cases[start : start + batch_rows], features, ranges, first_row=start + 1)


def read_rows(content: Content) -> tuple[list[str], Iterator[list[str]]]:
    """Every key any case has, in order of appearance, and each case's values as text (absent: empty)."""
    cases: list[dict[str, object]] = json.load(stream(content))["cases"]
    header = list(dict.fromkeys(key for case in cases for key in case))
    return header, ([_text(case.get(key)) for key in header] for case in cases)


def _text(value: object) -> str:
    return "" if value is None else repr(value) if isinstance(value, float) else str(value)
