"""Locked doors: the client's address, secret key, cookies, CSRF, security headers and rate limits."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from flask import Flask, Response, g, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import current_user
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from api.uploads import streamed
from shared.settings import Settings
from shared.signins import Backoff

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HSTS = "max-age=31536000"  # a year; sent only over TLS, where browsers heed it
#: Endpoints that create jobs: rate-limited per person.
JOB_CREATION = (
    "api_v1.create_job",
    "api_v1.rescore_job",
    "api_v1.open_row",
    "pages.submit_case",
    "pages.upload",
    "pages.rescore",
    "pages.open_row",
)


def secret_key(settings: Settings) -> str:
    """SECRET_KEY from the environment; the embedded mode alone may keep a generated one under var/."""
    if settings.secret_key:
        return settings.secret_key
    if not settings.embedded:
        raise RuntimeError("SECRET_KEY is required outside the embedded mode: set it in the environment")
    path = settings.var_dir / "secret_key"
    if not path.exists():
        settings.var_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
    return path.read_text().strip()


def init_app(app: Flask, settings: Settings) -> None:
    if settings.trusted_proxies:
        # X-Forwarded-For and -Proto are believed through exactly this many proxies; with none, nobody can claim
        # another address (the audit trail, the limits) or TLS (HSTS, Secure cookies).
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)  # type: ignore[method-assign]
    app.extensions["cytoscore.backoff"] = Backoff.parse(settings.login_account_limit)
    secure = settings.secure_cookies if settings.secure_cookies is not None else not settings.embedded
    app.config.update(
        SECRET_KEY=secret_key(settings),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure,
        REMEMBER_COOKIE_SECURE=secure,
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=settings.session_idle_minutes),
        SESSION_REFRESH_EACH_REQUEST=True,
        WTF_CSRF_CHECK_DEFAULT=False,  # checked below, for browser requests only
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
    )
    csrf = CSRFProtect(app)

    @app.before_request
    def _csrf_for_browsers() -> None:
        # A bearer-token request carries no cookie a forged page could ride on; a browser request must
        # prove it came from our own form.
        # A URL no route matches changes nothing: it answers 404 or 405, not a CSRF refusal.
        if request.url_rule is None:
            return
        if streamed():
            return  # the upload's form is read as it arrives, its token before the file (api.uploads)
        if request.method in ("POST", "PUT", "PATCH", "DELETE") and not g.get("via_token"):
            csrf.protect()

    app.after_request(_headers)
    _limit(app, settings)


# Swagger UI (the API reference page only) sets style attributes from its script; nothing else may.
DOCS_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")


def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = DOCS_CSP if request.endpoint == "api_v1.docs" else CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    if request.is_secure:
        response.headers["Strict-Transport-Security"] = HSTS
    if request.endpoint != "static":
        response.headers["Cache-Control"] = "no-store"  # pages, polls and downloads carry patient results
    return response


def _refused_sign_in(response: Response) -> bool:
    return response.status_code in (401, 422)


def _person_key() -> str:
    return f"user:{current_user.user_id}" if current_user.is_authenticated else get_remote_address()


def _limit(app: Flask, settings: Settings) -> None:
    storage = settings.broker_url if settings.broker_url.startswith(("redis://", "rediss://")) else "memory://"
    timeouts: dict[str, Any] = {"socket_connect_timeout": settings.broker_timeout,
                                "socket_timeout": settings.broker_timeout}  # fmt: skip
    limiter = Limiter(
        get_remote_address,
        app=app,
        storage_uri=storage,
        storage_options=timeouts,
        strategy="moving-window",
        swallow_errors=True,  # a broker outage must not lock everyone out; the in-flight cap still holds
        key_prefix=f"cytoscore-limits:{settings.queue}",
    )
    view: dict[str, Any] = app.view_functions
    # Refused sign-ins per address, whatever the email: spraying one password over many accounts stops here. The
    # per-email back-off, from any address, is the login view's (shared.signins), in PostgreSQL, so it holds when
    # Redis does not.
    for endpoint in ("auth.login", "two_step.code"):  # the password, then an authenticator's code
        view[endpoint] = limiter.limit(
            settings.login_rate_limit, key_func=get_remote_address, methods=["POST"], deduct_when=_refused_sign_in
        )(view[endpoint])
    for endpoint in JOB_CREATION:
        if endpoint in view:
            view[endpoint] = limiter.limit(settings.jobs_rate_limit, key_func=_person_key)(view[endpoint])
