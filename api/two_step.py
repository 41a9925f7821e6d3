"""Two-step sign-in in the browser: the code asked for after a right password, and turning it on or off, or
making new recovery codes, on your account (`shared.two_step`). Every change is audited."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from api.auth import AWAITING_CODE, address, record, require_password_session, sign_in
from api.database import db
from shared import accounts, passwords, signins, two_step
from shared.schema import User, UserSession, utcnow

bp = Blueprint("two_step", __name__)
CODE_WAIT = timedelta(minutes=5)  # from the right password to the app's code


def _awaiting() -> tuple[User, str] | None:
    """The person whose password was right in this browser a few minutes ago, and where they were going."""
    pending = session.get(AWAITING_CODE)
    if not isinstance(pending, dict) or utcnow().timestamp() - float(pending.get("at", 0)) > CODE_WAIT.total_seconds():
        return None
    user = db().get(User, pending.get("user"))
    if user is None or not user.active or user.totp_secret is None:
        return None
    return user, str(pending.get("next") or url_for("pages.home"))


def _code_page(status: int, headers: dict[str, str] | None = None, **context: Any) -> ResponseReturnValue:
    context.setdefault("field_errors", {})
    return render_template("login_code.html", **context), status, headers or {}


@bp.route("/login/code", methods=["GET", "POST"])
def code() -> ResponseReturnValue:
    awaiting = _awaiting()
    if awaiting is None:
        if session.pop(AWAITING_CODE, None) is not None:
            flash("Sign in again: the time to type your code ran out.")
        return redirect(url_for("auth.login"))
    user, target = awaiting
    if request.method == "GET":
        return _code_page(200)
    typed = request.form.get("code", "")[:64]
    if not typed.strip():
        return _code_page(422, field_errors={"code": "type the six digits your app shows"})
    wait = signins.must_wait(db(), user.email)
    if wait is not None:
        accounts.audit(db(), "login.throttled", actor=user.email, address=address(), detail="two-step code")
        db().commit()
        seconds = max(1, int(wait.total_seconds() + 0.999))
        return _code_page(429, {"Retry-After": str(seconds)}, throttled=seconds)
    try:
        how = two_step.check(db(), user, typed)
    except two_step.CodeRefused as exc:
        db().rollback()
        signins.failed(db(), user.email, current_app.extensions["cytoscore.backoff"])
        accounts.audit(db(), "login.failed", actor=user.email, address=address(), detail="two-step code")
        db().commit()
        return _code_page(401, field_errors={"code": str(exc)})
    signed_in = sign_in(user, target, detail=f"two-step: {how}")  # a new session: say it after, in that one
    if how == "recovery code":
        left = two_step.recovery_left(db(), user.id)
        flash(f"You signed in with a recovery code; {left} {'is' if left == 1 else 'are'} left. "
              "Make new ones on your account page if you are running low.")  # fmt: skip
    return signed_in


def _me() -> User:
    require_password_session()
    user = db().get(User, current_user.user_id)
    if user is None:
        abort(404)
    return user


def _browser_session() -> UserSession:
    row = db().get(UserSession, current_user.session_id)
    if row is None:
        abort(404)
    return row


def _setup_page(me: User, status: int = 200, **context: Any) -> ResponseReturnValue:
    context.setdefault("field_errors", {})
    if me.totp_secret is None:
        row = _browser_session()
        if row.totp_pending is None:  # one key per browser until confirmed: the app may hold it already
            row.totp_pending = two_step.new_secret()
            db().commit()
        secret = row.totp_pending
        context.update(key=two_step.grouped(secret), qr=two_step.qr_svg(secret, me.email),
                       app_link=two_step.address(secret, me.email))  # fmt: skip
    else:
        context["left"] = two_step.recovery_left(db(), me.id)
    required = current_app.config["CYTOSCORE"].two_step_required(me.role)
    return render_template("two_step.html", me=me, required=required, **context), status


def _password_right(me: User, field: str = "password") -> bool:
    return passwords.verify(me.password_hash, request.form.get(field, "")[: 4 * passwords.MAX_LENGTH])


@bp.route("/account/two-step", methods=["GET", "POST"])
def setup() -> ResponseReturnValue:
    me = _me()
    if request.method == "GET" or me.totp_secret is not None:
        return _setup_page(me)
    secret = _browser_session().totp_pending
    if secret is None:
        return redirect(url_for("two_step.setup"))
    if not _password_right(me):
        return _setup_page(me, 422, field_errors={"password": "that is not your password"})
    try:
        codes = two_step.turn_on(db(), me, secret, request.form.get("code", "")[:64])
    except two_step.CodeRefused as exc:
        db().rollback()
        return _setup_page(me, 422, field_errors={"code": str(exc)})
    _browser_session().totp_pending = None
    record("two_step.on", target=me.email)
    db().commit()
    return _setup_page(me, 201, recovery_codes=codes)


@bp.post("/account/two-step/recovery-codes")
def new_recovery_codes() -> ResponseReturnValue:
    me = _me()
    if me.totp_secret is None:
        return redirect(url_for("two_step.setup"))
    if not _password_right(me):
        return _setup_page(me, 422, field_errors={"password": "that is not your password"})
    codes = two_step.new_recovery_codes(db(), me)
    record("two_step.recovery_codes", target=me.email, detail="the earlier ones no longer work")
    db().commit()
    return _setup_page(me, 201, recovery_codes=codes)


@bp.post("/account/two-step/off")
def turn_off() -> ResponseReturnValue:
    me = _me()
    if current_app.config["CYTOSCORE"].two_step_required(current_user.role):
        abort(403, description="two-step sign-in is required for your role here: it cannot be turned off")
    if me.totp_secret is None:
        return redirect(url_for("two_step.setup"))
    if not _password_right(me, "off_password"):
        return _setup_page(me, 422, field_errors={"off_password": "that is not your password"})
    two_step.turn_off(db(), me)
    record("two_step.off", target=me.email)
    db().commit()
    flash("Two-step sign-in is off: your password alone signs you in.")
    return redirect(url_for("account.overview"))
