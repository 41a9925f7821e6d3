"""Serve the tutorial's synchronous route (one form POST → `pipe.predict` → text) as the single-case yardstick.

Served by gunicorn (`bench.tutorial_app:app`) from bench.single_case, with one of two pipelines: by default the
skops pipeline cytoscore serves (`CYTOSCORE_BENCH_MODEL`, default wdbc-rf4); with
`CYTOSCORE_BENCH_TUTORIAL_FOREST=<trees>` (500 for the tutorial's own), StandardScaler + RandomForestClassifier
(n_estimators=<trees>, max_depth=8, random_state=42) fitted at start-up on the bundled data's training split
(stratified, 25 % held out), on wdbc-rf4's four features. Not part of the product.
"""

from __future__ import annotations

import os

import numpy as np
from flask import Flask, request
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from shared.features import FEATURES
from shared.modelstore import load_model
from shared.settings import ROOT
from shared.training import MALIGNANT, SEED, TEST_SIZE


def tutorial_forest(trees: int, features: tuple[str, ...]) -> Pipeline:
    data = load_breast_cancer()
    X = data.data[:, [FEATURES.index(f) for f in features]]
    X_train, _, y_train, _ = train_test_split(X, data.target, test_size=TEST_SIZE, stratify=data.target,
                                              random_state=SEED)  # fmt: skip
    forest = RandomForestClassifier(n_estimators=trees, max_depth=8, random_state=SEED)
    return Pipeline([("scaler", StandardScaler()), ("clf", forest)]).fit(X_train, y_train)


model = load_model(os.environ.get("CYTOSCORE_BENCH_MODEL", "wdbc-rf4"), ROOT / "models")
features, pipe = model.features, model.pipeline
if trees := int(os.environ.get("CYTOSCORE_BENCH_TUTORIAL_FOREST", "0")):
    pipe = tutorial_forest(trees, features)
malignant = MALIGNANT if trees else model.metadata["positive_class"]
app = Flask(__name__)


@app.post("/")
def predict() -> str:
    row = np.array([[float(request.form[f]) for f in features]])
    return "M" if pipe.predict(row)[0] == malignant else "B"
