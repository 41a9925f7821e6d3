"""Cases sent as JSON objects or by the web form, checked by the same validator as files."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from shared.features import CASE_ID, DIAGNOSIS

from .batch import Batch
from .columns import check_features, resolve_name
from .errors import LIST_AT_MOST, FileRejected
from .source import Content, stream
from .validate import BatchBuilder, Ranges


@dataclass(frozen=True)
class NotFinite:
    """A JSON number that is no finite float: `NaN`, `Infinity`, `-Infinity` (not JSON, but Python writes them)
    or a literal too large for a float (`1e400`). Kept as written, so the refusal can name it."""

    text: str


def _number(text: str) -> float | NotFinite:
    value = float(text)
    return value if math.isfinite(value) else NotFinite(text)


def loads(data: bytes | str) -> object:
    """Parse a JSON body, keeping non-finite numbers as `NotFinite` for `validate_cases` to refuse by case and key.

    Raises ValueError for text that is not JSON, and RecursionError when it nests too deep (see `too_deep`).
    """
    return json.loads(data, parse_constant=NotFinite, parse_float=_number)


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},:]')


def too_deep(text: str, limit: int) -> str:
    """Where JSON text first nests deeper than `limit`, as a path to its case and key (`cases[0].radius_mean`).

    Read lexeme by lexeme, without recursion: the parser itself gave up on this text.
    """
    frames: list[list[object]] = []  # [kind, key or index, expecting a key]
    for match in _TOKEN.finditer(text):
        lexeme = match.group()
        if lexeme in ("[", "{"):
            if len(frames) >= limit:
                break
            frames.append(["{", None, True] if lexeme == "{" else ["[", 0, False])
        elif lexeme in ("]", "}"):
            if frames:
                frames.pop()
        elif lexeme == "," and frames:
            top = frames[-1]
            top[1], top[2] = (top[1] + 1, False) if top[0] == "[" else (top[1], True)  # type: ignore[operator]
        elif lexeme == ":" and frames:
            frames[-1][2] = False
        elif frames and frames[-1][0] == "{" and frames[-1][2]:
            try:
                frames[-1][1] = json.loads(lexeme)
            except ValueError:
                frames[-1][1] = lexeme
    path = ""
    for kind, at, _ in frames[:3]:
        path += f"[{at}]" if kind == "[" else (f".{at}" if path else str(at))
    return path or "the body"


def validate_cases(
    cases: Sequence[Mapping[str, object]], features: Sequence[str], ranges: Ranges | None = None, first_row: int = 1
) -> Batch:
    """Validate cases given as objects: {"id" or "case_id": ..., "<feature or alias>": value, "diagnosis"?: ...}.

    Values are JSON numbers (never booleans) or text read with the one number grammar. Structural problems
    (not a list of objects, unknown keys, a missing feature key, two keys meaning the same name) refuse the
    whole request, naming cases by their 0-based index (`cases[2]`), and so do values no case can hold: a list or
    an object, or a number that is not finite (`NotFinite`, from `loads`). Value problems reject only their row;
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
                if isinstance(value, NotFinite):
                    problems.append(f"cases[{index}] {key!r}: {value.text} is not a finite number")
                elif isinstance(value, Mapping | list):
                    problems.append(f"cases[{index}] {key!r}: is {_kind(value)}, not a number or text")
                elif target in slots:
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


def _kind(value: object) -> str:
    return "an object" if isinstance(value, Mapping) else "a list"


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
