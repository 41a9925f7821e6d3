"""Who is asking: a server-side session (Flask-Login, `shared.signins`) for people, a bearer token for programs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user

from api import times
from api.database import db
from shared import accounts, signins, trail
from shared.passwords import MAX_LENGTH
from shared.schema import Role, User, utcnow
from shared.settings import Settings

bp = Blueprint("auth", __name__)
OPEN_ENDPOINTS = frozenset({"static", "auth.login", "two_step.code", "health.healthz", "health.readyz",
                            "health.prometheus", "api_v1.openapi", "api_v1.docs"})  # fmt: skip
#: While a one-time password is unchanged, only these answer; everything else leads to the change (staying
#: signed in included: the page asking for the change warns before an idle sign-out too).
BEFORE_THE_CHANGE = frozenset({"static", "account.password", "account.keep_alive", "auth.logout"})
#: Where two-step sign-in is required (CYTOSCORE_REQUIRE_TWO_STEP), a person without it reaches only these.
BEFORE_TWO_STEP = BEFORE_THE_CHANGE | {"two_step.setup"}
#: What a read-only token may do.
READING = frozenset({"GET", "HEAD", "OPTIONS"})
#: The browser session's key while a person whose password was right has yet to give their app's code.
AWAITING_CODE = "awaiting_code"


@dataclass(frozen=True)
class Principal(UserMixin):  # type: ignore[misc]
    """The signed-in person, as the request sees them (never the ORM row, never patient data)."""

    user_id: int
    email: str
    role: str
    must_change_password: bool = False
    two_step: bool = False  # signs in with an app's code after the password
    session_id: int | None = None  # the `user_sessions` row of a browser; None for a token
    secret: str = ""  # the cookie's secret, which finds that row again
    via_token: bool = False
    read_only: bool = False  # a token that may only read
    seen_at: datetime | None = None  # the browser session's last request, as its row keeps it (once a minute)

    def get_id(self) -> str:
        return self.secret

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN.value

    def may(self, *roles: Role) -> bool:
        return self.role in {r.value for r in roles}

    @classmethod
    def of(cls, user: User, session_id: int | None = None, secret: str = "", via_token: bool = False,
           read_only: bool = False, seen_at: datetime | None = None) -> Principal:  # fmt: skip
        return cls(user.id, user.email, user.role, user.must_change_password, user.totp_secret is not None, session_id,
                   secret, via_token, read_only, seen_at)  # fmt: skip

    def session_left(self, idle: timedelta) -> int | None:
        """Seconds until this browser's session ends if nothing happens; None for a token."""
        if self.session_id is None or self.seen_at is None:
            return None
        return max(0, int((self.seen_at + idle - utcnow()).total_seconds()))


def init_app(app: Flask) -> None:
    manager = LoginManager(app)
    manager.session_protection = None  # the server-side row is the session; "basic" would add nothing
    manager.user_loader(_load_from_session)
    manager.request_loader(_load_from_bearer)
    manager.unauthorized_handler(_unauthorized)
    app.before_request(_require_login)
    app.context_processor(_session_clock)


def _session_clock() -> dict[str, object]:
    """What the pages' session script needs to warn before an idle sign-out (WCAG 2.2.1): seconds left and the
    idle limit; nothing for a page without a browser session."""
    if not current_user.is_authenticated:
        return {}
    return {"session_left": current_user.session_left(_idle()), "session_idle": int(_idle().total_seconds())}


def _settings() -> Settings:
    return current_app.config["CYTOSCORE"]  # type: ignore[no-any-return]


def _idle() -> timedelta:
    return timedelta(minutes=_settings().session_idle_minutes)


def _load_from_session(secret: str) -> Principal | None:
    found = signins.find(db(), secret, _idle())
    if db().dirty:
        db().commit()  # last seen (at most once a minute), or ended for idleness
    if found is None:
        return None
    row, user = found
    return Principal.of(user, row.id, secret, seen_at=row.last_seen_at)


def _load_from_bearer(req: object) -> Principal | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    found = accounts.token_and_user(db(), token.strip())
    if found is None:
        return None
    if db().dirty:
        db().commit()  # last_used_at, touched at most once a minute
    g.via_token = True
    return Principal.of(found[1], via_token=True, read_only=found[0].read_only)


def _unauthorized() -> ResponseReturnValue:
    if request.path.startswith("/api/"):
        return jsonify(error="sign in first: send `Authorization: Bearer <token>`"), 401
    return redirect(url_for("auth.login", next=request.full_path if request.query_string else request.path))


def _require_login() -> ResponseReturnValue | None:
    if request.endpoint in OPEN_ENDPOINTS or request.endpoint is None:
        return None
    if not current_user.is_authenticated:
        return _unauthorized()
    if current_user.read_only and request.method not in READING:
        return jsonify(error="this token may only read: make one that may also send and change jobs, under "
                             "Account in the browser"), 403  # fmt: skip
    if current_user.must_change_password and not current_user.via_token and request.endpoint not in BEFORE_THE_CHANGE:
        if request.path.startswith("/api/"):
            return jsonify(error="change your one-time password first, at /account/password"), 403
        return redirect(url_for("account.password"))
    if _settings().two_step_required(current_user.role) and not current_user.two_step and not current_user.via_token \
            and request.endpoint not in BEFORE_TWO_STEP:  # fmt: skip
        if request.path.startswith("/api/"):
            return jsonify(error="turn on two-step sign-in first, at /account/two-step"), 403
        return redirect(url_for("two_step.setup"))
    return None


def require(*roles: Role) -> None:
    """403 unless the signed-in person has one of these roles."""
    if not current_user.may(*roles):
        abort(403, description=f"your role ({current_user.role}) may not do this")


def require_password_session() -> None:
    """403 for a bearer token: accounts, sessions and tokens are managed by a person signed in with a password,
    so a leaked token cannot make itself new tokens or change a password."""
    if current_user.via_token or current_user.session_id is None:
        abort(403, description="sign in with your email and password to manage accounts")


def address() -> str | None:
    """The client's address, as ProxyFix gives it through the trusted proxies (TRUSTED_PROXIES)."""
    return request.remote_addr


def record(action: str, *, target: str | None = None, detail: str | None = None) -> None:
    """Add an audit event for the signed-in person to the request's session (the caller commits)."""
    accounts.audit(db(), action, actor=current_user.email, address=address(), target=target, detail=detail)


def safe_next(target: str | None) -> str:
    """Where to go after signing in (or after the first change of password): a path on this site, else home."""
    parts = urlsplit(target or "")
    if not target or parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("pages.home")
    return target


def _typed_email(email: str) -> str | None:
    """What the audit trail keeps of a typed email: printable, at most 254 characters."""
    return signins.throttle_key(email) or None


def _login_page(status: int, headers: dict[str, str] | None = None, **context: object) -> ResponseReturnValue:
    context.setdefault("field_errors", {})
    context.setdefault("next", request.values.get("next", ""))
    return render_template("login.html", **context), status, headers or {}


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    if request.method == "GET":
        return _login_page(200)
    email, password = request.form.get("email", ""), request.form.get("password", "")
    errors: dict[str, str] = {}
    try:
        accounts.normalise_email(email)
    except accounts.AccountError as exc:
        errors["email"] = "enter your email address" if not email.strip() else str(exc)
    if not password:
        errors["password"] = "enter your password"  # noqa: S105 - a message, not a password
    if errors:
        return _login_page(422, field_errors=errors, email=email[:254])
    session_ = db()
    wait = signins.must_wait(session_, email)
    if wait is not None:
        accounts.audit(session_, "login.throttled", actor=_typed_email(email), address=address())
        session_.commit()
        seconds = max(1, int(wait.total_seconds() + 0.999))
        return _login_page(429, {"Retry-After": str(seconds)}, throttled=seconds, email=email[:254])
    user = accounts.authenticate(session_, email, password) if len(password) <= 4 * MAX_LENGTH else None
    if user is None:
        signins.failed(session_, email, current_app.extensions["cytoscore.backoff"])
        accounts.audit(session_, "login.failed", actor=_typed_email(email), address=address())
        session_.commit()
        return _login_page(401, failed=True, email=email[:254])
    target = safe_next(request.form.get("next"))
    if user.totp_secret is not None:  # the password is right; the app's code comes next (api.two_step)
        session_.commit()
        session.clear()
        session[AWAITING_CODE] = {"user": user.id, "at": utcnow().timestamp(), "next": target}
        return redirect(url_for("two_step.code"))
    return sign_in(user, target)


def sign_in(user: User, target: str, detail: str | None = None) -> ResponseReturnValue:
    """Sign this browser in as the person whose password (and code) was right: a new session on the server,
    audited; then the page asked for, or first the change of a one-time password."""
    session_ = db()
    signins.succeeded(session_, user.email)
    failures = trail.failed_sign_ins(session_, user.email, user.last_login_at)
    user.last_login_at = utcnow()
    secret = signins.start(session_, user, address(), request.headers.get("User-Agent"))
    principal = Principal.of(user, None, secret)
    accounts.audit(session_, "login", actor=user.email, address=address(), detail=detail)
    session_.commit()
    session.clear()  # a new session at sign-in: nothing from before survives
    login_user(principal)
    session.permanent = True  # the cookie expires after the idle timeout (renewed per request); the row decides
    _tell_of(failures)
    if user.must_change_password:  # the page says why; the page asked for follows the change
        return redirect(url_for("account.password", next=None if target == url_for("pages.home") else target))
    return redirect(target)


def _tell_of(failures: trail.Failures) -> None:
    """Say what failed since the person's last sign-in: a right password with a wrong code means someone has it."""
    if failures.last is None:
        return
    last = f"the last at {times.when(failures.last.at)} from {failures.last.address or 'an unknown address'}"
    if failures.codes:
        how_often = "once" if failures.codes == 1 else f"{failures.codes} times"
        flash(f"Someone typed your password correctly but not your app's code, {how_often} since your last sign-in, "
              f"{last}. If that was not you, change your password now.", "warning")  # fmt: skip
    else:
        tries = "1 failed sign-in" if failures.passwords == 1 else f"{failures.passwords} failed sign-ins"
        flash(f"{tries} to your account since your last sign-in, {last}. Your account activity lists them.")


def end_browser_session(reason: str) -> None:
    """End this browser's session on the server and forget its cookie (the caller has committed nothing yet)."""
    if current_user.session_id is not None:
        signins.end(db(), current_user.session_id, current_user.user_id, reason)
    logout_user()
    session.clear()


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    accounts.audit(db(), "logout", actor=current_user.email, address=address())
    end_browser_session("sign-out")
    db().commit()
    flash("You have signed out.")
    return redirect(url_for("auth.login"))
