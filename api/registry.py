"""The published models' metadata (the web side never loads an artifact)."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app

from shared.modelstore import list_models, load_model
from shared.settings import Settings


class UnknownModel(LookupError):
    pass


def init_app(app: Flask, settings: Settings) -> None:
    """Verify every model as the worker does (a tampered artifact stops the web too), keep only metadata."""
    models = list_models(settings.models_dir)
    if not models:
        raise RuntimeError(f"no models in {settings.models_dir}; run `cytoscore train`")
    verified = {m["name"]: load_model(m["name"], settings.models_dir) for m in models}
    app.extensions["cytoscore.models"] = {m["name"]: {**m, "engine": verified[m["name"]].engine_note} for m in models}


def all_models() -> list[dict[str, Any]]:
    return list(current_app.extensions["cytoscore.models"].values())


def model_meta(name: str | None) -> dict[str, Any]:
    """The metadata of the named model, or of the default one when no name is given."""
    models: dict[str, dict[str, Any]] = current_app.extensions["cytoscore.models"]
    name = name or current_app.config["CYTOSCORE"].default_model
    if name not in models:
        raise UnknownModel(f"unknown model {name!r}; available: {', '.join(models)}")
    return models[name]
