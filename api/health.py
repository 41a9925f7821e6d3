"""Liveness, readiness and metrics for operators."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import text

from api import metrics
from api.queueing import celery

bp = Blueprint("health", __name__)


def _database_ok() -> bool:
    try:
        with current_app.extensions["cytoscore.engine"].connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


def _broker_ok() -> bool:
    try:
        with celery().connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
    except Exception:
        return False
    return True


def _answer(checks: dict[str, bool]) -> ResponseReturnValue:
    status = 200 if all(checks.values()) else 503
    return jsonify(status="ok" if status == 200 else "unavailable", checks=checks), status


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """The contract's health check: 200 when the database and the broker answer."""
    return _answer({"database": _database_ok(), "broker": _broker_ok()})


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """Ready for traffic: database, broker, and every model verified at start-up."""
    models = bool(current_app.extensions.get("cytoscore.models"))
    return _answer({"database": _database_ok(), "broker": _broker_ok(), "models": models})


@bp.get("/metrics")
def prometheus() -> ResponseReturnValue:
    settings = current_app.config["CYTOSCORE"]
    return metrics.render(current_app.extensions["cytoscore.engine"], celery(), settings.queue)
