"""The account and admin pages in a real browser (Chromium) against a real `cytoscore web`: each journey a person
makes, each page checked with axe-core and at 375 px, with the strict CSP on and nothing run from the page's text."""

from __future__ import annotations

import csv
import io
import re
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
from playwright.sync_api import expect, sync_playwright

from testkit.support import ServiceProcess, free_port, make_person, run_cli
from tests.browser_support import Watch, audit, fields_out_of_line, fits_the_width, launch, screenshot, wait_for_http

PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def stack(service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`cytoscore web` alone: these pages need no worker."""
    port = free_port()
    web = ServiceProcess(["web"], {**service_env, "PORT": str(port)}, tmp_path_factory.mktemp("web") / "web.log")
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}"
    finally:
        web.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def watch() -> Watch:
    return Watch()


@pytest.fixture
def new_page(browser: Any, stack: str, watch: Watch) -> Iterator[Any]:
    """Pages in fresh browsers (no cookies), every one watched for CSP violations, script errors and dialogs."""
    contexts: list[Any] = []

    def make(viewport: dict[str, int] = DESKTOP) -> Any:
        context = browser.new_context(base_url=stack, viewport=viewport, accept_downloads=True)
        contexts.append(context)
        return watch.attach(context.new_page())

    yield make
    for context in contexts:
        context.close()
    watch.assert_clean()


def sign_in(page: Any, email: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def bearer(stack: str, token: str, path: str = "/api/v1/models") -> int:
    request = urllib.request.Request(stack + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_first_sign_in_with_a_one_time_password_forces_a_change(new_page, service_env):
    email = f"first-{uuid.uuid4().hex[:6]}@example.org"
    one_time = run_cli(["users", "add", email, "--role", "clinician", "--one-time"], service_env).stdout.strip()
    page = new_page()
    page.goto("/models/wdbc-rf30")  # a link sent with the one-time password
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password").fill(one_time)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/account/password\?next=/models/wdbc-rf30$"))
    expect(page.locator("#forced")).to_contain_text("one-time password")
    expect(page.locator(".flash")).to_have_count(0)  # said once, in the page
    assert page.locator('input[autocomplete="username"]').input_value() == email  # for a password manager
    page.goto("/jobs")  # every other page leads back here
    expect(page).to_have_url(re.compile(r"/account/password$"))
    page.go_back()
    expect(page).to_have_url(re.compile(r"/account/password\?next="))

    page.get_by_label("One-time password").fill(one_time)
    page.get_by_label("New password", exact=True).fill("cytoscore rocks 2026")
    page.get_by_label("New password, again").fill("cytoscore rocks 2026")
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#e-f-password")).to_contain_text("must not contain “cytoscore”")
    expect(page.locator("#f-password")).to_have_attribute("aria-invalid", "true")

    page.get_by_label("One-time password").fill(one_time)
    page.get_by_label("New password", exact=True).fill("granite pelican sonata 8")
    page.get_by_label("New password, again").fill("granite pelican sonata 8")
    page.get_by_role("button", name="Change password").click()
    expect(page).to_have_url(re.compile(r"/models/wdbc-rf30$"))  # on to the page the link was for
    expect(page.locator(".flash")).to_contain_text("Your password was changed")
    page.goto("/jobs")
    expect(page).to_have_url(re.compile(r"/jobs$"))


def test_change_password_list_sessions_and_sign_out_everywhere(new_page, service_env):
    person = make_person(service_env, "lab")
    laptop, phone = new_page(), new_page(PHONE)
    sign_in(laptop, person.email, person.password)
    sign_in(phone, person.email, person.password)
    laptop.goto("/account")
    expect(laptop.locator("#session-list tbody tr")).to_have_count(2)
    expect(laptop.locator("#session-list tr.current")).to_contain_text("(this one)")

    laptop.goto("/account/password")
    laptop.get_by_label("Current password").fill("not my password")
    laptop.get_by_label("New password", exact=True).fill("harbour violet engine 31")
    laptop.get_by_label("New password, again").fill("harbour violet engine 31")
    laptop.get_by_role("button", name="Change password").click()
    expect(laptop.locator("#e-f-current")).to_contain_text("not your current password")
    laptop.get_by_label("Current password").fill(person.password)
    laptop.get_by_label("New password", exact=True).fill("harbour violet engine 31")
    laptop.get_by_label("New password, again").fill("harbour violet engine 31")
    laptop.get_by_role("button", name="Change password").click()
    expect(laptop).to_have_url(re.compile(r"/account$"))
    phone.goto("/jobs")  # the change ended the phone's session
    expect(phone).to_have_url(re.compile(r"/login"))

    sign_in(phone, person.email, "harbour violet engine 31")
    laptop.goto("/account")
    expect(laptop.locator("#session-list tbody tr")).to_have_count(2)
    laptop.get_by_role("button", name="Sign out everywhere").click()
    expect(laptop).to_have_url(re.compile(r"/login$"))
    expect(laptop.locator(".flash")).to_contain_text("signed out of all 2 sessions")
    phone.goto("/jobs")
    expect(phone).to_have_url(re.compile(r"/login"))


def test_tokens_are_made_listed_and_revoked(new_page, stack, service_env):
    person = make_person(service_env, "lab")
    page = new_page()
    sign_in(page, person.email, person.password)
    page.goto("/account")
    page.get_by_role("button", name="Make token").click()
    expect(page.locator("#e-f-name")).to_contain_text("give the token a name")
    page.get_by_label("Name").fill("<b>nightly</b> export")
    page.get_by_label("Expires after").select_option("30")
    page.get_by_role("button", name="Make token").click()
    token = page.locator("#token-value").inner_text()
    assert token.startswith("cs_") and bearer(stack, token) == 200
    row = page.locator("#token-list tbody tr", has_text="<b>nightly</b> export")
    expect(row).to_contain_text("active")
    assert page.locator("#token-list b").count() == 0  # the name is text, never markup
    page.goto("/account")
    expect(page.locator("#token-value")).to_have_count(0)  # shown once
    page.get_by_role("button", name="Revoke <b>nightly</b> export").click()
    expect(page.locator("#token-list tbody tr", has_text="nightly")).to_contain_text("revoked")
    assert bearer(stack, token) == 401


def test_an_admin_adds_disables_enables_changes_the_role_resets_and_revokes(new_page, stack, people, service_env):
    page = new_page()
    sign_in(page, people["admin"].email, people["admin"].password)
    page.goto("/admin/users")
    page.get_by_label("Email", exact=True).fill("not an email")
    page.get_by_role("button", name="Add user").click()
    expect(page.locator("#e-f-email")).to_contain_text("enter an email address")
    email = f"added-{uuid.uuid4().hex[:6]}@example.org"
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Role").select_option("lab")
    page.get_by_role("button", name="Add user").click()
    one_time = page.locator("#one-time-value").inner_text()
    row = page.locator("#users tbody tr", has_text=email)
    expect(row).to_contain_text("one-time password")
    expect(row.locator("td").nth(1)).to_have_text("lab")

    newcomer = new_page()
    sign_in(newcomer, email, one_time)
    expect(newcomer).to_have_url(re.compile(r"/account/password$"))
    token = run_cli(["tokens", "add", email], service_env).stdout.strip()

    row.get_by_role("link", name=email).click()
    page.get_by_label("Role").select_option("clinician")
    page.get_by_role("button", name="Change role").click()
    expect(page.locator(".flash")).to_contain_text(f"{email} is now clinician")
    page.get_by_role("button", name="Disable").click()
    expect(page.locator("#status")).to_contain_text("disabled")
    newcomer.goto("/account/password")
    expect(newcomer).to_have_url(re.compile(r"/login"))
    assert bearer(stack, token) == 401
    page.get_by_role("button", name="Enable").click()
    expect(page.locator("#status")).to_have_text(re.compile(r"^active"))
    page.get_by_role("button", name="Reset password").click()
    second = page.locator("#one-time-value").inner_text()
    assert second != one_time
    sign_in(newcomer, email, second)
    expect(newcomer).to_have_url(re.compile(r"/account/password$"))
    page.get_by_role("button", name="Revoke tokens and sessions").click()
    expect(page.locator(".flash")).to_contain_text("has ended")
    newcomer.goto("/account/password")
    expect(newcomer).to_have_url(re.compile(r"/login"))

    page.goto("/admin/users")
    expect(page.locator("#users tbody tr", has_text=email).locator("td").nth(1)).to_have_text("clinician")


def test_the_audit_page_filters_and_exports_csv(new_page, people, service_env):
    person = make_person(service_env, "clinician")
    page = new_page()
    sign_in(page, person.email, person.password)
    admin = new_page()
    sign_in(admin, people["admin"].email, people["admin"].password)
    admin.goto("/admin/audit")
    assert fields_out_of_line(admin) == []
    admin.get_by_label("User (email)").fill(person.email)
    admin.get_by_role("button", name="Filter").click()
    expect(admin.locator("#audit tbody tr")).to_have_count(3)  # added, its token, its sign-in
    admin.get_by_label("Action").select_option("login")
    admin.get_by_role("button", name="Filter").click()
    expect(admin.locator("#audit tbody tr")).to_have_count(1)
    expect(admin.locator("#audit tbody tr")).to_contain_text(person.email)
    admin.get_by_label("Job id").fill("not-a-job")
    admin.get_by_role("button", name="Filter").click()
    expect(admin.locator("#e-f-job")).to_contain_text("use a job id")

    admin.get_by_label("Job id").fill("")
    admin.get_by_role("button", name="Filter").click()
    with admin.expect_download() as download_info:
        admin.get_by_role("link", name="Download these events (CSV)").click()
    rows = list(csv.DictReader(io.StringIO(Path(download_info.value.path()).read_text())))
    assert [(r["actor"], r["action"]) for r in rows] == [(person.email, "login")]


@pytest.fixture
def phone_checked(browser: Any, stack: str) -> Iterator[Any]:
    """A fresh browser at 375 px whose pages axe can check: axe goes in as an inline script, which the pages'
    policy forbids, so this one context runs without it; the others keep the policy on."""
    context = browser.new_context(base_url=stack, viewport=PHONE, bypass_csp=True)
    watch = Watch()
    yield watch.attach(context.new_page())
    context.close()
    watch.assert_clean()


def test_two_step_sign_in_is_set_up_by_scanning_and_then_asks_for_the_app_code(phone_checked, service_env):
    person = make_person(service_env, "clinician")
    page = phone_checked
    sign_in(page, person.email, person.password)
    page.goto("/account")
    page.get_by_role("link", name="Turn on two-step sign-in").click()
    expect(page.get_by_role("img", name="A QR code holding the key below")).to_be_visible()
    qr = page.locator(".qr svg").bounding_box()
    assert qr is not None and qr["width"] >= 150 and qr["width"] == qr["height"], qr
    key = page.locator("#totp-key").inner_text().replace(" ", "")
    audit(page, "two-step set-up, phone")
    assert fits_the_width(page)
    screenshot(page, "two-step-setup")
    page.get_by_label("Code from the app").fill(pyotp.TOTP(key).now())
    page.get_by_label("Your password").fill(person.password)
    page.get_by_role("button", name="Turn on two-step sign-in").click()
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    expect(page.get_by_role("button", name="Print them")).to_be_visible()
    assert fits_the_width(page)
    screenshot(page, "two-step-recovery-codes")

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, person.email, person.password)
    expect(page).to_have_url(re.compile(r"/login/code$"))
    audit(page, "two-step code, phone")
    screenshot(page, "two-step-code")
    page.get_by_label("Code").fill(pyotp.TOTP(key).at(time.time() + 30))  # the one shown before was used up
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/$"))
    page.goto("/account")
    expect(page.locator("#two-step")).to_contain_text("on, since")


def test_before_an_idle_sign_out_the_page_warns_and_keeps_what_was_typed(phone_checked, service_env):
    person = make_person(service_env, "clinician")
    page = phone_checked
    page.clock.install()  # the page's timers run on a clock the test moves; the server keeps real time
    sign_in(page, person.email, person.password)
    expect(page).to_have_url(re.compile(r"/$"))
    page.wait_for_load_state("load")  # its scripts have run: the clock moves from here
    page.get_by_label("Radius (mean)").fill("14.1")
    warning = page.locator("#idle-warning")
    page.clock.run_for("27:50")
    expect(warning).to_be_hidden()
    page.clock.run_for("00:20")  # two minutes before the 30-minute limit
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("signed out in about 2 minutes")
    radius = page.get_by_label("Radius (mean)").bounding_box()
    assert radius["y"] + radius["height"] <= warning.bounding_box()["y"], "the field typed in is under the notice"
    audit(page, "idle warning, phone")
    screenshot(page, "idle-warning")
    page.get_by_role("button", name="Stay signed in").click()
    expect(warning).to_be_hidden()
    page.clock.run_for("27:50")
    expect(warning).to_be_hidden()  # the clock started again at the click
    page.clock.run_for("02:30")
    expect(warning).to_contain_text("You have been signed out after 30 minutes")
    expect(page.get_by_role("link", name="Sign in again (in a new tab)")).to_be_visible()
    expect(page.get_by_label("Radius (mean)")).to_have_value("14.1")  # nothing typed was lost


PAGES = [("account", "/account"), ("password", "/account/password"), ("users", "/admin/users"),
         ("user", None), ("audit", "/admin/audit"), ("two-step", "/account/two-step"),
         ("activity", "/account/activity"), ("model-use", "/models/wdbc-rf4/use")]  # fmt: skip


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_every_account_page_passes_axe_and_fits_the_screen(browser, stack, people, viewport):
    width = "desktop" if viewport is DESKTOP else "phone"
    # axe goes in as an inline script, which the pages' policy forbids; the other tests keep the policy on.
    context = browser.new_context(base_url=stack, viewport=viewport, bypass_csp=True)
    watch = Watch()
    page = watch.attach(context.new_page())
    try:
        sign_in(page, people["admin"].email, people["admin"].password)
        page.goto("/admin/users")
        user = page.locator("#users tbody tr a", has_text=people["lab"].email).get_attribute("href")
        for name, path in PAGES:
            page.goto(path or user)
            audit(page, f"{name}, {width}")
            assert fits_the_width(page), f"{name} scrolls sideways at {viewport['width']} px"
            screenshot(page, f"{name}-{width}")
    finally:
        context.close()
    watch.assert_clean()
