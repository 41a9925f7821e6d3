"""Save cytoscore's skops pipeline for a peer: `mlflow.sklearn.save_model` or `bentoml.sklearn.save_model`.

Runs inside a peer's venv and does not import the product: it reads models/<name>.json, checks the artifact's
sha256, loads it with skops trusting only the metadata's `trusted_types` (as shared/modelstore.py does), and
checks the metadata's golden rows before saving. The MLflow copy is stored in skops format too; its signature
names the model's features, so MLflow drops the CSV's other columns. Both copies answer `predict` (0/1 classes).

Usage: python export_model.py mlflow --models-dir models --name wdbc-rf4 --out DIR
       python export_model.py bentoml --models-dir models --name wdbc-rf4 --tag wdbc-rf4:SHA  (BENTOML_HOME set)
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import skops.io as sio


def load(models_dir: Path, name: str) -> tuple[Any, dict[str, Any]]:
    metadata = json.loads((models_dir / f"{name}.json").read_text(encoding="utf-8"))
    data = (models_dir / Path(metadata["artifact"]).name).read_bytes()
    if hashlib.sha256(data).hexdigest() != metadata["sha256"]:
        raise SystemExit(f"{name}: artifact sha256 differs from its metadata")
    pipeline = sio.loads(data, trusted=metadata["trusted_types"])
    positive = list(pipeline.classes_).index(metadata["positive_class"])
    for row in metadata["golden"]:
        proba = pipeline.predict_proba(np.array([row["features"]], dtype=np.float64))[0, positive]
        if abs(proba - row["probability_malignant"]) > 1e-12:
            raise SystemExit(f"{name}: golden row {row['case_index']} differs in this venv")
    return pipeline, metadata


def save_mlflow(pipeline: Any, metadata: dict[str, Any], out: Path) -> None:
    import mlflow.sklearn
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    signature = ModelSignature(
        inputs=Schema([ColSpec("double", f) for f in metadata["features"]]), outputs=Schema([ColSpec("long")])
    )
    mlflow.sklearn.save_model(
        pipeline, str(out), serialization_format="skops", skops_trusted_types=metadata["trusted_types"],
        signature=signature, pip_requirements=[],  # --env-manager local: the venv is the environment
    )  # fmt: skip


def save_bentoml(pipeline: Any, metadata: dict[str, Any], tag: str) -> None:
    import bentoml

    try:
        bentoml.models.get(tag)
        return  # already in the store from an earlier run
    except bentoml.exceptions.NotFound:
        pass
    bentoml.sklearn.save_model(tag, pipeline, metadata={"features": metadata["features"]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("peer", choices=["mlflow", "bentoml"])
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--tag")
    args = parser.parse_args()
    pipeline, metadata = load(args.models_dir, args.name)
    if args.peer == "mlflow":
        save_mlflow(pipeline, metadata, args.out)
    else:
        save_bentoml(pipeline, metadata, args.tag)


if __name__ == "__main__":
    main()
