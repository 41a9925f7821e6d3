"""Property: the form/JSON, CSV and XLSX paths accept exactly the same number strings, as the same floats."""

from __future__ import annotations

import math
import re

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.intake import Batch, iter_batches, validate_cases
from shared.intake.plain import read_batches as read_plain
from tests.test_intake import merge, raw_xlsx, to_csv

# The grammar as the product's issue states it, written out independently of the code under test.
SPEC = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", re.ASCII)
FEATURE = "concavity_mean"  # may be zero and has no upper limit, so only the grammar, finiteness and the sign decide
HEADER = ["id", FEATURE]

odd_chars = st.sampled_from([*"0123456789", *".eE+- _,", "\t", "１", "٣", "i", "n", "f", "a", "N", "x"])
structured = st.builds(
    lambda sign, lead, digits, point, frac, exp, pad: f"{pad}{sign}{lead}{digits}{point}{frac}{exp}{pad}",
    st.sampled_from(["", "+", "-"]),
    st.sampled_from(["", "0", "00"]),
    st.text("0123456789", max_size=4),
    st.sampled_from(["", ".", ","]),
    st.text("0123456789", max_size=3),
    st.sampled_from(["", "e5", "E-3", "e+400", "e", "e-330", "e309"]),
    st.sampled_from(["", " ", "  "]),
)
numberish = st.one_of(
    st.text(odd_chars, max_size=10),
    structured,
    st.floats().map(repr),
    st.sampled_from(["5.", ".5", "00123", "1_000", "1e309", "-0", "0.0", "NA", "null", "None", "inf", "１２", " 7 "]),
)


def expected(text: str) -> float | None:
    stripped = text.strip(" ")
    if not SPEC.fullmatch(stripped):
        return None
    value = float(stripped)
    return value if math.isfinite(value) and value >= 0 else None


def outcome(batch: Batch) -> list[float | None]:
    return [float(x) if ok else None for x, ok in zip(batch.X[:, 0], batch.ok, strict=True)]


def same(a: list[float | None], b: list[float | None]) -> bool:
    """Equal, including the sign of zero (so -0.0 and 0.0 count as different floats)."""
    return len(a) == len(b) and all(
        x is y or (x is not None and y is not None and x == y and math.copysign(1, x) == math.copysign(1, y))
        for x, y in zip(a, b, strict=True)
    )


@settings(max_examples=150, deadline=None)
@given(st.lists(numberish, min_size=1, max_size=12))
def test_every_path_reads_the_same_strings_the_same_way(values: list[str]) -> None:
    want = [expected(v) for v in values]
    rows = [[f"c{i}", v] for i, v in enumerate(values)]
    csv_batch = merge(list(iter_batches(to_csv([HEADER, *rows]), None, [FEATURE], 5)))
    xlsx_batch = merge(list(iter_batches(raw_xlsx({"Sheet1": [HEADER, *rows]}), None, [FEATURE], 5)))
    form_batch = validate_cases([{"id": f"c{i}", FEATURE: v} for i, v in enumerate(values)], [FEATURE])
    assert same(outcome(csv_batch), want)
    assert same(outcome(xlsx_batch), want)
    assert same(outcome(form_batch), want)
    if not any(set(v) & set(',"\r\n') for v in values):  # a plain CSV can hold these values: its reader agrees
        plain = "".join([f"id,{FEATURE}\n", *(f"c{i},{v}\n" for i, v in enumerate(values))]).encode()
        assert same(outcome(merge(list(read_plain(plain, [FEATURE], 5)))), want)
    accepted = [w for w in want if w is not None]
    if accepted:
        numbers = [{"id": str(i), FEATURE: w} for i, w in enumerate(accepted)]
        assert same(outcome(validate_cases(numbers, [FEATURE])), list(accepted))
        cells = raw_xlsx({"Sheet1": [HEADER, *([str(i), w] for i, w in enumerate(accepted))]})
        assert same(outcome(merge(list(iter_batches(cells, None, [FEATURE], 5)))), list(accepted))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=0, allow_infinity=False), min_size=1, max_size=20))
def test_repr_of_any_float_round_trips_through_csv(values: list[float]) -> None:
    rows = [[str(i), repr(v)] for i, v in enumerate(values)]
    batch = merge(list(iter_batches(to_csv([HEADER, *rows]), None, [FEATURE], 7)))
    assert batch.ok.all()
    np.testing.assert_array_equal(batch.X[:, 0], values)
