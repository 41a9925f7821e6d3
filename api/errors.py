"""Every error is an answer: JSON with a message for the API, a page for people, never a bare 500 for bad input."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


def _wants_json() -> bool:
    if request.path.startswith("/api/") or request.path in {"/healthz", "/readyz"}:
        return True
    # The pages' scripts ask for JSON (Accept: application/json); a 403, 413 or 429 then answers in kind.
    return request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json"


def init_app(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> ResponseReturnValue:
        message = exc.description or exc.name
        if exc.code == 413:
            limit = app.config["MAX_CONTENT_LENGTH"]
            message = f"the upload is larger than the limit of {limit // (1024 * 1024)} MiB"
        if _wants_json():
            return jsonify(error=message), exc.code or 500
        return render_template("error.html", code=exc.code, message=message), exc.code or 500

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> ResponseReturnValue:
        log.exception("unhandled error on %s %s", request.method, request.path)
        message = "internal error; the request was not completed"
        if _wants_json():
            return jsonify(error=message), 500
        return render_template("error.html", code=500, message=message), 500
