"""Plausibility limits: a value no real nucleus can have is rejected with its reason, and a misread file is told apart.

Pure: the validator only, no database (the job-level state is tested in tests/test_review.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import reduce
from operator import add

import numpy as np
import pytest

from shared.features import FEATURES
from shared.intake import Batch, read_batches, validate_cases
from shared.intake.plausible import GEOMETRY, LIMITS
from shared.intake.review import Tally, verdict
from shared.modelstore import feature_ranges
from shared.settings import ROOT
from testkit.support import RF4, jittered_csv, wdbc, wdbc_csv

MODELS = {name: json.loads((ROOT / "models" / f"{name}.json").read_text()) for name in ("wdbc-rf4", "wdbc-rf30")}


def read(content: bytes, model: str, batch_rows: int = 5000) -> list[Batch]:
    meta = MODELS[model]
    return list(read_batches(content, "csv", meta["features"], batch_rows, feature_ranges(meta)))


def tally(batches: Iterable[Batch]) -> Tally:
    return reduce(add, (b.tally for b in batches), Tally())


def german_misread(content: bytes) -> bytes:
    """The file as LibreOffice saves it under a German locale when opened without setting the import language:
    a '.' followed by exactly three digits is a thousands separator there, so 0.117 becomes 117 and 9.504 9504;
    other numbers (17.99, 0.1184) stay as they were written."""
    return re.sub(rb"(?<=[,\n])([0-9]{1,3})\.([0-9]{3})(?=[,\n])", lambda m: str(int(m[1] + m[2])).encode(), content)


def case(**changes: float) -> dict[str, object]:
    """Bundled case 0 (all 30 features, as published), with some values changed."""
    X, _ = wdbc()
    return {"id": "C1", **{f: float(X[0, j]) for j, f in enumerate(FEATURES)}, **changes}


@pytest.mark.parametrize("model", ["wdbc-rf4", "wdbc-rf30"])
def test_every_bundled_case_is_plausible(model: str) -> None:
    batches = read(wdbc_csv(), model, batch_rows=100)
    assert all(b.ok.all() for b in batches)
    assert sum(len(b.rows) for b in batches) == 569
    assert [p for b in batches for p in b.problems] == []
    assert tally(batches).implausible == tally(batches).geometry == 0


def test_the_limits_hold_every_bundled_value_with_room() -> None:
    X, _ = wdbc()
    for j, feature in enumerate(FEATURES):
        lo, hi = LIMITS[feature]
        assert lo <= X[:, j].min() and X[:, j].max() <= hi, feature


@pytest.mark.parametrize(
    ("feature", "value", "reason"),
    [
        ("smoothness_mean", 1.5, "is above the plausible limit 1 (smoothness is a variation in radius lengths"),
        ("symmetry_worst", 2.0, "is above the plausible limit 1 (symmetry is a relative difference of lengths)"),
        ("fractal_dimension_mean", 1.2, "is above the plausible limit 1 (fractal_dimension is a curve's dimension"),
        ("concave points_mean", 1.01, "is above the plausible limit 1 (concave points is the share of contour"),
        ("texture_mean", 130.0, "is above the plausible limit 127.5 (texture is a standard deviation of 8-bit grey"),
        ("smoothness_se", 0.6, "is above the plausible limit 0.5 (smoothness is a variation"),
        ("compactness_mean", -0.1, "is negative"),
        ("area_mean", 0.0, "must be greater than zero"),
    ],
)
def test_a_value_outside_its_limit_is_rejected_with_row_column_value_and_reason(
    feature: str, value: float, reason: str
) -> None:
    batch = validate_cases([case(), case(**{feature: value})], FEATURES)
    assert batch.ok.tolist() == [True, False]
    [problem] = batch.problems
    assert (problem.row, problem.column, problem.value) == (2, feature, f"{value:g}")
    assert problem.reason.startswith(reason)
    assert batch.errors[1] is not None and batch.errors[1].startswith(f"{feature} '{value:g}': {reason}")
    assert np.isnan(batch.X[1]).all()  # never scored


@pytest.mark.parametrize(
    ("changes", "column", "reason"),
    [
        ({"area_mean": 10010.0}, "area_mean", "does not fit radius_mean 17.99: area / (π·radius²) is 9.85"),
        ({"area_worst": 201.9}, "area_worst", "does not fit radius_worst 25.38: area / (π·radius²) is 0.0998"),
        ({"perimeter_mean": 1228.0}, "perimeter_mean", "does not fit radius_mean 17.99: perimeter / (2π·radius)"),
        ({"radius_mean": 122.8, "perimeter_mean": 17.99}, "perimeter_mean", "does not fit radius_mean 122.8"),
        ({"radius_worst": 17.0}, "radius_worst", "is below radius_mean 17.99: a worst value is the mean of the three"),
    ],
)
def test_a_row_whose_geometry_breaks_is_rejected(changes: dict[str, float], column: str, reason: str) -> None:
    batch = validate_cases([case(**changes), case()], FEATURES)
    assert batch.ok.tolist() == [False, True]
    problems = [p for p in batch.problems if p.column == column]
    assert problems and problems[0].row == 1 and problems[0].reason.startswith(reason), batch.problems
    assert batch.tally.geometry == 1


def test_geometry_is_checked_only_where_the_model_has_the_columns() -> None:
    """The four-feature model has a radius but no area or perimeter: nothing to check against."""
    batch = validate_cases([{"id": "C1", "radius_mean": 60.0, "texture_mean": 20.0, "smoothness_mean": 0.1,
                             "compactness_mean": 0.1}], RF4)  # fmt: skip
    assert batch.ok.all()


def test_the_geometry_tolerance_covers_the_bundled_ratios_with_a_margin() -> None:
    X, _ = wdbc()
    at = {f: X[:, j] for j, f in enumerate(FEATURES)}
    for stat in ("mean", "worst"):
        area = at[f"area_{stat}"] / (np.pi * at[f"radius_{stat}"] ** 2)
        perimeter = at[f"perimeter_{stat}"] / (2 * np.pi * at[f"radius_{stat}"])
        for ratio, (lo, hi) in ((area, GEOMETRY["area"]), (perimeter, GEOMETRY["perimeter"])):
            assert lo + 0.1 <= ratio.min() and ratio.max() <= hi - 0.1


@pytest.mark.parametrize("model", ["wdbc-rf4", "wdbc-rf30"])
def test_a_file_misread_by_a_german_spreadsheet_looks_misread(model: str) -> None:
    misread = german_misread(wdbc_csv())
    assert b",117," in misread or b",9504," in misread  # the mangling did happen
    batches = read(misread, model)
    reason = verdict(569, tally(batches))
    assert reason is not None and "check the decimal separator" in reason
    assert re.match(r"\d+ % of rows have values over 100× the usual range", reason)


@pytest.mark.parametrize(("content", "model", "rows"), [
    (wdbc_csv(), "wdbc-rf4", 569),
    (wdbc_csv(), "wdbc-rf30", 569),
    (jittered_csv(200_000), "wdbc-rf4", 200_000),
])  # fmt: skip
def test_real_and_jittered_files_are_not_held(content: bytes, model: str, rows: int) -> None:
    counted = tally(read(content, model))
    assert verdict(rows, counted) is None
    assert counted.implausible == 0


def test_a_few_cases_out_of_range_are_flagged_one_by_one_not_held() -> None:
    assert verdict(3, Tally(out_of_range=3, far=3)) is None
    assert verdict(1, Tally(out_of_range=1)) is None
    assert verdict(100, Tally(out_of_range=5)) is None  # 5 % is not more than 5 %
    assert verdict(100, Tally(out_of_range=6)) is not None


def test_one_row_that_breaks_the_geometry_holds_the_job() -> None:
    reason = verdict(10_000, Tally(implausible=1, geometry=1))
    assert reason is not None and reason.startswith("1 row breaks the geometry of a nucleus")
