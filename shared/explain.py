"""Why the model said it: each measurement's contribution to the probability of malignancy.

The contributions are SHAP values computed exactly by shap's TreeExplainer (path-dependent TreeSHAP) over the
pipeline's forest, on the scaled measurements the forest sees. Scaling changes no feature's share, so each value
belongs to the measurement as entered. The base value is the forest's average answer over its training data, and
base + the contributions equals P(malignant) for that row; `shared.modelstore` checks this on the golden rows at
load, and a model whose explainer does not add up is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

#: How far base + contributions may be from the probability the model gives.
TOLERANCE = 1e-9


@dataclass(frozen=True)
class Explanation:
    base: float
    contributions: dict[str, float]  # feature -> its share of P(malignant) - base, in the model's feature order

    def as_json(self) -> dict[str, Any]:
        return {"base": self.base, "contributions": self.contributions}


class Explainer:
    """TreeSHAP over a StandardScaler + RandomForestClassifier pipeline, for the positive class's column."""

    def __init__(self, pipeline: Pipeline, features: Sequence[str], positive_column: int) -> None:
        import shap  # imported here: the worker and the web load it with the models, nothing else needs it

        steps = [step for _, step in pipeline.steps]
        if len(steps) != 2 or type(steps[0]) is not StandardScaler or type(steps[1]) is not RandomForestClassifier:
            raise TypeError(f"explanations need StandardScaler + RandomForestClassifier, not {steps}")
        self._scaler, self._features, self._column = steps[0], tuple(features), positive_column
        self._tree = shap.TreeExplainer(steps[1], feature_perturbation="tree_path_dependent")
        self.base = float(np.asarray(self._tree.expected_value)[positive_column])

    def contributions(self, X: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """One row of contributions per row of X (columns in the model's feature order)."""
        if not len(X):
            return np.empty((0, len(self._features)))
        values = np.asarray(self._tree.shap_values(self._scaler.transform(X), check_additivity=False))
        return np.asarray(values[:, :, self._column], dtype=np.float64)  # (rows, features, classes)

    def explain(self, X: npt.NDArray[np.float64]) -> list[Explanation]:
        return [
            Explanation(self.base, dict(zip(self._features, map(float, row), strict=True)))
            for row in self.contributions(X)
        ]


def over_the_limit(rows: int, limit: int) -> str | None:
    """Why a job of `rows` rows may not ask for explanations, or None if it may."""
    if rows <= limit:
        return None
    return f"explanations are computed for at most {limit:,} rows, and this job has {rows:,}: send it without explain=1"


def largest_gap(explainer: Explainer, X: npt.NDArray[np.float64], probabilities: npt.NDArray[np.float64]) -> float:
    """How far base + contributions is from the given probabilities, at worst over the rows."""
    totals = explainer.base + explainer.contributions(X).sum(axis=1)
    return float(np.max(np.abs(totals - probabilities), initial=0.0))
