"""The admin pages: the accounts (add, disable, enable, role, reset a password, revoke access, turn off two-step
sign-in) and the audit trail, with filters and a CSV export. Every change is audited."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user

from api import times
from api.auth import record, require, require_password_session
from api.database import db
from shared import accounts, signins, trail, two_step
from shared.schema import Role, User
from shared.spreadsheets import csv_writer, neutralise

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def _admins_only() -> None:
    require_password_session()
    require(Role.ADMIN)


def _user(user_id: int) -> User:
    user = db().get(User, user_id)
    if user is None:
        abort(404, description="no such account")
    return user


def _users_page(status: int = 200, **context: Any) -> ResponseReturnValue:
    context.setdefault("field_errors", {})
    context.setdefault("values", {})
    wanted = {k: request.args.get(k, "").strip().lower() for k in ("q", "role", "two_step", "status")}
    listed = [row for row in accounts.list_users(db()) if _shown(row.user, wanted)]
    return render_template("admin_users.html", listed=listed, roles=[r.value for r in Role], wanted=wanted,
                           **context), status  # fmt: skip


def _shown(user: User, wanted: dict[str, str]) -> bool:
    """Whether an account matches the list's filters: part of its email, role, two-step on or off, status."""
    return (
        wanted["q"] in user.email
        and wanted["role"] in ("", user.role)
        and wanted["two_step"] in ("", "on" if user.totp_secret else "off")
        and wanted["status"] in ("", "active" if user.active else "disabled")
    )


@bp.get("/users")
def users() -> ResponseReturnValue:
    return _users_page()


@bp.post("/users")
def add_user() -> ResponseReturnValue:
    values = {"email": request.form.get("email", "")[:254], "role": request.form.get("role", "")}
    try:
        user, one_time = accounts.add_user(db(), values["email"], None, values["role"])
    except accounts.AccountError as exc:
        db().rollback()
        return _users_page(422, field_errors={exc.field or "email": str(exc)}, values=values)
    record("user.add", target=user.email, detail=f"as {user.role}, with a one-time password")
    db().commit()
    return _users_page(201, one_time=one_time, one_time_for=user.email)


def _user_page(user: User, status: int = 200, **context: Any) -> ResponseReturnValue:
    idle = timedelta(minutes=current_app.config["CYTOSCORE"].session_idle_minutes)
    context.setdefault("problem", None)
    return render_template(
        "admin_user.html",
        user=user,
        roles=[r.value for r in Role],
        sessions=signins.live(db(), user.id, idle),
        tokens=[t for t, _ in accounts.tokens_of(db(), user.id)],
        state=accounts.token_state,
        **context,
    ), status


@bp.get("/users/<int:user_id>")
def user(user_id: int) -> ResponseReturnValue:
    return _user_page(_user(user_id))


def _change(user_id: int, action: str, message: str, change: Any) -> ResponseReturnValue:
    """Carry out one change of an account, audit it and say so; refused, the page says why and nothing changes."""
    target = _user(user_id)
    try:
        detail = change(target)
    except accounts.AccountError as exc:
        db().rollback()
        return _user_page(_user(user_id), 409, problem=str(exc))
    record(action, target=target.email, detail=detail)
    db().commit()
    flash(message.format(email=target.email, role=target.role))
    return redirect(url_for("admin.user", user_id=user_id))


@bp.post("/users/<int:user_id>/role")
def set_role(user_id: int) -> ResponseReturnValue:
    def change(user: User) -> str:
        before = user.role
        accounts.set_role(db(), user, request.form.get("role", ""))
        return f"{before} to {user.role}"

    return _change(user_id, "user.role", "{email} is now {role}.", change)


@bp.post("/users/<int:user_id>/disable")
def disable(user_id: int) -> ResponseReturnValue:
    def change(user: User) -> str:
        if user.id == current_user.user_id:
            raise accounts.AccountError("you cannot disable your own account")
        accounts.disable_user(db(), user)
        return "sessions ended, tokens revoked"

    return _change(user_id, "user.disable", "{email} is disabled: its sessions ended and its tokens were revoked.",
                   change)  # fmt: skip


@bp.post("/users/<int:user_id>/enable")
def enable(user_id: int) -> ResponseReturnValue:
    def change(user: User) -> None:
        accounts.enable_user(user)

    return _change(user_id, "user.enable", "{email} is enabled again.", change)


@bp.post("/users/<int:user_id>/revoke")
def revoke(user_id: int) -> ResponseReturnValue:
    def change(user: User) -> str:
        return f"{accounts.revoke_access(db(), user)} sessions and tokens"

    return _change(user_id, "user.revoke", "Every session and token of {email} has ended.", change)


@bp.post("/users/<int:user_id>/two-step-off")
def two_step_off(user_id: int) -> ResponseReturnValue:
    def change(user: User) -> str:
        two_step.turn_off(db(), user)
        return two_step.TURNED_OFF_FOR

    return _change(user_id, "user.two_step_off", "Two-step sign-in of {email} is off: their password alone signs "
                   "them in.", change)  # fmt: skip


@bp.post("/users/<int:user_id>/reset-password")
def reset_password(user_id: int) -> ResponseReturnValue:
    target = _user(user_id)
    one_time = accounts.reset_password(db(), target)
    record("user.reset_password", target=target.email, detail="one-time password; sessions ended")
    db().commit()
    return _user_page(target, 201, one_time=one_time)


@bp.get("/audit")
def audit() -> ResponseReturnValue:
    filters = trail.Filters.parse(request.args, times.zone())
    events, older = trail.page(db(), filters)
    return render_template(
        "admin_audit.html", filters=filters, events=events, older=older, actions=trail.actions(db()),
        field_errors=filters.errors,
    ), 422 if filters.errors else 200  # fmt: skip


@bp.get("/audit.csv")
def audit_csv() -> ResponseReturnValue:
    filters = trail.Filters.parse(request.args, times.zone())
    if filters.errors:
        return redirect(f"{url_for('admin.audit')}?{request.query_string.decode('latin-1')}")
    record("audit.export", detail=", ".join(f"{k}={v}" for k, v in filters.args().items()) or "everything")
    db().commit()

    def lines() -> Iterator[str]:
        out = io.StringIO()
        writer = csv_writer(out, lineterminator="\n")
        writer.writerow(trail.COLUMNS)
        for row in trail.rows(db(), filters):
            writer.writerow([neutralise(cell) for cell in row])
            if out.tell() > 65536:
                yield out.getvalue()
                out.seek(0)
                out.truncate()
        yield out.getvalue()

    headers = {"Content-Disposition": 'attachment; filename="cytoscore-audit.csv"'}
    return Response(stream_with_context(lines()), mimetype="text/csv", headers=headers)
