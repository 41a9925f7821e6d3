"""The models, their blank templates, and the API's own OpenAPI document and reference page."""

from __future__ import annotations

from flask import current_app, jsonify, render_template
from flask.typing import ResponseReturnValue

from api import downloads, model_use, results, schemas
from api.api_v1 import attachment, bp, wanted_format
from api.auth import require
from api.database import db
from api.openapi import CSV, XLSX, document, errors, responses, spec
from api.registry import all_models, model_or_404
from shared.schema import Role
from shared.spreadsheets import template_csv, template_xlsx

MODEL_KEYS = (
    "name", "version", "sha256", "engine", "features", "metrics", "calibration", "best_params", "sklearn_version",
    "feature_ranges",
)  # fmt: skip


@bp.get("/models")
@spec.validate(resp=responses(HTTP_200=schemas.Models), tags=["models"])
def models() -> ResponseReturnValue:
    """Every model: features, held-out metrics, calibration, sha256, engine, and which is the default."""
    default = current_app.config["CYTOSCORE"].default_model
    listed = [{**{k: m.get(k) for k in MODEL_KEYS}, "default": m["name"] == default} for m in all_models()]
    return jsonify(models=listed, notice=results.NOTICE)


@bp.get("/models/<name>/template")
@spec.validate(
    query=schemas.TemplateQuery, resp=responses(**errors(400, 404)), files={"200": (CSV, XLSX)}, tags=["models"]
)
def template(name: str) -> ResponseReturnValue:
    """A blank spreadsheet with the columns this model needs."""
    fmt = wanted_format(schemas.TemplateQuery)
    features = model_or_404(name)["features"]
    if fmt == "xlsx":
        return attachment(template_xlsx(features), f"cytoscore-{name}-template.xlsx", XLSX)
    return attachment(template_csv(features), f"cytoscore-{name}-template.csv", "text/csv")


@bp.get("/models/<name>/use")
@spec.validate(
    query=schemas.UseQuery,
    resp=responses(HTTP_200=schemas.ModelUse, **errors(400, 403, 404)),
    files={"200": (CSV,)},
    tags=["models"],
)
def use(name: str) -> ResponseReturnValue:
    """How the model has been used here, month by month in the site's time zone (administrators): jobs, rows
    scored, flagged and rejected, answered M, and against supplied diagnoses (training rows left out) sensitivity
    and specificity with 95 % Wilson intervals, as JSON or CSV. Jobs whose results were removed are not counted."""
    require(Role.ADMIN)
    fmt = wanted_format(schemas.UseQuery)
    model_or_404(name)
    zone = current_app.config["CYTOSCORE"].time_zone
    months = model_use.by_month(db(), name, zone)
    if fmt == "csv":
        lines = iter(model_use.table_rows(months))
        return attachment(downloads.csv_stream(model_use.FIELDS, lines), f"cytoscore-{name}-use.csv", "text/csv")
    return jsonify(model=name, time_zone=zone, months=months)


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    """This API's OpenAPI 3.1 document, made from the handlers' own models (no sign-in needed)."""
    return jsonify(document())


@bp.get("/docs")
def docs() -> ResponseReturnValue:
    """The document as a reference page: Swagger UI, vendored under static/vendor/ (no CDN)."""
    return render_template("api_docs.html")
