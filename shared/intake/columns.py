"""Match a header to the features by name (through ALIASES), never by position."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from shared.features import ALIASES, CASE_ID, DIAGNOSIS, FEATURES, canonical

from .numbers import NUMBER

_ID_NAMES = frozenset({"id", "case_id"})


def resolve_name(name: str) -> str | None:
    """The published feature name, "id" or "diagnosis" a header means, or None if unknown."""
    key = canonical(name)
    if key in _ID_NAMES:
        return CASE_ID
    if key == DIAGNOSIS:
        return DIAGNOSIS
    return ALIASES.get(key)


def features_in(header: Sequence[str]) -> frozenset[str]:
    """The published features a header has columns for (by name, through ALIASES)."""
    return frozenset(f for f in (resolve_name(name) for name in header) if f in FEATURES)


def check_features(features: Sequence[str]) -> tuple[str, ...]:
    """The model's features must be published names (a programming error otherwise, not bad input)."""
    unknown = [f for f in features if f not in FEATURES]
    if unknown or not features or len(set(features)) != len(features):
        raise ValueError(f"features must be distinct published names; got {list(features)!r}")
    return tuple(features)


@dataclass(frozen=True)
class ColumnMap:
    width: int  # fields in every row, including any dropped trailing unnamed column
    kept: int  # leading columns kept for exports (trailing unnamed columns dropped)
    feature_index: tuple[int, ...]  # position of each model feature, in `features` order
    id_index: int | None
    diagnosis_index: int | None
    unnamed: tuple[int, ...]  # columns without a name: every cell in them must be empty


def match_header(
    header: Sequence[str], features: Sequence[str], require_id: bool = True
) -> tuple[ColumnMap, list[str]]:
    """Map the header; the list says every problem (duplicates, missing columns)."""
    problems: list[str] = []
    seen: dict[str, int] = {}
    unnamed: list[int] = []
    for index, name in enumerate(header):
        if not name.strip():
            unnamed.append(index)
            continue
        target = resolve_name(name)
        if target is None:
            continue
        if target in seen:
            other = seen[target]
            problems.append(
                f"columns {header[other]!r} (column {other + 1}) and {name!r} (column {index + 1}) "
                f"both mean {target}; keep one"
            )
        else:
            seen[target] = index
    missing = [f for f in features if f not in seen]
    if missing:
        problems.append("missing required columns: " + ", ".join(missing) + _near_misses(header, missing))
    if require_id and CASE_ID not in seen:
        problems.append("missing required column: id (the case id)")
    if (missing or CASE_ID not in seen) and _looks_like_data(header):
        problems.append("the first line looks like data: the first line must be the header (column names)")
    kept = len(header)
    while kept and kept - 1 in unnamed:
        kept -= 1
    cmap = ColumnMap(
        width=len(header),
        kept=kept,
        feature_index=tuple(seen.get(f, -1) for f in features),
        id_index=seen.get(CASE_ID),
        diagnosis_index=seen.get(DIAGNOSIS),
        unnamed=tuple(unnamed),
    )
    return cmap, problems


def _squash(name: str) -> str:
    return re.sub(r"[\s_\-.]+", "", canonical(name))


def _near_misses(header: Sequence[str], missing: list[str]) -> str:
    """The file's unmatched columns that look like a missing one: another spacing, a typo, a unit added. Named in
    the refusal only; a column is never taken for a feature it is not spelt as."""
    spellings: dict[str, str] = {_squash(alias): f for alias, f in ALIASES.items() if f in missing}
    hints = []
    for name in header:
        if not name.strip() or resolve_name(name) is not None:
            continue
        close = difflib.get_close_matches(_squash(name), spellings, n=1, cutoff=0.8)
        if close:
            hints.append(f"{name!r} is not an accepted spelling of {spellings[close[0]]!r}")
    return f" ({'; '.join(hints)})" if hints else ""


def _looks_like_data(header: Sequence[str]) -> bool:
    numbers = sum(1 for name in header if NUMBER.fullmatch(name.strip(" ")))
    return numbers * 2 >= len(header) > 0
