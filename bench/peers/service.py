"""A small BentoML service over cytoscore's pipeline, served by bench/peers/run.py (runs in the BentoML venv).

- POST /predict     {"cases": [{feature: value, ...}]} → one label per case (the classifier's 0/1 classes).
- POST /predict_csv multipart `file` = a Kaggle-layout CSV → one label per row; pandas reads only the model's
  features, as cytoscore's worker does.
The model is the one export_model.py put in the store under BENTOML_HOME, tag from PEERS_MODEL_TAG.
"""

from __future__ import annotations

import os
from pathlib import Path

import bentoml
import numpy as np
import pandas as pd


@bentoml.service(workers=2, traffic={"timeout": 900})
class WdbcPeer:
    model_ref = bentoml.models.BentoModel(os.environ["PEERS_MODEL_TAG"])

    def __init__(self) -> None:
        self.model = bentoml.sklearn.load_model(self.model_ref)
        self.features = list(self.model_ref.info.metadata["features"])

    @bentoml.api
    def predict(self, cases: list[dict[str, float]]) -> list[int]:
        X = pd.DataFrame(cases, columns=self.features).to_numpy(dtype=np.float64)
        return self.model.predict(X).tolist()

    @bentoml.api
    def predict_csv(self, file: Path) -> list[int]:
        frame = pd.read_csv(file, usecols=self.features)
        return self.model.predict(frame[self.features].to_numpy(dtype=np.float64)).tolist()
