"""Webhooks: an owner's URLs, checked against server-side request forgery, and the signed deliveries that tell them
a job has finished. The deliveries are made by a trigger on `jobs` (migration 0016); `deliver_due` sends them from
the worker's reconciler thread."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from shared.schema import DeliveryStatus, Job, Webhook, WebhookDelivery, utcnow
from shared.settings import Settings

log = logging.getLogger(__name__)

MAX_HOOKS = 10  # per owner
MAX_URL = 2000
SIGNATURE_HEADER = "Cytoscore-Signature"
EVENT = "job.finished"
_PER_ROUND = 50  # deliveries one reconciler round sends at most


class UrlRefused(ValueError):
    """A URL that may not be a webhook; the message says why."""


@dataclass(frozen=True)
class Target:
    """Where a delivery goes: the URL to connect to (with the checked address in place of the name, when pinned),
    the Host header, and the name TLS verifies the certificate against."""

    url: str
    host_header: str | None = None
    sni_hostname: str | None = None


def _why_refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for kind in ("loopback", "link_local", "unspecified", "multicast", "reserved", "private"):  # the most telling first
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if address.is_global else "not public"


def _addresses(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UrlRefused(f"the host {host} cannot be resolved") from exc
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def check_url(url: str, allowed_hosts: frozenset[str]) -> Target:
    """Refuse a URL that is not https, or whose host resolves to an address that is not public, unless an admin
    allowed its host (CYTOSCORE_WEBHOOK_ALLOWED_HOSTS). Called at registration and again before every delivery,
    since a name may resolve elsewhere later; the delivery then connects to the address checked here."""
    if len(url) > MAX_URL:
        raise UrlRefused(f"the URL is longer than {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise UrlRefused(f"the URL does not parse: {exc}") from exc
    if parts.scheme not in ("https", "http") or not host:
        raise UrlRefused("the URL must start with https:// and name a host")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("the URL may not carry a user name or password")
    if host in allowed_hosts:
        return Target(url)  # an admin allowed it: http and private addresses too
    if parts.scheme != "https":
        raise UrlRefused(f"http is accepted only for hosts an admin allowed; use https://{parts.netloc}")
    port = port or 443
    addresses = _addresses(host, port)
    for address in addresses:
        reason = _why_refused(address)
        if reason:
            raise UrlRefused(f"the host {host} resolves to {address}, a {reason} address")
    pinned = str(addresses[0]) if addresses[0].version == 4 else f"[{addresses[0]}]"
    return Target(
        urlunsplit(("https", f"{pinned}:{port}", parts.path or "/", parts.query, "")), parts.netloc, sni_hostname=host
    )


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """`t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed with the secret>`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def register(session: Session, owner_id: int, url: str, allowed_hosts: frozenset[str]) -> Webhook:
    """A new hook for the owner's jobs, once its URL passes `check_url`. Its secret is in `hook.secret`."""
    url = url.strip()
    check_url(url, allowed_hosts)
    count = session.scalar(select(func.count()).select_from(Webhook).where(Webhook.owner_id == owner_id))
    if (count or 0) >= MAX_HOOKS:
        raise UrlRefused(f"you have {MAX_HOOKS} webhooks already; delete one first")
    hook = Webhook(owner_id=owner_id, url=url, secret=new_secret(), created_at=utcnow(), active=True)
    session.add(hook)
    session.flush()
    return hook


def hooks_of(session: Session, owner_id: int) -> list[Webhook]:
    return list(session.scalars(select(Webhook).where(Webhook.owner_id == owner_id).order_by(Webhook.id.desc())))


def find_hook(session: Session, hook_id: int, owner_id: int) -> Webhook | None:
    """The owner's hook, or None: another person's hook reads as missing."""
    hook = session.get(Webhook, hook_id)
    return hook if hook is not None and hook.owner_id == owner_id else None


def set_active(session: Session, hook: Webhook, active: bool) -> None:
    """Pause or resume a hook: a paused one gets no delivery for the jobs that finish meanwhile."""
    hook.active = active
    session.flush()


def delete(session: Session, hook: Webhook) -> None:
    """Delete a hook and its delivery log."""
    session.delete(hook)
    session.flush()


def deliveries_of(session: Session, hook_id: int, limit: int = 200) -> list[WebhookDelivery]:
    query = select(WebhookDelivery).where(WebhookDelivery.webhook_id == hook_id)
    return list(session.scalars(query.order_by(WebhookDelivery.id.desc()).limit(limit)))


def payload(job: Job, delivery_id: int) -> dict[str, Any]:
    """What a delivery says: ids and counts, never a measurement, a case id or a file name."""
    return {
        "event": EVENT,
        "delivery": delivery_id,
        "job": {
            "id": str(job.id),
            "kind": job.kind,
            "status": job.status,
            "rows_total": job.rows_total,
            "rows_scored": job.rows_scored,
            "rows_rejected": job.rows_rejected,
            "model": {"name": job.model_name, "version": job.model_version, "sha256": job.model_sha256},
            "created_at": job.created_at.isoformat(),
            "finished_at": job.finished_at.isoformat() if job.finished_at else None,
            "url": f"/api/v1/jobs/{job.id}",
        },
    }


@dataclass(frozen=True)
class _Claimed:
    id: int
    webhook_id: int
    job_id: uuid.UUID
    attempt: int


_CLAIM = text("""
    UPDATE webhook_deliveries d SET attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => :lease)
    FROM (SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= now()
          ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED) due
    WHERE d.id = due.id
    RETURNING d.id, d.webhook_id, d.job_id, d.attempts
""")


def _claim(sessions: sessionmaker[Session], settings: Settings) -> _Claimed | None:
    """Take one due delivery for one attempt. Its lease (next_attempt_at) outlasts the POST, so a sender that dies
    mid-way leaves it for another round, never for two senders at once."""
    with sessions.begin() as session:
        row = session.execute(_CLAIM, {"lease": settings.webhook_timeout * 2 + 30}).first()
    return _Claimed(*row) if row else None


def _post(target: Target, body: bytes, headers: dict[str, str], settings: Settings) -> tuple[int | None, str | None]:
    """POST once, following no redirect; (status code, error) with error None only for a 2xx answer."""
    if target.host_header:
        headers = {**headers, "Host": target.host_header}
    extensions = {"sni_hostname": target.sni_hostname} if target.sni_hostname else None
    try:
        with (
            httpx.Client(timeout=settings.webhook_timeout, follow_redirects=False, trust_env=False) as client,
            client.stream("POST", target.url, content=body, headers=headers, extensions=extensions) as response,
        ):
            code = response.status_code  # the answer's body is never read: only its status counts
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500]
    if 200 <= code < 300:
        return code, None
    if 300 <= code < 400:
        return code, f"HTTP {code}: redirects are not followed"
    return code, f"HTTP {code}"


@dataclass(frozen=True)
class _Request:
    target: Target
    body: bytes
    headers: dict[str, str]


def _prepare(session: Session, claimed: _Claimed, settings: Settings) -> _Request | str:
    """The signed request for a claimed delivery, or why it cannot be sent (the URL is refused now)."""
    hook, job = session.get(Webhook, claimed.webhook_id), session.get(Job, claimed.job_id)
    if hook is None or job is None:
        return "the webhook or the job is gone"
    if not hook.active:
        return "the webhook is paused"
    try:
        target = check_url(hook.url, settings.webhook_hosts)
    except UrlRefused as exc:
        return f"refused: {exc}"
    body = json.dumps(payload(job, claimed.id), separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "cytoscore-webhooks/1",
        "Cytoscore-Event": EVENT,
        "Cytoscore-Delivery": str(claimed.id),
        SIGNATURE_HEADER: signature(hook.secret, body, int(time.time())),
    }
    return _Request(target, body, headers)


def backoff(settings: Settings, attempt: int) -> timedelta:
    """The wait after failed attempt `attempt` (1, 2, …): the base, then 3 times as long each time."""
    return timedelta(seconds=settings.webhook_backoff * 3 ** (attempt - 1))


def _record(session: Session, claimed: _Claimed, code: int | None, error: str | None, settings: Settings) -> str:
    now = utcnow()
    if error is None:
        status, due, delivered = DeliveryStatus.DELIVERED, None, now
    elif claimed.attempt >= settings.webhook_max_attempts:
        status, due, delivered = DeliveryStatus.FAILED, None, None
    else:
        status, due, delivered = DeliveryStatus.PENDING, now + backoff(settings, claimed.attempt), None
    # Fenced by the attempt: a sender whose lease ran out writes nothing over a later attempt's outcome.
    session.execute(
        text("""UPDATE webhook_deliveries SET status = :status, next_attempt_at = :due, delivered_at = :delivered,
                last_status_code = :code, last_error = :error WHERE id = :id AND attempts = :attempt"""),
        {"status": status.value, "due": due, "delivered": delivered, "code": code, "error": error,
         "id": claimed.id, "attempt": claimed.attempt},
    )  # fmt: skip
    return status.value


def deliver_due(sessions: sessionmaker[Session], settings: Settings) -> int:
    """Send the deliveries that are due, one at a time; how many were tried. Runs in the reconciler's thread, so a
    round stops after about one reconcile interval: slow receivers never hold the reconciler back for long."""
    tried, stop_at = 0, time.monotonic() + settings.reconcile_interval
    while tried < _PER_ROUND and time.monotonic() < stop_at and (claimed := _claim(sessions, settings)) is not None:
        with sessions() as session:  # read only, and closed before the POST: no transaction waits on a receiver
            request = _prepare(session, claimed, settings)
        if isinstance(request, _Request):
            code, error = _post(request.target, request.body, request.headers, settings)
        else:
            code, error = None, request
        with sessions.begin() as session:
            status = _record(session, claimed, code, error, settings)
        log.info(
            "webhook delivery %s (hook %s, job %s) attempt %s: %s %s",
            claimed.id, claimed.webhook_id, claimed.job_id, claimed.attempt, status, code or error,
        )  # fmt: skip
        tried += 1
    return tried
