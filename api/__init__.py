"""The Flask front end: pages for people, a JSON API for programs."""

from __future__ import annotations

from flask import Flask
from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter

from shared.logs import configure_logging
from shared.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or get_settings()
    configure_logging(settings)
    app = Flask(__name__)
    app.url_map.converters["int"] = IntegerKey  # before any route is added
    app.config.update(CYTOSCORE=settings, MAX_CONTENT_LENGTH=settings.max_upload_bytes)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # fields in the order the API documents them
    register_extensions(app, settings)
    register_blueprints(app)
    register_security(app, settings)
    register_errorhandlers(app)
    return app


class IntegerKey(IntegerConverter):
    """`<int:…>` in a path is a row number or an id kept in a PostgreSQL integer column: a larger number is a 404, as
    for a missing one, instead of reaching the database as a query it refuses (a 500).

    Refused here, once the route has matched, not with the converter's `max`: a number over `max` matches no rule, and
    Werkzeug then answers 405 for another method of the same path (PATCH /api/v1/webhooks/<huge> said 405)."""

    LARGEST = 2**31 - 1

    def to_python(self, value: str) -> int:
        number = int(super().to_python(value))
        if number > self.LARGEST:
            raise NotFound()
        return number


def register_extensions(app: Flask, settings: Settings) -> None:
    from api import auth, database, formats, queueing, registry, times

    database.init_app(app, settings)
    queueing.init_app(app, settings)
    registry.init_app(app, settings)
    auth.init_app(app)
    times.init_app(app)
    formats.init_app(app)


def register_blueprints(app: Flask) -> None:
    from api import account, admin, api_v1, auth, health, pages, two_step, webhooks

    app.register_blueprint(health.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(api_v1.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(account.bp)
    app.register_blueprint(two_step.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(webhooks.bp)


def register_security(app: Flask, settings: Settings) -> None:
    from api import security

    security.init_app(app, settings)  # after the blueprints: it rate-limits their views


def register_errorhandlers(app: Flask) -> None:
    from api import errors

    errors.init_app(app)
