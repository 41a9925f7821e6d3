"""The fast engine gives scikit-learn's answers: same M/B for every row, probabilities within 1e-9."""

from __future__ import annotations

import numpy as np
import pytest

from shared.engine import NAME
from shared.features import FEATURES
from shared.modelstore import ENGINE_MAX_ROWS, load_model
from shared.settings import ROOT
from testkit.support import wdbc


def cases(model_features: tuple[str, ...]) -> np.ndarray:
    """The 569 bundled cases plus 100,000 jittered from them (2 % multiplicative noise)."""
    X, _ = wdbc()
    X = X[:, [FEATURES.index(f) for f in model_features]]
    rng = np.random.default_rng(20261129)
    jittered = X[rng.integers(0, len(X), 100_000)] * rng.normal(1.0, 0.02, (100_000, X.shape[1]))
    return np.vstack([X, jittered])


@pytest.mark.parametrize("name", ["wdbc-rf4", "wdbc-rf30"])
def test_engine_matches_scikit_learn_on_bundled_and_jittered_cases(name):
    model = load_model(name, ROOT / "models")
    assert model.engine is not None and model.engine_note == NAME
    X = cases(model.features)
    expected = model.pipeline.predict_proba(X)
    actual = model.engine.predict_proba(X)
    assert np.array_equal(actual.argmax(axis=1), expected.argmax(axis=1))
    assert np.abs(actual - expected).max() <= 1e-9


def test_small_batches_use_the_engine_and_large_ones_scikit_learn_with_identical_answers():
    model = load_model("wdbc-rf4", ROOT / "models")
    X = cases(model.features)[: ENGINE_MAX_ROWS + 1]
    labels_small, p_small = model.diagnose(X[:ENGINE_MAX_ROWS])
    labels_large, p_large = model.diagnose(X)
    assert np.array_equal(labels_small, labels_large[:ENGINE_MAX_ROWS])
    assert np.array_equal(p_small, p_large[:ENGINE_MAX_ROWS])


def test_models_endpoint_names_the_engine(client):
    engines = {m["name"]: m["engine"] for m in client.get("/api/v1/models").get_json()["models"]}
    assert engines == {"wdbc-rf4": NAME, "wdbc-rf30": NAME}


def test_the_model_page_names_the_engine(client):
    assert NAME in client.get("/models/wdbc-rf4").get_data(as_text=True)
