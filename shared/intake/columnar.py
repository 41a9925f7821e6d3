"""One part of a plainly written CSV (see `plan`), read column-wise by pandas' C parser.

pandas 3.1 (as pinned) converts every measurement with one converter (its `float_precision` modes are deprecated
and all alike), and that converter agrees bit for bit with `float()` wherever both accept a spelling. What it
accepts differs from the number grammar (`numbers`) only by ``inf``/``infinity`` and overflowing exponents
(tests/test_parts.py holds the list of spellings and a property test, so an upgrade that changes this fails
there). So a part is read this way only when every value is finite and none is implausible (negative, or a zero
size), and it holds no tab (in a comma file), vertical tab or form feed, which a converter may skip as whitespace;
otherwise the caller reads it record by record, which names every reason. Either way the batch is the same.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .batch import Batch
from .columns import check_features, match_header
from .validate import BatchBuilder

_OTHER_SPACE = (b"\x0b", b"\x0c")


def read_part(
    content: bytes,
    features: Sequence[str],
    first_row: int,
    ranges: Mapping[str, tuple[float, float]] | None = None,
) -> Batch | None:
    """The part's rows as one batch (no duplicate-id notes: the caller finds those across parts), or None."""
    features = check_features(features)
    end = content.find(b"\n") + 1
    header_line, body = content[:end].decode("utf-8-sig").rstrip("\n").removesuffix("\r"), content[end:]
    delimiter = "," if "," in header_line else "\t"
    if not body or b'"' in body or any(mark in body for mark in _OTHER_SPACE) or (delimiter == "," and b"\t" in body):
        return None
    cmap, problems = match_header(header_line.split(delimiter), features)
    if problems or cmap.id_index is None:
        return None
    text_columns = [c for c in (cmap.id_index, cmap.diagnosis_index) if c is not None]
    dtypes: dict[int, object] = {c: np.float64 for c in cmap.feature_index} | {c: object for c in text_columns}
    try:
        frame = pd.read_csv(
            io.BytesIO(body),
            sep=delimiter,
            header=None,
            usecols=sorted(dtypes),
            dtype=dtypes,
            na_filter=False,
            quoting=csv.QUOTE_NONE,
            engine="c",
            encoding="utf-8",
        )
    except (ValueError, pd.errors.ParserError):
        return None
    X = frame[list(cmap.feature_index)].to_numpy(dtype=np.float64, copy=True)
    builder = BatchBuilder(features, range(len(features)), 0, None, ranges=ranges, duplicates=False)
    if not np.isfinite(X).all() or builder.implausible(X):
        return None
    ids = frame[cmap.id_index].tolist()
    given = None if cmap.diagnosis_index is None else frame[cmap.diagnosis_index].tolist()
    if not all(type(v) is str for v in ids) or (given is not None and not all(type(v) is str for v in given)):
        return None
    return builder.build_parsed(first_row, X, ids, given)
