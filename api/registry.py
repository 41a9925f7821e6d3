"""The published models' metadata (the web side never loads an artifact)."""

from __future__ import annotations

from typing import Any

from flask import Flask, abort, current_app

from shared.modelstore import verify_models
from shared.settings import Settings


class UnknownModel(LookupError):
    pass


def init_app(app: Flask, settings: Settings) -> None:
    """Verify every model as the worker does, with the same function (a model that fails any check stops the web
    and the worker alike, with the same message); keep only metadata."""
    verified = verify_models(settings.models_dir)
    app.extensions["cytoscore.models"] = {m.name: {**m.metadata, "engine": m.engine_note} for m in verified}


def all_models() -> list[dict[str, Any]]:
    return list(current_app.extensions["cytoscore.models"].values())


def model_meta(name: str | None) -> dict[str, Any]:
    """The metadata of the named model, or of the default one when no name is given."""
    models: dict[str, dict[str, Any]] = current_app.extensions["cytoscore.models"]
    name = name or current_app.config["CYTOSCORE"].default_model
    if name not in models:
        raise UnknownModel(f"unknown model {name!r}; available: {', '.join(models)}")
    return models[name]


def model_or_404(name: str | None) -> dict[str, Any]:
    """`model_meta`, answering 404 with its message for a model that is not published."""
    try:
        return model_meta(name)
    except UnknownModel as exc:
        abort(404, description=str(exc.args[0]))
