"""Rebuild the WDBC models: grid-search a scaled random forest, save it with skops, write its metadata."""

from __future__ import annotations

import hashlib
import json
import platform
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
import skops
import skops.io as sio
from sklearn.calibration import calibration_curve
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, brier_score_loss, confusion_matrix, roc_auc_score
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from shared.features import FEATURES, SKLEARN_NAMES
from shared.modelstore import REVIEWED_TYPES, ROW_HASH_METHOD, row_hashes

VERSION = "1.0.0"
SEED = 42
TEST_SIZE = 0.25
MALIGNANT = 0  # load_breast_cancer codes 0 = malignant, 1 = benign
LABELS = {0: "M", 1: "B"}
GRID = {"clf__n_estimators": [100, 200, 500], "clf__max_depth": [3, 8]}
FINGERPRINT_METHOD = (
    "sha256(X_train as C-contiguous little-endian float64, columns in `features` order"
    " || y_train as little-endian int64, 0 = malignant)"
)

#: Model name -> the features it is trained on, in the order the pipeline expects them.
MODELS: dict[str, tuple[str, ...]] = {
    "wdbc-rf4": ("radius_mean", "texture_mean", "smoothness_mean", "compactness_mean"),
    "wdbc-rf30": FEATURES,
}


def _grid_search(X: np.ndarray, y: np.ndarray) -> GridSearchCV:
    pipe = Pipeline([("scaler", StandardScaler()), ("clf", RandomForestClassifier(random_state=SEED))])
    cv = 3  # as the tutorial: stratified, unshuffled folds
    # n_jobs=2 only spreads the 18 candidate fits over processes; each forest keeps its own seed, so the
    # scores and the refit best_estimator_ are bit-identical to n_jobs=None (checked when this was written).
    search = GridSearchCV(pipe, GRID, cv=cv, scoring="roc_auc", n_jobs=2)
    return search.fit(X, y)


def _metrics(pipe: Pipeline, X: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    proba_m = pipe.predict_proba(X)[:, list(pipe.classes_).index(MALIGNANT)]
    pred = pipe.predict(X)
    # Rows and columns ordered [malignant, benign], so malignant is the positive class throughout.
    (tp, fn), (fp, tn) = confusion_matrix(y, pred, labels=[MALIGNANT, 1 - MALIGNANT])
    return {
        "roc_auc": float(roc_auc_score(y == MALIGNANT, proba_m)),
        "accuracy": float(accuracy_score(y, pred)),
        "sensitivity": float(tp / (tp + fn)),
        "specificity": float(tn / (tn + fp)),
        "confusion": {"tp": int(tp), "fn": int(fn), "tn": int(tn), "fp": int(fp)},
    }


RELIABILITY_BINS = 10


def calibration(pipe: Pipeline, X: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """How well the probabilities on the held-out rows match what happened: the Brier score, and a reliability
    diagram's points (equal-width bins of the predicted probability; empty bins left out).

    Cross-validated sigmoid and isotonic calibration (CalibratedClassifierCV, cv=5, with and without ensembling)
    were tried on both models and raised the held-out Brier score every time (docs/models.md gives the figures),
    so the models are trained uncalibrated and say so.
    """
    proba_m = pipe.predict_proba(X)[:, list(pipe.classes_).index(MALIGNANT)]
    truth = y == MALIGNANT
    observed, predicted = calibration_curve(truth, proba_m, n_bins=RELIABILITY_BINS, strategy="uniform")
    counts = np.histogram(proba_m, bins=np.linspace(0, 1, RELIABILITY_BINS + 1))[0]
    return {
        "calibrated": False,
        "brier": float(brier_score_loss(truth, proba_m)),
        "bins": [
            {"predicted": float(p), "observed": float(o), "count": int(n)}
            for p, o, n in zip(predicted, observed, counts[counts > 0], strict=True)
        ],
    }


def _golden_rows(pipe: Pipeline, X: np.ndarray, y: np.ndarray, idx: np.ndarray) -> list[dict[str, Any]]:
    """Pick 8 held-out rows: 4 per predicted class, spread from its most confident to its boundary case."""
    proba_m = pipe.predict_proba(X)[:, list(pipe.classes_).index(MALIGNANT)]
    pred = pipe.predict(X)
    chosen: list[int] = []
    for label in (MALIGNANT, 1 - MALIGNANT):
        rows = np.flatnonzero(pred == label)
        rows = rows[np.argsort(proba_m[rows], kind="stable")]
        # The ends of each class's sorted range are its most confident row and its row nearest the boundary.
        for pos in np.unique(np.linspace(0, len(rows) - 1, 4).round().astype(int)) if len(rows) else []:
            chosen.append(int(rows[pos]))
    return [
        {
            "case_index": int(idx[i]),  # row of load_breast_cancer(), for tracing only
            "features": [float(v) for v in X[i]],
            "probability_malignant": float(proba_m[i]),
            "diagnosis": LABELS[int(pred[i])],
            "true_diagnosis": LABELS[int(y[i])],
        }
        for i in chosen
    ]


def training_rows(X_train: np.ndarray) -> dict[str, Any]:
    """Hashes of the training rows' feature values: a scored row with the same values was seen in training, and
    agreement on it overstates accuracy. Hashes, not values, so the metadata does not carry the training data."""
    return {"method": ROW_HASH_METHOD, "hashes": sorted(row_hashes(X_train))}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def train_model(name: str, features: tuple[str, ...], split: dict[str, Any], models_dir: Path) -> dict[str, Any]:
    """Tune, evaluate and save one model; return the metadata written next to it."""
    cols = [FEATURES.index(f) for f in features]
    X_train = np.ascontiguousarray(split["X_train"][:, cols], dtype="<f8")
    X_test = np.ascontiguousarray(split["X_test"][:, cols], dtype="<f8")
    y_train, y_test = split["y_train"], split["y_test"]

    search = _grid_search(X_train, y_train)
    pipe: Pipeline = search.best_estimator_
    assert pipe.named_steps["clf"].n_jobs is None  # one row must not pay for a process pool

    artifact = models_dir / f"{name}.skops"
    # Deflate: about 10x smaller than stored (these files are committed) and no slower to load.
    data = sio.dumps(pipe, compression=zipfile.ZIP_DEFLATED)
    artifact.write_bytes(data)
    untrusted = sio.get_untrusted_types(data=data)
    if not set(untrusted) <= REVIEWED_TYPES:  # never write metadata that vouches for an unreviewed type
        raise RuntimeError(f"{name}: skops asks to trust unreviewed types {sorted(set(untrusted) - REVIEWED_TYPES)}")

    metadata = {
        "name": name,
        "version": VERSION,
        "created": datetime.now(UTC).date().isoformat(),
        "features": list(features),
        "label_mapping": {str(k): v for k, v in LABELS.items()},
        "positive_class": MALIGNANT,
        "sklearn_version": sklearn.__version__,
        "skops_version": skops.__version__,
        "python_version": platform.python_version(),
        "artifact": artifact.name,
        "sha256": _sha256(data),
        "training_data_fingerprint": _sha256(X_train.tobytes() + y_train.astype("<i8").tobytes()),
        "training_data_fingerprint_method": FINGERPRINT_METHOD,
        "split": {
            "test_size": TEST_SIZE,
            "random_state": SEED,
            "n_train": len(y_train),
            "n_test": len(y_test),
            "stratified": True,
        },
        "best_params": search.best_params_,
        "cv_best_roc_auc": float(search.best_score_),
        "metrics": _metrics(pipe, X_test, y_test),
        "calibration": calibration(pipe, X_test, y_test),
        "feature_ranges": {
            f: [float(lo), float(hi)]
            for f, lo, hi in zip(features, X_train.min(axis=0), X_train.max(axis=0), strict=True)
        },
        "trusted_types": untrusted,
        "training_rows": training_rows(X_train),
        "golden": _golden_rows(pipe, X_test, y_test, split["idx_test"]),
    }
    (models_dir / f"{name}.json").write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    return metadata


def load_split() -> dict[str, Any]:
    """Split the bundled data once, stratified, so every model sees the same train and test cases."""
    data = load_breast_cancer()
    # FEATURES is the Kaggle spelling of the same columns in the same order; refuse to train if that drifts.
    if tuple(data.feature_names) != SKLEARN_NAMES:
        raise RuntimeError("load_breast_cancer() feature names no longer match shared.features.SKLEARN_NAMES")
    X = np.asarray(data.data, dtype=np.float64)
    y = np.asarray(data.target, dtype=np.int64)
    parts = train_test_split(X, y, np.arange(len(y)), test_size=TEST_SIZE, stratify=y, random_state=SEED)
    return dict(zip(("X_train", "X_test", "y_train", "y_test", "idx_train", "idx_test"), parts, strict=True))


def train_all(models_dir: Path) -> list[dict[str, Any]]:
    """Rebuild every model into models_dir; return the metadata dicts written."""
    models_dir.mkdir(parents=True, exist_ok=True)
    split = load_split()
    return [train_model(name, features, split, models_dir) for name, features in MODELS.items()]


if __name__ == "__main__":
    from shared.settings import get_settings

    for meta in train_all(get_settings().models_dir):
        print(meta["name"], meta["best_params"], json.dumps(meta["metrics"]))
