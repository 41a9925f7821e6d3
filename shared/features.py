"""The Wisconsin Diagnostic Breast Cancer feature names, as published and as scikit-learn spells them."""

from __future__ import annotations

_MEASURES = (
    "radius",
    "texture",
    "perimeter",
    "area",
    "smoothness",
    "compactness",
    "concavity",
    "concave points",
    "symmetry",
    "fractal_dimension",
)
_STATS = (("mean", "mean {}"), ("se", "{} error"), ("worst", "worst {}"))

#: The 30 published Kaggle/UCI names, in the published order (`concave points_mean` has a space).
FEATURES: tuple[str, ...] = tuple(f"{m}_{stat}" for stat, _ in _STATS for m in _MEASURES)

#: scikit-learn's `load_breast_cancer().feature_names`, in the same order as FEATURES.
SKLEARN_NAMES: tuple[str, ...] = tuple(pattern.format(m.replace("_", " ")) for _, pattern in _STATS for m in _MEASURES)

#: Measurements that cannot be zero in a real nucleus.
NONZERO = frozenset(f for f in FEATURES if f.split("_")[0] in {"radius", "perimeter", "area"})

CASE_ID = "id"
DIAGNOSIS = "diagnosis"


def canonical(name: str) -> str:
    """Fold a header to the form names are compared in: trimmed, lower case."""
    return name.strip().lower()


#: Every accepted spelling (canonical form) -> the published name.
ALIASES: dict[str, str] = {
    **{canonical(f): f for f in FEATURES},
    **{canonical(s): f for s, f in zip(SKLEARN_NAMES, FEATURES, strict=True)},
}
