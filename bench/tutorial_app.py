"""The tutorial's synchronous route, as the yardstick: one form POST → `pipe.predict` → text.

Served by gunicorn from bench/single_case.py with the same skops pipeline cytoscore uses
(`CYTOSCORE_BENCH_MODEL`, default wdbc-rf4). Not part of the product.
"""

from __future__ import annotations

import os

import numpy as np
from flask import Flask, request

from shared.modelstore import load_model
from shared.settings import ROOT

model = load_model(os.environ.get("CYTOSCORE_BENCH_MODEL", "wdbc-rf4"), ROOT / "models")
app = Flask(__name__)


@app.post("/")
def predict() -> str:
    row = np.array([[float(request.form[f]) for f in model.features]])
    label = model.pipeline.predict(row)[0]
    return "M" if label == model.metadata["positive_class"] else "B"
