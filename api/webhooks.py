"""Webhooks: an owner registers URLs told when their jobs finish, and reads each one's delivery log. The JSON API
under /api/v1/webhooks, and the page under /account/webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from api import schemas
from api.auth import record, require_password_session
from api.database import db
from api.openapi import errors, responses, spec
from shared import webhooks
from shared.schema import Webhook, WebhookDelivery

bp = Blueprint("webhooks", __name__)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def hook_json(hook: Webhook) -> dict[str, Any]:
    return {
        "id": hook.id,
        "url": hook.url,
        "active": hook.active,
        "created_at": _iso(hook.created_at),
        "deliveries": url_for("webhooks.api_deliveries", hook_id=hook.id),
    }


def delivery_json(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "job_id": str(delivery.job_id),
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "created_at": _iso(delivery.created_at),
        "next_attempt_at": _iso(delivery.next_attempt_at),
        "delivered_at": _iso(delivery.delivered_at),
    }


def _allowed() -> frozenset[str]:
    return frozenset(current_app.config["CYTOSCORE"].webhook_hosts)


def _mine(hook_id: int) -> Webhook:
    hook = webhooks.find_hook(db(), hook_id, current_user.user_id)
    if hook is None:
        abort(404, description="you have no such webhook")  # another person's hook answers like a missing one
    return hook


def _register(url: str) -> Webhook:
    """Register the URL for the signed-in person and audit it (raises UrlRefused; the caller commits)."""
    hook = webhooks.register(db(), current_user.user_id, url, _allowed())
    record("webhook.add", target=current_user.email, detail=f"webhook {hook.id} {hook.url}")
    return hook


def _delete(hook: Webhook) -> None:
    record("webhook.delete", target=current_user.email, detail=f"webhook {hook.id} {hook.url}")
    webhooks.delete(db(), hook)


def _set_active(hook: Webhook, active: bool) -> None:
    record("webhook.resume" if active else "webhook.pause", target=current_user.email, detail=f"webhook {hook.id}")
    webhooks.set_active(db(), hook, active)


# The JSON API: a bearer token or a browser session.


@bp.get("/api/v1/webhooks")
@spec.validate(resp=responses(HTTP_200=schemas.Webhooks), tags=["webhooks"])
def api_list() -> ResponseReturnValue:
    """Your webhooks."""
    return jsonify(webhooks=[hook_json(h) for h in webhooks.hooks_of(db(), current_user.user_id)])


@bp.post("/api/v1/webhooks")
@spec.validate(
    json=schemas.WebhookNew, resp=responses(HTTP_201=schemas.WebhookCreated, **errors(400, 403, 422)), tags=["webhooks"]
)
def api_create() -> ResponseReturnValue:
    """Register a URL told with a signed POST when each of your jobs finishes; the answer holds its secret, once.

    Each delivery is a JSON body of ids and counts (never a measurement, case id or file name) with the headers
    `Cytoscore-Event: job.finished`, `Cytoscore-Delivery: <id>` (the same on a repeat) and
    `Cytoscore-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" keyed with the secret>`. Check it
    over the raw body received, compare in constant time, and refuse a `t` more than a few minutes old.
    """
    body = request.get_json(silent=True)
    url = body.get("url") if isinstance(body, dict) else None
    if not isinstance(url, str) or not url.strip():
        return jsonify(error='send a JSON object with the "url" to call'), 400
    try:
        hook = _register(url)
    except webhooks.UrlRefused as exc:
        db().rollback()
        return jsonify(error=str(exc)), 422
    db().commit()
    # The secret is in this answer only; deliveries are signed with it.
    location = url_for("webhooks.api_deliveries", hook_id=hook.id)
    return jsonify({**hook_json(hook), "secret": hook.secret}), 201, {"Location": location}


@bp.delete("/api/v1/webhooks/<int:hook_id>")
@spec.validate(resp=responses(HTTP_204=None, **errors(404)), tags=["webhooks"])
def api_delete(hook_id: int) -> ResponseReturnValue:
    """Delete one of your webhooks."""
    _delete(_mine(hook_id))
    db().commit()
    return "", 204


@bp.patch("/api/v1/webhooks/<int:hook_id>")
@spec.validate(
    json=schemas.WebhookChange, resp=responses(HTTP_200=schemas.Webhook, **errors(400, 404)), tags=["webhooks"]
)
def api_update(hook_id: int) -> ResponseReturnValue:
    """Pause or resume one of your webhooks."""
    hook = _mine(hook_id)
    body = request.get_json(silent=True)
    active = body.get("active") if isinstance(body, dict) else None
    if not isinstance(active, bool):
        return jsonify(error='send a JSON object with "active": true or false'), 400
    _set_active(hook, active)
    db().commit()
    return jsonify(hook_json(hook))


@bp.get("/api/v1/webhooks/<int:hook_id>/deliveries")
@spec.validate(resp=responses(HTTP_200=schemas.Deliveries, **errors(404)), tags=["webhooks"])
def api_deliveries(hook_id: int) -> ResponseReturnValue:
    """One of your webhooks and its delivery log, newest first."""
    hook = _mine(hook_id)
    return jsonify(
        webhook=hook_json(hook), deliveries=[delivery_json(d) for d in webhooks.deliveries_of(db(), hook.id)]
    )


# The page, for a person signed in with a password (as the rest of the account pages).


def _page(status: int = 200, **context: Any) -> ResponseReturnValue:
    require_password_session()
    context.setdefault("error", None)
    context.setdefault("url", "")
    hooks = webhooks.hooks_of(db(), current_user.user_id)
    return render_template("webhooks.html", hooks=hooks, allowed=sorted(_allowed()), **context), status


@bp.get("/account/webhooks")
def page() -> ResponseReturnValue:
    return _page()


@bp.post("/account/webhooks")
def page_create() -> ResponseReturnValue:
    require_password_session()
    url = request.form.get("url", "")
    try:
        hook = _register(url)
    except webhooks.UrlRefused as exc:
        db().rollback()
        return _page(422, error=str(exc), url=url)
    db().commit()
    return _page(201, new_hook=hook)


@bp.post("/account/webhooks/<int:hook_id>/delete")
def page_delete(hook_id: int) -> ResponseReturnValue:
    require_password_session()
    hook = _mine(hook_id)
    url = hook.url
    _delete(hook)
    db().commit()
    flash(f"The webhook {url} is deleted, with its delivery log.")
    return redirect(url_for("webhooks.page"))


@bp.post("/account/webhooks/<int:hook_id>/<any(pause, resume):change>")
def page_pause(hook_id: int, change: str) -> ResponseReturnValue:
    require_password_session()
    hook = _mine(hook_id)
    _set_active(hook, change == "resume")
    db().commit()
    flash(f"The webhook {hook.url} is {'active again' if hook.active else 'paused'}.")
    return redirect(url_for("webhooks.page"))


@bp.get("/account/webhooks/<int:hook_id>")
def page_deliveries(hook_id: int) -> ResponseReturnValue:
    require_password_session()
    hook = _mine(hook_id)
    return render_template("webhook.html", hook=hook, deliveries=webhooks.deliveries_of(db(), hook.id))
