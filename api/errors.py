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


def byte_size(n: int) -> str:
    """A size limit as people read it: whole MiB or KiB when it is one (1 MiB, 512 KiB), else bytes in full."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}" if n % size else f"{n // size} {unit}"
    return f"{n} bytes"


def init_app(app: Flask) -> None:
    app.add_template_filter(byte_size)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> ResponseReturnValue:
        message = exc.description or exc.name
        if exc.code == 413:
            limit = request.max_content_length or app.config["MAX_CONTENT_LENGTH"]
            what = "JSON body" if request.is_json else "upload"
            message = f"the {what} is larger than the limit of {byte_size(limit)}"
            if request.is_json:
                message += "; send more cases as a CSV or XLSX file upload, which is streamed"
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
