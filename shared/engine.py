"""Evaluate the fitted forest without scikit-learn's per-call overhead, and give exactly its answers.

One row through `pipeline.predict_proba` costs milliseconds of per-tree Python overhead. This engine walks all
trees at once with numpy and reproduces scikit-learn's arithmetic step by step, so the probabilities are
bit-identical, not merely close:

- StandardScaler: `(X - mean_) / scale_` in float64, as `transform` does;
- the trees compare float32 inputs against float64 thresholds (`X[f] <= t` goes left), as `Tree.apply` does;
- the forest adds each tree's leaf value in estimator order, starting from zeros, then divides by the number
  of trees, as `ForestClassifier.predict_proba` does with `n_jobs=None` (`np.cumsum` adds strictly in order).

`shared.modelstore` uses it only after proving equality against scikit-learn on the golden rows and the
bundled cases; otherwise the model falls back to scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

NAME = "cytoscore-forest (numpy, bit-identical to scikit-learn)"
_LEAF = -1


class Unsupported(Exception):
    """The pipeline is not a StandardScaler followed by a RandomForestClassifier."""


@dataclass(frozen=True)
class ForestEngine:
    mean: npt.NDArray[np.float64]
    scale: npt.NDArray[np.float64]
    roots: npt.NDArray[np.intp]  # each tree's root in the concatenated node arrays
    left: npt.NDArray[np.intp]
    right: npt.NDArray[np.intp]
    feature: npt.NDArray[np.intp]
    threshold: npt.NDArray[np.float64]
    value: npt.NDArray[np.float64]  # (nodes, classes): the leaf values scikit-learn adds up
    depth: int

    @classmethod
    def from_pipeline(cls, pipeline: Pipeline) -> ForestEngine:
        steps = [step for _, step in pipeline.steps]
        if len(steps) != 2 or type(steps[0]) is not StandardScaler or type(steps[1]) is not RandomForestClassifier:
            raise Unsupported(f"engine supports StandardScaler + RandomForestClassifier, not {steps}")
        scaler, forest = steps
        if not (scaler.with_mean and scaler.with_std) or forest.n_outputs_ != 1:
            raise Unsupported("engine supports a centred, scaled, single-output forest")
        trees = [est.tree_ for est in forest.estimators_]
        offsets = np.cumsum([0] + [t.node_count for t in trees[:-1]])

        def shifted(children: npt.NDArray[np.intp], offset: int) -> npt.NDArray[np.intp]:
            return np.where(children == _LEAF, _LEAF, children + offset)

        n_classes = int(forest.n_classes_)
        return cls(
            mean=np.asarray(scaler.mean_, dtype=np.float64),
            scale=np.asarray(scaler.scale_, dtype=np.float64),
            roots=offsets.astype(np.intp),
            left=np.concatenate([shifted(t.children_left, o) for t, o in zip(trees, offsets, strict=True)]),
            right=np.concatenate([shifted(t.children_right, o) for t, o in zip(trees, offsets, strict=True)]),
            feature=np.concatenate([t.feature for t in trees]).astype(np.intp),
            threshold=np.concatenate([t.threshold for t in trees]),
            value=np.concatenate([t.value[:, 0, :n_classes] for t in trees]),
            depth=max(t.max_depth for t in trees),
        )

    def leaves(self, X: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
        """The leaf each row reaches in each tree: shape (rows, trees)."""
        scaled = (X - self.mean) / self.scale
        x = scaled.astype(np.float32).astype(np.float64)  # the trees see float32 inputs
        rows = np.arange(len(x))[:, None]
        nodes = np.broadcast_to(self.roots, (len(x), len(self.roots))).copy()
        for _ in range(self.depth):
            left = self.left[nodes]
            inner = left != _LEAF
            if not inner.any():
                break
            goes_left = x[rows, self.feature[nodes]] <= self.threshold[nodes]
            nodes = np.where(inner, np.where(goes_left, left, self.right[nodes]), nodes)
        return nodes

    def predict_proba(self, X: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        values = self.value[self.leaves(X)]  # (rows, trees, classes)
        total = np.cumsum(values, axis=1)[:, -1, :]
        return total / len(self.roots)
