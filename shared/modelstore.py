"""Load a model artifact only after checking it against its metadata; list model metadata."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
import skops.io as sio
from sklearn.datasets import load_breast_cancer
from sklearn.pipeline import Pipeline

from shared.engine import NAME as ENGINE_NAME
from shared.engine import ForestEngine, Unsupported
from shared.explain import TOLERANCE, Explainer, Explanation, largest_gap
from shared.features import FEATURES

#: Types skops distrusts by default that a person reviewed for our artifacts. Adding one needs a review.
REVIEWED_TYPES = frozenset({"sklearn.tree._tree.Tree"})

#: Every metadata field load_model and the product rely on.
REQUIRED_FIELDS = (
    "name", "version", "created", "features", "label_mapping", "positive_class", "sklearn_version",
    "skops_version", "python_version", "artifact", "sha256", "training_data_fingerprint", "split",
    "best_params", "metrics", "feature_ranges", "trusted_types", "golden", "training_rows",
)  # fmt: skip
#: How `training_rows.hashes` are made, as the metadata says it (shared.training writes them, LoadedModel reads them).
ROW_HASH_METHOD = (
    "first 16 hex digits of sha256(the row's feature values as little-endian float64, in `features` order),"
    " one per training row, sorted"
)
GOLDEN_TOLERANCE = 1e-12
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")  # a model name is a file stem; no path separators or '..'


class ModelIntegrityError(Exception):
    """The artifact or its metadata is not what was validated."""


class UnknownModelError(KeyError):
    """No metadata for that model name."""


#: Up to this many rows go through the numpy engine (fast per call); more go through scikit-learn (fast per row).
ENGINE_MAX_ROWS = 256


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    sha256: str
    features: tuple[str, ...]
    metadata: dict[str, Any]
    pipeline: Pipeline
    engine: ForestEngine | None = None
    engine_note: str = "scikit-learn"
    explainer: Explainer | None = None

    def _proba(self, X: np.ndarray, *, engine: bool = True) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.features):
            raise ValueError(f"{self.name} expects shape (n, {len(self.features)}), got {X.shape}")
        if engine and self.engine is not None and len(X) <= ENGINE_MAX_ROWS:
            return self.engine.predict_proba(X)
        return np.asarray(self.pipeline.predict_proba(X), dtype=np.float64)

    def _positive_column(self) -> int:
        return list(self.pipeline.classes_).index(self.metadata["positive_class"])

    def predict_proba_malignant(self, X: np.ndarray) -> np.ndarray:
        """Return P(malignant) for each row of X, columns in `features` order."""
        return self._proba(X)[:, self._positive_column()]

    def diagnose(self, X: np.ndarray, *, engine: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Return ("M"/"B" labels, P(malignant)) from one predict_proba call."""
        proba = self._proba(X, engine=engine)
        # A forest's predict() is classes_[argmax(predict_proba)], first class on ties; doing the same here
        # keeps labels identical to pipeline.predict without paying for the trees twice.
        mapping = self.metadata["label_mapping"]
        by_column = np.array([mapping[str(c)] for c in self.pipeline.classes_])
        return by_column[np.argmax(proba, axis=1)], proba[:, self._positive_column()]

    def trained_on(self, X: np.ndarray) -> np.ndarray:
        """For each row of X (columns in `features` order), whether the same feature values were a training row."""
        return trained_on(self.metadata, X)

    def explain(self, X: np.ndarray) -> list[Explanation] | None:
        """Each row's base value and per-feature contributions to P(malignant); None if the model has no explainer."""
        return None if self.explainer is None else self.explainer.explain(np.asarray(X, dtype=np.float64))


def trained_on(metadata: dict[str, Any], X: np.ndarray) -> np.ndarray:
    """For each row of X (columns in the model's `features` order), whether it was one of the training rows that
    the model's metadata lists (the web asks with the metadata alone)."""
    trained = frozenset(metadata["training_rows"]["hashes"])
    return np.fromiter((h in trained for h in row_hashes(X)), dtype=bool, count=len(X))


def row_hashes(X: np.ndarray) -> list[str]:
    """Each row's hash as ROW_HASH_METHOD says: equal feature values (as float64) give equal hashes."""
    rows = np.ascontiguousarray(X, dtype="<f8")
    data, width = rows.reshape(-1).view(np.uint8).data, rows.shape[1] * rows.itemsize  # slices: no array per row
    return [hashlib.sha256(data[start : start + width]).hexdigest()[:16] for start in range(0, len(data), width)]


def feature_ranges(metadata: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """The training data's (min, max) per feature, from the metadata: for out-of-range flags and the form."""
    return {k: (float(lo), float(hi)) for k, (lo, hi) in metadata.get("feature_ranges", {}).items()}


def _metadata_path(name: str, models_dir: Path) -> Path:
    if not _NAME.fullmatch(name) or ".." in name:
        raise UnknownModelError(name)
    return models_dir / f"{name}.json"


def read_metadata(name: str, models_dir: Path) -> dict[str, Any]:
    """Read a model's metadata JSON without touching its artifact."""
    path = _metadata_path(name, models_dir)
    if not path.is_file():
        raise UnknownModelError(name)
    try:
        metadata: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelIntegrityError(f"model {name}: metadata {path.name} is not valid JSON: {exc}") from exc
    if not isinstance(metadata, dict) or metadata.get("name") != name:
        raise ModelIntegrityError(f"model {name}: metadata {path.name} does not describe model {name!r}")
    missing = [f for f in REQUIRED_FIELDS if f not in metadata]
    if missing:
        raise ModelIntegrityError(f"model {name}: metadata {path.name} lacks fields {missing}")
    return metadata


def list_models(models_dir: Path) -> list[dict[str, Any]]:
    """Return every model's metadata, the default model first, the rest by name."""
    from shared.settings import get_settings  # settings are read when asked for, not at import

    default = get_settings().default_model
    names = sorted(p.stem for p in models_dir.glob("*.json"))
    return [read_metadata(n, models_dir) for n in sorted(names, key=lambda n: n != default)]


def fitting(models: list[dict[str, Any]], present: frozenset[str]) -> list[dict[str, Any]]:
    """The models whose every feature is among `present`, best held-out ROC AUC first (ties: fewer features, name)."""
    fits = [m for m in models if set(m["features"]) <= present]
    return sorted(fits, key=lambda m: (-float(m["metrics"]["roc_auc"]), len(m["features"]), m["name"]))


def best_fit(models: list[dict[str, Any]], present: frozenset[str]) -> dict[str, Any] | None:
    """The model a file is scored with when none is named: the best held-out ROC AUC among those it has the
    features of; None when it fits none (the default model then says which columns are missing)."""
    fits = fitting(models, present)
    return fits[0] if fits else None


def _check(name: str, what: str, expected: object, actual: object) -> None:
    if expected != actual:
        raise ModelIntegrityError(f"model {name}: {what} differs: expected {expected!r}, actual {actual!r}")


def _load_verified(name: str, data: bytes, metadata: dict[str, Any]) -> Any:
    """Refuse types nobody reviewed, then load trusting exactly the reviewed ones."""
    try:
        untrusted = set(sio.get_untrusted_types(data=data))
    except Exception as exc:  # a pickle, a truncated zip, a zip without a skops schema: all the same refusal
        raise ModelIntegrityError(f"model {name}: artifact is not a valid skops archive: {exc!r}") from exc
    declared = set(metadata.get("trusted_types", []))
    for allowed, source in (
        (REVIEWED_TYPES, "the reviewed list REVIEWED_TYPES"),
        (declared, "trusted_types"),
    ):
        if not untrusted <= allowed:
            raise ModelIntegrityError(
                f"model {name}: artifact needs types not in {source}: {sorted(untrusted - allowed)}"
            )
    try:
        return sio.loads(data, trusted=sorted(REVIEWED_TYPES & declared))
    except Exception as exc:
        raise ModelIntegrityError(f"model {name}: skops refused to load the artifact: {exc!r}") from exc


def _check_golden(loaded: LoadedModel, *, engine: bool) -> None:
    for i, row in enumerate(loaded.metadata["golden"]):
        labels, proba = loaded.diagnose(np.array([row["features"]], dtype=np.float64), engine=engine)
        expected = (row["diagnosis"], row["probability_malignant"])
        actual = (str(labels[0]), float(proba[0]))
        if actual[0] != expected[0] or abs(actual[1] - expected[1]) > GOLDEN_TOLERANCE:
            raise ModelIntegrityError(
                f"model {loaded.name}: golden row {i} differs: expected (diagnosis, probability_malignant) "
                f"{expected!r}, actual {actual!r}"
            )


def load_model(name: str, models_dir: Path) -> LoadedModel:
    """Load a model and verify it against its metadata; raise ModelIntegrityError on any difference."""
    metadata = read_metadata(name, models_dir)
    artifact = models_dir / Path(metadata["artifact"]).name
    # Hash and load the same bytes, so the file cannot change between the check and the load.
    try:
        data = artifact.read_bytes()
    except OSError as exc:
        raise ModelIntegrityError(f"model {name}: cannot read artifact {artifact.name}: {exc}") from exc
    _check(name, f"sha256 of {artifact.name}", metadata["sha256"], hashlib.sha256(data).hexdigest())
    _check(name, "scikit-learn version", metadata["sklearn_version"], sklearn.__version__)
    pipeline = _load_verified(name, data, metadata)
    if not isinstance(pipeline, Pipeline):
        raise ModelIntegrityError(f"model {name}: artifact type differs: expected Pipeline, actual {type(pipeline)}")
    features = tuple(metadata["features"])
    _check(name, "feature count", len(features), getattr(pipeline, "n_features_in_", None))
    _check(name, "classes", sorted(metadata["label_mapping"]), sorted(str(c) for c in pipeline.classes_))
    trained = metadata["training_rows"]
    _check(name, "training row hash method", ROW_HASH_METHOD, trained.get("method"))
    _check(name, "training row hashes", metadata["split"]["n_train"], len(trained.get("hashes", ())))
    loaded = LoadedModel(name, metadata["version"], metadata["sha256"], features, metadata, pipeline)
    _check_golden(loaded, engine=False)
    return _with_explainer(_with_engine(loaded))


def verify_models(models_dir: Path) -> list[LoadedModel]:
    """Load and verify every published model, as the web and the worker both do before serving: any failure, of
    whatever kind (a golden row of the wrong shape raises ValueError, not only a mismatch), is one
    ModelIntegrityError with the same message on both sides, and so is a folder without models."""
    models = list_models(models_dir)
    if not models:
        raise ModelIntegrityError(f"no models in {models_dir}; run `cytoscore train`")
    loaded = []
    for meta in models:
        try:
            loaded.append(load_model(meta["name"], models_dir))
        except ModelIntegrityError:
            raise
        except Exception as exc:  # a check that could not even run is a failed check
            raise ModelIntegrityError(f"model {meta['name']}: its checks could not run: {exc!r}") from exc
    return loaded


def _with_explainer(loaded: LoadedModel) -> LoadedModel:
    """Attach the explainer, refusing the model if base + contributions misses a golden row's probability."""
    try:
        explainer = Explainer(loaded.pipeline, loaded.features, loaded._positive_column())
    except TypeError:
        return loaded  # a pipeline TreeSHAP cannot explain: answers come without contributions
    golden = loaded.metadata["golden"]
    X = np.array([row["features"] for row in golden], dtype=np.float64)
    gap = largest_gap(explainer, X, np.array([row["probability_malignant"] for row in golden]))
    if not gap <= TOLERANCE:
        raise ModelIntegrityError(
            f"model {loaded.name}: explanations do not add up on the golden rows: base + contributions is "
            f"{gap:.3g} from the probability (at most {TOLERANCE:g})"
        )
    return replace(loaded, explainer=explainer)


def _with_engine(loaded: LoadedModel) -> LoadedModel:
    """Attach the fast engine only if it answers exactly as scikit-learn on the golden rows and the bundled cases."""
    try:
        engine = ForestEngine.from_pipeline(loaded.pipeline)
    except Unsupported as exc:
        return replace(loaded, engine_note=f"scikit-learn ({exc})")
    candidate = replace(loaded, engine=engine, engine_note=ENGINE_NAME)
    X = load_breast_cancer().data[:, [FEATURES.index(f) for f in loaded.features]]
    expected = loaded.pipeline.predict_proba(X)
    try:
        _check_golden(candidate, engine=True)
    except ModelIntegrityError as exc:
        return replace(loaded, engine_note=f"scikit-learn (engine disagreed on the golden rows: {exc})")
    if not np.array_equal(engine.predict_proba(X), expected):
        return replace(loaded, engine_note="scikit-learn (engine disagreed on the bundled cases)")
    return candidate
