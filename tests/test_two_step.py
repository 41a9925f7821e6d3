"""Two-step sign-in as people use it: turned on with a code from the app, then the password alone no longer signs
in; each code and each recovery code is good once; wrong codes count against the account's back-off; an admin (or
the CLI) turns it off for a lost phone; and where it is required, nobody reaches a page without it."""

from __future__ import annotations

import html
import re
import time
import uuid
from urllib.parse import quote

import pyotp
import pytest
from sqlalchemy import create_engine, text

from testkit.support import make_person, run_cli
from tests.support import csrf, sign_in


def _browser(app):  # type: ignore[no-untyped-def]
    """A fresh browser from an address of its own (the per-address sign-in limit is not these tests' subject)."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = f"198.51.100.{uuid.uuid4().int % 250 + 1}"
    return client


def _turn_on(client, person) -> tuple[str, list[str]]:  # type: ignore[no-untyped-def]
    """Turn two-step sign-in on as a person does: read the key off the page, type the app's code. The key and the
    recovery codes shown."""
    key = _key_shown(client)
    page = client.get("/account/two-step").get_data(as_text=True)
    assert "<svg" in page  # the QR code to scan, and a link for the app on the same phone:
    link = html.unescape(re.search(r'<a href="([^"]+)" id="app-link">', page).group(1))
    assert link == f"otpauth://totp/cytoscore:{quote(person.email)}?secret={key}&issuer=cytoscore", link
    made = client.post("/account/two-step", data={"code": pyotp.TOTP(key).now(), "password": person.password,
                                                  "csrf_token": csrf(client, "/account/two-step")})  # fmt: skip
    assert made.status_code == 201, made.get_data(as_text=True)[:2000]
    codes = re.findall(r"<li><code>([a-z2-9]{5}-[a-z2-9]{5})</code></li>", made.get_data(as_text=True))
    assert len(codes) == 10 and len(set(codes)) == 10
    return key, codes


def _key_shown(client) -> str:  # type: ignore[no-untyped-def]
    page = client.get("/account/two-step").get_data(as_text=True)
    return re.search(r'<code id="totp-key">([A-Z2-7 ]+)</code>', page).group(1).replace(" ", "")


def _next_code(key: str) -> str:
    """The app's code of the coming 30 seconds: the one shown at turning on was used up."""
    return pyotp.TOTP(key).at(time.time() + 30)


def _password_step(app, email: str, password: str, next_page: str = ""):  # type: ignore[no-untyped-def]
    client = _browser(app)
    form = {"email": email, "password": password, "next": next_page, "csrf_token": csrf(client, "/login")}
    response = client.post("/login", data=form)
    return client, response


def _code(client, code: str):  # type: ignore[no-untyped-def]
    return client.post("/login/code", data={"code": code, "csrf_token": csrf(client, "/login/code")})


def _field_error(response) -> str:  # type: ignore[no-untyped-def]
    return re.search(r'<span class="error" id="e-f-code">([^<]*)</span>', response.get_data(as_text=True)).group(1)


def _audit(pg_url: str, email: str) -> list[tuple[str, str | None]]:
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT action, detail FROM audit_log WHERE actor = :e OR target = :e ORDER BY id"),
                            {"e": email}).all()  # fmt: skip
    engine.dispose()
    return [(action, detail) for action, detail in rows]


@pytest.fixture
def person(service_env):  # type: ignore[no-untyped-def]
    return make_person(service_env, "lab")


def test_once_on_the_password_alone_no_longer_signs_in_and_the_code_leads_on(app, person, pg_url):
    key, _ = _turn_on(sign_in(app, person.email, person.password), person)

    client, after_password = _password_step(app, person.email, person.password, "/jobs?status=failed")
    assert after_password.headers["Location"].endswith("/login/code")
    assert client.get("/jobs").headers["Location"].startswith("/login")  # not signed in yet
    assert client.get("/api/v1/jobs").status_code == 401
    asked = client.get("/login/code").get_data(as_text=True)
    assert "six-digit code" in asked and re.search(
        r'id="f-code"[^>]*autocomplete="one-time-code"[^>]* autofocus', asked
    )

    wrong = _code(client, "000000" if _next_code(key) != "000000" else "111111")
    assert wrong.status_code == 401 and "not right" in _field_error(wrong)
    signed_in = _code(client, _next_code(key))
    assert signed_in.status_code == 302 and signed_in.headers["Location"] == "/jobs?status=failed"
    assert client.get("/jobs").status_code == 200
    assert "on</strong>, since" in client.get("/account").get_data(as_text=True)
    trail = _audit(pg_url, person.email)
    assert ("two_step.on", None) in trail and ("login.failed", "two-step code") in trail
    assert trail[-1] == ("login", "two-step: app")


def test_a_code_is_good_once(app, person):
    key, _ = _turn_on(sign_in(app, person.email, person.password), person)
    code = _next_code(key)
    first, _ = _password_step(app, person.email, person.password)
    assert _code(first, code).status_code == 302
    second, _ = _password_step(app, person.email, person.password)
    replayed = _code(second, code)
    assert replayed.status_code == 401 and "used already" in _field_error(replayed)
    assert second.get("/jobs").status_code == 302


def test_a_recovery_code_signs_in_once_and_says_how_many_are_left(app, person):
    _, codes = _turn_on(sign_in(app, person.email, person.password), person)
    client, _ = _password_step(app, person.email, person.password)
    used = _code(client, f"  {codes[3].upper()} ")  # as read off paper: case and spaces do not matter
    assert used.status_code == 302
    assert "9 are left" in client.get("/jobs").get_data(as_text=True)
    again, _ = _password_step(app, person.email, person.password)
    refused = _code(again, codes[3])
    assert refused.status_code == 401 and "unused recovery code" in _field_error(refused)
    assert '<dd id="recovery-left">9 of 10</dd>' in client.get("/account/two-step").get_data(as_text=True)


def test_new_recovery_codes_replace_the_old_and_need_the_password(app, person):
    client = sign_in(app, person.email, person.password)
    _, old = _turn_on(client, person)
    form = {"csrf_token": csrf(client, "/account/two-step")}
    assert client.post("/account/two-step/recovery-codes", data={**form, "password": "not it"}).status_code == 422
    made = client.post("/account/two-step/recovery-codes", data={**form, "password": person.password})
    new = re.findall(r"<li><code>([a-z2-9-]{11})</code></li>", made.get_data(as_text=True))
    assert made.status_code == 201 and len(new) == 10 and not set(new) & set(old)
    browser, _ = _password_step(app, person.email, person.password)
    assert _code(browser, old[0]).status_code == 401
    assert _code(browser, new[0]).status_code == 302


def test_turning_on_needs_the_app_code_and_the_password(app, person):
    client = sign_in(app, person.email, person.password)
    key = _key_shown(client)
    assert _key_shown(client) == key  # the same key until it is confirmed: the app holds it already
    token = csrf(client, "/account/two-step")
    wrong_code = client.post("/account/two-step", data={"code": "12345", "password": person.password,
                                                        "csrf_token": token})  # fmt: skip
    assert wrong_code.status_code == 422 and "current code" in wrong_code.get_data(as_text=True)
    wrong_password = client.post("/account/two-step", data={"code": pyotp.TOTP(key).now(), "password": "nope",
                                                            "csrf_token": token})  # fmt: skip
    assert wrong_password.status_code == 422 and "not your password" in wrong_password.get_data(as_text=True)
    assert "off." in client.get("/account").get_data(as_text=True)
    _, response = _password_step(app, person.email, person.password)
    assert not response.headers["Location"].endswith("/login/code")  # still off


def test_turning_it_off_needs_the_password_and_then_the_password_alone_signs_in(app, person, pg_url):
    client = sign_in(app, person.email, person.password)
    _turn_on(client, person)
    token = csrf(client, "/account/two-step")
    assert client.post("/account/two-step/off", data={"off_password": "nope", "csrf_token": token}).status_code == 422
    off = client.post("/account/two-step/off", data={"off_password": person.password, "csrf_token": token})
    assert off.status_code == 302
    _, response = _password_step(app, person.email, person.password)
    assert response.headers["Location"] == "/"
    assert ("two_step.off", None) in _audit(pg_url, person.email)


def test_the_code_page_opens_only_after_a_right_password(app, person):
    key, _ = _turn_on(sign_in(app, person.email, person.password), person)
    client = _browser(app)
    assert client.get("/login/code").headers["Location"] == "/login"
    _, wrong = _password_step(app, person.email, "not the password")
    assert wrong.status_code == 401
    # A right code without the password's step before it, in this browser, signs nobody in.
    guessed = client.post("/login/code", data={"code": _next_code(key), "csrf_token": csrf(client, "/login")})
    assert guessed.headers["Location"] == "/login" and client.get("/jobs").status_code == 302


def test_wrong_codes_count_against_the_account_back_off(app, person):
    key, _ = _turn_on(sign_in(app, person.email, person.password), person)
    client, _ = _password_step(app, person.email, person.password)
    right = _next_code(key)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    statuses = [_code(client, wrong).status_code for _ in range(12)]
    assert statuses[0] == 401 and statuses[-1] == 429, statuses
    held = _code(client, right)  # even the right code waits now
    assert held.status_code == 429 and int(held.headers["Retry-After"]) >= 1
    _, password_again = _password_step(app, person.email, person.password)
    assert password_again.status_code == 429  # the password step counts the same failures


def test_an_admin_or_the_cli_turns_it_off_for_a_lost_phone(app, people, person, service_env, pg_url):
    _turn_on(sign_in(app, person.email, person.password), person)
    listed = next(line for line in run_cli(["users", "list"], service_env).stdout.splitlines() if person.email in line)
    assert re.search(r"\bon\b", listed), listed
    admin = sign_in(app, people["admin"].email, people["admin"].password)
    listing = admin.get("/admin/users").get_data(as_text=True)
    user_id = re.search(r'/admin/users/(\d+)">' + re.escape(person.email), listing).group(1)
    page = admin.get(f"/admin/users/{user_id}").get_data(as_text=True)
    assert re.search(r'<dd id="two-step">on since', page)
    off = admin.post(f"/admin/users/{user_id}/two-step-off", data={"csrf_token": csrf(admin, "/admin/users")})
    assert off.status_code == 302
    assert '<dd id="two-step">off</dd>' in admin.get(f"/admin/users/{user_id}").get_data(as_text=True)
    _, response = _password_step(app, person.email, person.password)
    assert response.headers["Location"] == "/"
    assert ("user.two_step_off", "for a lost phone; recovery codes removed") in _audit(pg_url, person.email)

    _turn_on(sign_in(app, person.email, person.password), person)
    said = run_cli(["users", "two-step-off", person.email], service_env)
    assert "is off" in said.stdout
    _, response = _password_step(app, person.email, person.password)
    assert response.headers["Location"] == "/"


def test_where_it_is_required_for_a_role_nobody_of_it_reaches_a_page_without_it(app_with, person, service_env):
    strict_app = app_with(require_two_step="admin,lab")
    clinician = make_person(service_env, "clinician")  # not a role it is required of: free to choose
    free = sign_in(strict_app, clinician.email, clinician.password)
    assert free.get("/jobs").status_code == 200
    assert "required here" not in free.get("/account/two-step").get_data(as_text=True)

    client = sign_in(strict_app, person.email, person.password)  # lab
    for path in ("/", "/jobs", "/account"):
        assert client.get(path).headers["Location"] == "/account/two-step", path
    assert client.get("/api/v1/jobs").status_code == 403
    assert "required here" in client.get("/account/two-step").get_data(as_text=True)
    stay = client.post("/account/keep-alive", headers={"X-CSRFToken": csrf(client, "/account/two-step")})
    assert stay.status_code == 200  # the set-up page's "Stay signed in" works before it is set up
    assert person.client(strict_app).get("/api/v1/jobs").status_code == 200  # a token made before still works
    _turn_on(client, person)
    assert client.get("/jobs").status_code == 200
    page = client.get("/account/two-step").get_data(as_text=True)
    assert "Turn off two-step sign-in" not in page
    refused = client.post("/account/two-step/off", data={"off_password": person.password,
                                                         "csrf_token": csrf(client, "/account/two-step")})  # fmt: skip
    assert refused.status_code == 403


def test_a_right_password_with_a_wrong_code_is_a_warning_at_the_next_sign_in(app, person):
    key, _ = _turn_on(sign_in(app, person.email, person.password), person)
    intruder, _ = _password_step(app, person.email, person.password)
    intruder.environ_base["REMOTE_ADDR"] = "203.0.113.99"
    wrong = f"{(int(_next_code(key)) + 1) % 1_000_000:06d}"
    assert _code(intruder, wrong).status_code == 401

    owner, _ = _password_step(app, person.email, person.password)
    assert _code(owner, _next_code(key)).status_code == 302
    page = owner.get("/").get_data(as_text=True)
    warning = re.search(r'<p class="flash warning" role="alert">([^<]+)</p>', page)
    assert warning, page[:3000]
    assert "Someone typed your password correctly but not your app&#39;s code, once since your last sign-in" in (
        warning.group(1)
    )
    assert "from 203.0.113.99" in warning.group(1) and "change your password now" in warning.group(1)
    activity = owner.get("/account/activity").get_data(as_text=True)
    assert re.search(r'<tr class="alarm">.*?Right password, wrong code.*?203\.0\.113\.99', activity, re.S)


@pytest.mark.parametrize("value", ["everyone", "admin,nurse"])
def test_a_requirement_naming_no_role_stops_the_start(settings, value):
    with pytest.raises(ValueError, match=r"CYTOSCORE_REQUIRE_TWO_STEP: .* is not all or a role"):
        settings.model_validate({**settings.model_dump(), "require_two_step": value})
