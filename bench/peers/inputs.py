"""Make the peers' inputs with the product's own bench code (product venv only).

- rows-<n>.csv under var/bench-peers/: testkit.files.csv_file, the Kaggle layout, seed 11; written
  once and reused.
- The single cases: bench.single_case's `cases(n)`, sent by the driver over HTTP.
- The labels the product's verified pipeline gives both, so each peer's answers can be checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.single_case import cases
from shared.modelstore import LoadedModel
from testkit.files import csv_file


@dataclass(frozen=True)
class Inputs:
    csv: Path
    csv_labels: np.ndarray
    cases: list[dict[str, float]]
    case_labels: np.ndarray


def _big_csv(path: Path, rows: int) -> None:
    if path.is_file():
        return
    csv_file(rows, seed=11, folder=path.parent).replace(path)  # streamed a block at a time


def _csv_labels(path: Path, model: LoadedModel) -> np.ndarray:
    cached = path.with_suffix(f".labels-{model.sha256[:12]}.npy")
    if not cached.is_file():
        frame = pd.read_csv(path, usecols=list(model.features))
        np.save(cached, model.pipeline.predict(frame[list(model.features)].to_numpy(np.float64)))
    labels: np.ndarray = np.load(cached)
    return labels


def prepare(scratch: Path, rows: int, n_cases: int, model: LoadedModel) -> Inputs:
    sample = cases(n_cases)
    if list(sample[0]) != list(model.features):
        raise SystemExit(f"bench.single_case's cases() carry {list(sample[0])}, model {model.name} wants "
                         f"{list(model.features)}")  # fmt: skip
    csv_path = scratch / f"rows-{rows}.csv"
    _big_csv(csv_path, rows)
    X = np.array([[case[f] for f in model.features] for case in sample], dtype=np.float64)
    return Inputs(csv_path, _csv_labels(csv_path, model), sample, model.pipeline.predict(X))
