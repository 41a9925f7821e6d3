"""What each WDBC feature is, in words a person can read beside a form field or in a model card."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# (label, unit, what it measures) per measure, after the WDBC documentation. The features are computed from a
# digitised image of the aspirate, so sizes are in image pixels; texture is a spread of grey levels.
MEASURES: dict[str, tuple[str, str, str]] = {
    "radius": ("Radius", "px", "mean distance from the centre to points on the perimeter"),
    "texture": ("Texture", "grey levels", "standard deviation of grey-scale values"),
    "perimeter": ("Perimeter", "px", "length of the nucleus boundary"),
    "area": ("Area", "px²", "area inside the boundary"),
    "smoothness": ("Smoothness", "", "local variation in radius lengths"),
    "compactness": ("Compactness", "", "perimeter² / area − 1"),
    "concavity": ("Concavity", "", "severity of concave portions of the contour"),
    "concave points": ("Concave points", "", "number of concave portions of the contour (normalised)"),
    "symmetry": ("Symmetry", "", "symmetry of the nucleus"),
    "fractal_dimension": ("Fractal dimension", "", "“coastline approximation” − 1"),
}
STATS: dict[str, tuple[str, str]] = {
    "mean": ("mean", "Mean over the nuclei in the image"),
    "se": ("standard error", "Standard error over the nuclei in the image"),
    "worst": ("worst", "Worst: mean of the three largest values"),
}


@dataclass(frozen=True)
class FeatureField:
    name: str  # the published column name, also the form field's name
    label: str  # "Radius (mean)"
    unit: str  # "px", "px²", "grey levels" or "" for a ratio
    stat: str  # "mean" | "se" | "worst"
    meaning: str
    low: float | None  # the training data's range
    high: float | None


def describe(name: str, ranges: Mapping[str, Sequence[float]] | None = None) -> FeatureField:
    measure, stat = name.rsplit("_", 1)
    label, unit, meaning = MEASURES.get(measure, (measure.replace("_", " ").capitalize(), "", ""))
    stat_label = STATS.get(stat, (stat, ""))[0]
    low, high = (ranges or {}).get(name, (None, None))
    return FeatureField(name, f"{label} ({stat_label})", unit, stat, meaning, low, high)


def fields(model: Mapping[str, Any]) -> list[FeatureField]:
    """The model's features in its own order, described."""
    return [describe(f, model.get("feature_ranges")) for f in model["features"]]


def grouped(model: Mapping[str, Any]) -> list[tuple[str, list[FeatureField]]]:
    """The model's features grouped by statistic (mean, standard error, worst), for fieldsets."""
    groups: dict[str, list[FeatureField]] = {}
    for field in fields(model):
        groups.setdefault(field.stat, []).append(field)
    return [(STATS.get(stat, (stat, stat))[1], members) for stat, members in groups.items()]
