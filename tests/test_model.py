"""The committed models load only as validated, and answer exactly as the pipelines they were saved from."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sklearn
import skops.io as sio
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from shared.features import FEATURES
from shared.modelstore import (
    REQUIRED_FIELDS,
    REVIEWED_TYPES,
    LoadedModel,
    ModelIntegrityError,
    UnknownModelError,
    list_models,
    load_model,
    read_metadata,
)
from shared.settings import ROOT

MODELS_DIR = ROOT / "models"
NAMES = ("wdbc-rf4", "wdbc-rf30")
RF4 = ["radius_mean", "texture_mean", "smoothness_mean", "compactness_mean"]


@pytest.fixture(scope="module")
def models() -> dict[str, LoadedModel]:
    return {name: load_model(name, MODELS_DIR) for name in NAMES}


def copy_model(tmp_path: Path, name: str = "wdbc-rf4") -> tuple[Path, dict[str, Any]]:
    """Copy a committed model into tmp_path; return the artifact path and its metadata to edit."""
    for suffix in (".skops", ".json"):
        shutil.copy(MODELS_DIR / f"{name}{suffix}", tmp_path)
    return tmp_path / f"{name}.skops", read_metadata(name, tmp_path)


def install(tmp_path: Path, metadata: dict[str, Any], artifact: bytes | None = None) -> None:
    """Write metadata (and artifact bytes, with the metadata's sha256 made to match them) into tmp_path."""
    if artifact is not None:
        (tmp_path / metadata["artifact"]).write_bytes(artifact)
        metadata["sha256"] = hashlib.sha256(artifact).hexdigest()
    (tmp_path / f"{metadata['name']}.json").write_text(json.dumps(metadata))


@pytest.mark.parametrize("name", NAMES)
def test_metadata_is_complete(name: str, models: dict[str, LoadedModel]) -> None:
    meta = models[name].metadata
    assert set(REQUIRED_FIELDS) <= set(meta)
    assert meta["label_mapping"] == {"0": "M", "1": "B"} and meta["positive_class"] == 0
    assert set(meta["split"]) >= {"test_size", "random_state", "n_train", "n_test", "stratified"}
    assert meta["split"]["n_train"] + meta["split"]["n_test"] == 569
    assert set(meta["metrics"]) >= {"roc_auc", "accuracy", "sensitivity", "specificity"}
    assert list(meta["feature_ranges"]) == meta["features"]
    assert all(lo <= hi for lo, hi in meta["feature_ranges"].values())
    assert set(meta["trusted_types"]) <= REVIEWED_TYPES
    assert len(meta["golden"]) >= 8 and {g["diagnosis"] for g in meta["golden"]} == {"M", "B"}
    assert meta["sklearn_version"] == sklearn.__version__
    assert models[name].sha256 == hashlib.sha256((MODELS_DIR / meta["artifact"]).read_bytes()).hexdigest()


def test_rf4_features_and_listing(models: dict[str, LoadedModel]) -> None:
    assert list(models["wdbc-rf4"].features) == RF4
    assert list(models["wdbc-rf30"].features) == list(FEATURES)
    assert [m["name"] for m in list_models(MODELS_DIR)] == ["wdbc-rf4", "wdbc-rf30"]


@pytest.mark.parametrize("name", ["no-such-model", "../models/wdbc-rf4", "wdbc-rf4/..", ""])
def test_unknown_model(name: str) -> None:
    with pytest.raises(UnknownModelError):
        read_metadata(name, MODELS_DIR)


@pytest.mark.parametrize("name", NAMES)
def test_answers_equal_the_raw_pipeline_on_every_case(name: str, models: dict[str, LoadedModel]) -> None:
    model = models[name]
    # An independent load, so the comparison is not the model against itself.
    raw = sio.load(MODELS_DIR / f"{name}.skops", trusted=sorted(REVIEWED_TYPES))
    data = load_breast_cancer()
    X = data.data[:, [FEATURES.index(f) for f in model.features]]
    labels, proba = model.diagnose(X)
    expected_labels = np.where(raw.predict(X) == 0, "M", "B")
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_array_equal(proba, raw.predict_proba(X)[:, 0])
    np.testing.assert_array_equal(model.predict_proba_malignant(X), proba)
    assert proba.dtype == np.float64 and proba.shape == (569,)


def test_ties_get_the_label_predict_gives() -> None:
    # Two unpruned trees without bootstrap each say 0 or 1, so wherever they disagree P = 0.5 exactly.
    X, y = load_breast_cancer(return_X_y=True)
    clf = RandomForestClassifier(2, bootstrap=False, max_features=1, random_state=0)
    pipe = Pipeline([("scaler", StandardScaler()), ("clf", clf)]).fit(X[:300], y[:300])
    meta = {"label_mapping": {"0": "M", "1": "B"}, "positive_class": 0}
    model = LoadedModel("tie", "0", "", FEATURES, meta, pipe)
    labels, proba = model.diagnose(X)
    assert (proba == 0.5).sum() > 0
    np.testing.assert_array_equal(labels, np.where(pipe.predict(X) == 0, "M", "B"))


def test_wrong_shape_is_refused(models: dict[str, LoadedModel]) -> None:
    with pytest.raises(ValueError, match=r"\(n, 4\)"):
        models["wdbc-rf4"].predict_proba_malignant(np.zeros((1, 30)))


def test_one_changed_byte_is_refused(tmp_path: Path) -> None:
    artifact, _ = copy_model(tmp_path)
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0x01
    artifact.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match=r"wdbc-rf4: sha256"):
        load_model("wdbc-rf4", tmp_path)


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return open, (str(self.marker), "w")


def test_pickle_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Payload(marker))
    _, meta = copy_model(tmp_path)
    install(tmp_path, meta, payload)  # sha256 edited to match, so only the format check stands in the way
    with pytest.raises(ModelIntegrityError, match="not a valid skops archive"):
        load_model("wdbc-rf4", tmp_path)
    assert not marker.exists()
    pickle.loads(payload).close()  # the payload was live: unpickling it does create the marker
    assert marker.exists()


def _zip_with_pickle() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("model.pkl", pickle.dumps(LogisticRegression()))
    return buffer.getvalue()


@pytest.mark.parametrize("artifact", [b"", b"PK\x03\x04 truncated", _zip_with_pickle()])
def test_other_non_skops_files_are_refused(tmp_path: Path, artifact: bytes) -> None:
    _, meta = copy_model(tmp_path)
    install(tmp_path, meta, artifact)
    with pytest.raises(ModelIntegrityError, match="not a valid skops archive"):
        load_model("wdbc-rf4", tmp_path)


def test_other_sklearn_version_is_refused(tmp_path: Path) -> None:
    _, meta = copy_model(tmp_path)
    install(tmp_path, {**meta, "sklearn_version": "1.0.2"})
    with pytest.raises(ModelIntegrityError, match=rf"scikit-learn version .*'1\.0\.2'.*'{sklearn.__version__}'"):
        load_model("wdbc-rf4", tmp_path)


@pytest.mark.parametrize("field, value", [("probability_malignant", 0.5), ("diagnosis", "X")])
def test_edited_golden_row_is_refused(tmp_path: Path, field: str, value: object) -> None:
    _, meta = copy_model(tmp_path, "wdbc-rf30")
    meta["golden"][3][field] = value
    install(tmp_path, meta)
    with pytest.raises(ModelIntegrityError, match="wdbc-rf30: golden row 3 differs"):
        load_model("wdbc-rf30", tmp_path)


def test_golden_probability_tolerance_is_1e_12(tmp_path: Path) -> None:
    _, meta = copy_model(tmp_path)
    meta["golden"][0]["probability_malignant"] += 1e-9
    install(tmp_path, meta)
    with pytest.raises(ModelIntegrityError, match="golden row 0"):
        load_model("wdbc-rf4", tmp_path)


def test_type_outside_the_reviewed_list_is_refused(tmp_path: Path) -> None:
    # A pipeline that would run a shell command on every transform, declared trusted by its own metadata.
    evil = Pipeline([("f", FunctionTransformer(os.system)), ("clf", LogisticRegression())])
    data = sio.dumps(evil)
    untrusted = sio.get_untrusted_types(data=data)
    assert any("system" in t for t in untrusted)
    _, meta = copy_model(tmp_path)
    install(tmp_path, {**meta, "trusted_types": untrusted}, data)
    with pytest.raises(ModelIntegrityError, match=r"not in the reviewed list REVIEWED_TYPES.*system"):
        load_model("wdbc-rf4", tmp_path)


def test_type_outside_the_metadata_trusted_types_is_refused(tmp_path: Path) -> None:
    _, meta = copy_model(tmp_path)
    install(tmp_path, {**meta, "trusted_types": []})
    with pytest.raises(ModelIntegrityError, match=r"not in trusted_types: \['sklearn.tree._tree.Tree'\]"):
        load_model("wdbc-rf4", tmp_path)


def test_feature_count_mismatch_is_refused(tmp_path: Path) -> None:
    _, meta = copy_model(tmp_path)
    install(tmp_path, {**meta, "features": RF4[:3]})
    with pytest.raises(ModelIntegrityError, match="feature count differs: expected 3, actual 4"):
        load_model("wdbc-rf4", tmp_path)


@pytest.mark.parametrize("name", NAMES)
def test_training_row_hashes_mark_exactly_the_training_rows(name: str, models: dict[str, LoadedModel]) -> None:
    from shared.training import load_split

    model, split = models[name], load_split()
    cols = [FEATURES.index(f) for f in model.features]
    assert model.trained_on(split["X_train"][:, cols]).all()
    assert not model.trained_on(split["X_test"][:, cols]).any()
    nudged = split["X_train"][:5, cols].copy()
    nudged[:, 0] = np.nextafter(nudged[:, 0], np.inf)  # one ulp away is another row
    assert not model.trained_on(nudged).any()


def test_missing_training_row_hashes_are_refused(tmp_path: Path) -> None:
    _, meta = copy_model(tmp_path)
    meta["training_rows"]["hashes"] = meta["training_rows"]["hashes"][:-1]
    install(tmp_path, meta)
    with pytest.raises(ModelIntegrityError, match="training row hashes differs: expected 426, actual 425"):
        load_model("wdbc-rf4", tmp_path)
