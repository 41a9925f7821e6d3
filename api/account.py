"""Your account: change your password, see your sessions and end them, make and revoke your API tokens, and read
what happened to the account."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_user

from api.auth import Principal, address, end_browser_session, record, require_password_session, safe_next
from api.database import db
from shared import accounts, signins, trail
from shared.passwords import MIN_LENGTH
from shared.schema import User

bp = Blueprint("account", __name__, url_prefix="/account")


@bp.before_request
def _people_only() -> None:
    require_password_session()


def _me() -> User:
    user = db().get(User, current_user.user_id)
    if user is None:
        abort(404)
    return user


def _idle() -> timedelta:
    return timedelta(minutes=current_app.config["CYTOSCORE"].session_idle_minutes)


def _page(status: int = 200, **context: Any) -> ResponseReturnValue:
    me = _me()
    context.setdefault("field_errors", {})
    context.setdefault("values", {})
    return render_template(
        "account.html",
        me=me,
        sessions=signins.live(db(), me.id, _idle()),
        tokens=[t for t, _ in accounts.tokens_of(db(), me.id)],
        token_days=accounts.TOKEN_DAYS,
        state=accounts.token_state,
        **context,
    ), status


@bp.get("")
def overview() -> ResponseReturnValue:
    return _page()


@bp.route("/password", methods=["GET", "POST"])
def password() -> ResponseReturnValue:
    forced = current_user.must_change_password
    after = request.values.get("next", "")  # a first change goes on to the page asked for at sign-in
    if request.method == "GET":
        return render_template("password.html", forced=forced, field_errors={}, min_length=MIN_LENGTH, next=after)
    me = _me()
    form = request.form
    try:
        accounts.change_password(db(), me, form.get("current", ""), form.get("password", ""), form.get("confirm", ""))
    except accounts.AccountError as exc:
        db().rollback()
        errors = {exc.field or "password": str(exc)}
        page = render_template("password.html", forced=forced, field_errors=errors, min_length=MIN_LENGTH, next=after)
        return page, 422
    # Every session of the account ended with the change, this one too; this browser gets a new one.
    secret = signins.start(db(), me, address(), request.headers.get("User-Agent"))
    record("password.change", target=me.email)
    db().commit()
    login_user(Principal.of(me, None, secret))
    flash("Your password was changed. Every other session of your account has ended.")
    return redirect(safe_next(after) if forced else url_for("account.overview"))


@bp.get("/activity")
def activity() -> ResponseReturnValue:
    """Sign-ins, failed ones and changes to the account, by its owner or an admin: a page at a time, newest
    first (`before`: the id the previous page's "Older" link gives)."""
    before = trail.before(request.args)
    events, older = trail.of_account(db(), current_user.email, before)
    return render_template("activity.html", events=events, older=older, before=before, page=trail.PAGE,
                           said=trail.ACCOUNT_ACTIONS)  # fmt: skip


@bp.post("/keep-alive")
def keep_alive() -> ResponseReturnValue:
    """Stay signed in: the page's "Stay signed in" before an idle sign-out. Seconds left, from now."""
    if not signins.touch(db(), current_user.session_id):
        abort(404)
    db().commit()
    return jsonify(seconds_left=int(_idle().total_seconds()))


@bp.post("/sessions/end-all")
def end_all_sessions() -> ResponseReturnValue:
    count = signins.end_all(db(), current_user.user_id, "sign-out everywhere")
    record("sessions.end", target=current_user.email, detail=f"{count} sessions")
    end_browser_session("sign-out everywhere")
    db().commit()
    flash(f"You have signed out of all {count} sessions." if count != 1 else "You have signed out.")
    return redirect(url_for("auth.login"))


@bp.post("/sessions/<int:session_id>/end")
def end_session(session_id: int) -> ResponseReturnValue:
    if not signins.end(db(), session_id, current_user.user_id, "sign-out"):
        abort(404, description="you have no such session")
    record("sessions.end", target=current_user.email, detail=f"session {session_id}")
    if session_id == current_user.session_id:
        end_browser_session("sign-out")
        db().commit()
        flash("You have signed out.")
        return redirect(url_for("auth.login"))
    db().commit()
    flash("That session has ended.")
    return redirect(url_for("account.overview", _anchor="sessions"))


@bp.post("/tokens")
def add_token() -> ResponseReturnValue:
    values = {"name": request.form.get("name", ""), "days": request.form.get("days", ""),
              "may": request.form.get("may", "write")}  # fmt: skip
    try:
        token, plain = accounts.add_token(db(), _me(), values["name"], values["days"], values["may"] == "read")
    except accounts.AccountError as exc:
        db().rollback()
        return _page(422, field_errors={exc.field or "name": str(exc)}, values=values)
    record("token.add", target=current_user.email, detail=accounts.described(token))
    db().commit()
    return _page(201, new_token=plain, new_token_name=token.name)


@bp.post("/tokens/<int:token_id>/revoke")
def revoke_token(token_id: int) -> ResponseReturnValue:
    try:
        token = accounts.revoke_token(db(), token_id, owner_id=current_user.user_id)
    except accounts.AccountError:
        abort(404, description="you have no such token")
    record("token.revoke", target=current_user.email, detail=accounts.described(token))
    db().commit()
    flash(f"The token “{token.name}” is revoked.")
    return redirect(url_for("account.overview", _anchor="tokens"))
