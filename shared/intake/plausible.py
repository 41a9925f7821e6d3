"""Plausibility limits: values no real nucleus measurement can take, beside the training ranges.

Each limit follows from how the WDBC feature is defined (docs/plausibility.md gives each one and its source). A
value outside is rejected with its reason, never scored. Three checks, all of one row at a time:

- each feature's range (`LIMITS`): a ratio lies in [0, 1], a standard deviation of 8-bit grey levels in [0, 127.5];
- the geometry of the mean and the worst nucleus, where a model has the columns: its area and perimeter must fit
  its radius (`GEOMETRY`);
- a "worst" value is the mean of the three largest, so it is never below the mean (`WORST_SLACK` for rounding).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from shared.features import FEATURES

_INF = math.inf
_GREY_SD = 127.5  # the largest standard deviation of values within 0 to 255 (half the range)

#: Per measure: (low, high) of the mean and the worst value, and the definition the limits follow from.
MEASURES: dict[str, tuple[float, float, str]] = {
    "radius": (0.0, _INF, "a length"),
    "texture": (0.0, _GREY_SD, "a standard deviation of 8-bit grey levels (0–255)"),
    "perimeter": (0.0, _INF, "a length"),
    "area": (0.0, _INF, "an area"),
    "smoothness": (0.0, 1.0, "a variation in radius lengths relative to the radius"),
    "compactness": (0.0, _INF, "perimeter² / area − 1, scaled: 0 for a circle, unbounded above"),
    "concavity": (0.0, _INF, "the severity of indentations: unbounded above"),
    "concave points": (0.0, 1.0, "the share of contour points on an indentation"),
    "symmetry": (0.0, 1.0, "a relative difference of lengths"),
    "fractal_dimension": (0.0, 1.0, "a curve's dimension (between 1 and 2) minus 1"),
}


def _limits() -> dict[str, tuple[float, float]]:
    """Every feature's (low, high): a standard error of values within [a, b] is at most (b - a) / 2."""
    out: dict[str, tuple[float, float]] = {}
    for feature in FEATURES:
        measure, stat = feature.rsplit("_", 1)
        lo, hi, _ = MEASURES[measure]
        out[feature] = (0.0, (hi - lo) / 2) if stat == "se" else (lo, hi)
    return out


LIMITS: dict[str, tuple[float, float]] = _limits()

#: area / (π·radius²) and perimeter / (2π·radius) of the mean and the worst nucleus. The 569 bundled cases span
#: 0.81 to 1.06 and 0.98 to 1.22; the limits leave room for nuclei more irregular than those (docs/plausibility.md).
GEOMETRY: dict[str, tuple[float, float]] = {"area": (0.70, 1.20), "perimeter": (0.85, 1.40)}
#: A worst value may read below its mean by this share, for the rounding of values to four significant digits.
WORST_SLACK = 0.005

Cell = tuple[int, int]


def limit_reason(feature: str, value: float) -> str | None:
    """Why `value` cannot be a measurement of `feature` by its range, or None."""
    lo, hi = LIMITS[feature]
    measure = feature.rsplit("_", 1)[0]
    if value < lo:
        return f"is below the plausible limit {lo:g} ({measure} is {MEASURES[measure][2]})"
    if value > hi:
        return f"is above the plausible limit {hi:g} ({measure} is {MEASURES[measure][2]})"
    return None


def out_of_limits(X: npt.NDArray[np.float64], features: Sequence[str], bad: dict[Cell, str]) -> None:
    """Add each value outside its feature's limits to `bad` (cells already bad keep their reason)."""
    with np.errstate(invalid="ignore"):
        for j, name in enumerate(features):
            lo, hi = LIMITS[name]
            for at in np.flatnonzero((X[:, j] < lo) | (X[:, j] > hi)):
                reason = limit_reason(name, float(X[at, j]))
                if reason:
                    bad.setdefault((int(at), j), reason)


def broken_geometry(X: npt.NDArray[np.float64], features: Sequence[str], bad: dict[Cell, str]) -> set[int]:
    """Add each area or perimeter that does not fit its radius, and each worst value below its mean, to `bad`.

    Only rows whose cells involved are otherwise fine are checked; returns the rows that broke a check.
    """
    index = {name: j for j, name in enumerate(features)}
    broke: set[int] = set()
    with np.errstate(invalid="ignore", divide="ignore"):
        for stat in ("mean", "worst"):
            r = index.get(f"radius_{stat}")
            if r is None:
                continue
            radius = X[:, r]
            for measure, (lo, hi) in GEOMETRY.items():
                j = index.get(f"{measure}_{stat}")
                if j is None:
                    continue
                ratio = X[:, j] / (math.pi * radius**2) if measure == "area" else X[:, j] / (2 * math.pi * radius)
                formula = "area / (π·radius²)" if measure == "area" else "perimeter / (2π·radius)"
                for at in np.flatnonzero((ratio < lo) | (ratio > hi)):
                    i = int(at)
                    if (i, j) in bad or (i, r) in bad:
                        continue
                    bad[(i, j)] = (
                        f"does not fit radius_{stat} {X[i, r]:g}: {formula} is {ratio[i]:.3g}, "
                        f"a real nucleus gives {lo:g}–{hi:g} (check the columns, their units and the decimal mark)"
                    )
                    broke.add(i)
        for measure in MEASURES:
            m, w = index.get(f"{measure}_mean"), index.get(f"{measure}_worst")
            if m is None or w is None:
                continue
            for at in np.flatnonzero(X[:, w] < X[:, m] * (1 - WORST_SLACK)):
                i = int(at)
                if (i, w) in bad or (i, m) in bad:
                    continue
                bad[(i, w)] = (
                    f"is below {measure}_mean {X[i, m]:g}: a worst value is the mean of the three largest, "
                    "never below the mean (check the columns)"
                )
                broke.add(i)
    return broke
