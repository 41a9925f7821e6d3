"""The model cards: every model, and one with its metrics, calibration and the features it reads."""

from __future__ import annotations

from flask import abort, render_template
from flask.typing import ResponseReturnValue

from api import charts, feature_labels, results
from api.pages import bp
from api.registry import UnknownModel, all_models, model_meta


@bp.get("/models")
def model_list() -> ResponseReturnValue:
    return render_template("models.html", models=all_models(), default=model_meta(None)["name"])


@bp.get("/models/<name>")
def model_page(name: str) -> ResponseReturnValue:
    try:
        model = model_meta(name)
    except UnknownModel as exc:
        abort(404, description=str(exc.args[0]))
    calibration = model.get("calibration")
    return render_template(
        "model.html",
        model=model,
        reliability=charts.reliability(calibration["bins"], calibration["brier"]) if calibration else None,
        fields=feature_labels.fields(model),
        default=model_meta(None)["name"],
        notice=results.NOTICE,
    )
