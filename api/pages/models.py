"""The model cards: every model, and one with its metrics, calibration and the features it reads; and, for
administrators, how a model has been used here month by month."""

from __future__ import annotations

from datetime import date

from flask import current_app, render_template
from flask.typing import ResponseReturnValue

from api import charts, feature_labels, model_use, results
from api.auth import require
from api.database import db
from api.pages import bp
from api.registry import all_models, model_meta, model_or_404
from shared.schema import Role


@bp.get("/models")
def model_list() -> ResponseReturnValue:
    return render_template("models.html", models=all_models(), default=model_meta(None)["name"])


@bp.get("/models/<name>")
def model_page(name: str) -> ResponseReturnValue:
    model = model_or_404(name)
    calibration = model.get("calibration")
    return render_template(
        "model.html",
        model=model,
        reliability=charts.reliability(calibration["bins"], calibration["brier"]) if calibration else None,
        fields=feature_labels.fields(model),
        default=model_meta(None)["name"],
        notice=results.NOTICE,
    )


@bp.get("/models/<name>/use")
def model_use_page(name: str) -> ResponseReturnValue:
    require(Role.ADMIN)
    model = model_or_404(name)
    zone = current_app.config["CYTOSCORE"].time_zone
    months = model_use.by_month(db(), name, zone)
    for entry in months:
        entry["named"] = f"{date.fromisoformat(entry['month'] + '-01'):%B %Y}"
    return render_template("model_use.html", model=model, months=months, zone=zone, span=model_use.MONTHS)
