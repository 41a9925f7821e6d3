"""Who is asking: a login session (Flask-Login) for people, a bearer token for programs."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Blueprint, Flask, abort, flash, g, jsonify, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user

from api.database import db
from shared import accounts
from shared.schema import Role, User

bp = Blueprint("auth", __name__)
OPEN_ENDPOINTS = frozenset({"static", "auth.login", "health.healthz", "health.readyz", "health.prometheus"})


@dataclass(frozen=True)
class Principal(UserMixin):  # type: ignore[misc]
    """The signed-in person, as the request sees them (never the ORM row, never patient data)."""

    user_id: int
    email: str
    role: str
    session_version: int
    via_token: bool = False

    def get_id(self) -> str:
        # The session version is part of the id: disabling the account changes it and ends every session.
        return f"{self.user_id}:{self.session_version}"

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN.value

    def may(self, *roles: Role) -> bool:
        return self.role in {r.value for r in roles}

    @classmethod
    def of(cls, user: User, via_token: bool = False) -> Principal:
        return cls(user.id, user.email, user.role, user.session_version, via_token)


def init_app(app: Flask) -> None:
    manager = LoginManager(app)
    manager.session_protection = "basic"
    manager.user_loader(_load_from_session)
    manager.request_loader(_load_from_bearer)
    manager.unauthorized_handler(_unauthorized)
    app.before_request(_require_login)


def _load_from_session(user_id: str) -> Principal | None:
    uid, _, version = user_id.partition(":")
    if not uid.isdigit() or not version.isdigit():
        return None
    user = db().get(User, int(uid))
    if user is None or not user.active or user.session_version != int(version):
        return None
    return Principal.of(user)


def _load_from_bearer(req: object) -> Principal | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    user = accounts.user_for_token(db(), token.strip())
    if user is None:
        return None
    if db().dirty:
        db().commit()  # last_used_at, touched at most once a minute
    g.via_token = True
    return Principal.of(user, via_token=True)


def _unauthorized() -> ResponseReturnValue:
    if request.path.startswith("/api/"):
        return jsonify(error="sign in first: send `Authorization: Bearer <token>`"), 401
    return redirect(url_for("auth.login", next=request.full_path if request.query_string else request.path))


def _require_login() -> ResponseReturnValue | None:
    if request.endpoint in OPEN_ENDPOINTS or request.endpoint is None:
        return None
    if not current_user.is_authenticated:
        return _unauthorized()
    return None


def require(*roles: Role) -> None:
    """403 unless the signed-in person has one of these roles."""
    if not current_user.may(*roles):
        abort(403, description=f"your role ({current_user.role}) may not do this")


def _safe_next(target: str | None) -> str:
    parts = urlsplit(target or "")
    if not target or parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("pages.home")
    return target


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    if request.method == "GET":
        return render_template("login.html", next=request.args.get("next", ""))
    email = request.form.get("email", "")
    user = accounts.authenticate(db(), email, request.form.get("password", ""))
    address = request.remote_addr
    if user is None:
        accounts.audit(db(), "login.failed", actor=email[:254] or None, address=address)
        db().commit()
        return render_template("login.html", next=request.form.get("next", ""), failed=True, email=email), 401
    accounts.audit(db(), "login", actor=user.email, address=address)
    db().commit()
    session.clear()  # a new session at login: nothing from before survives
    login_user(Principal.of(user))
    session.permanent = True  # expires after the idle timeout (PERMANENT_SESSION_LIFETIME, renewed per request)
    return redirect(_safe_next(request.form.get("next")))


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    accounts.audit(db(), "logout", actor=current_user.email, address=request.remote_addr)
    db().commit()
    logout_user()
    session.clear()
    flash("You have signed out.")
    return redirect(url_for("auth.login"))
