"""The webhooks page in a real browser (Chromium) against a real `cytoscore web` and worker: a person registers a
hook, sees its secret once, and reads the delivery of a job that finished; both pages pass axe at 1280 and 375 px."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect, sync_playwright

from testkit.support import ServiceProcess, free_port, make_person
from tests.browser_support import Watch, audit, fits_the_width, launch, screenshot, wait_for_http
from tests.test_webhooks import Receiver, _case

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 740}


@pytest.fixture(scope="module")
def stack(service_env: dict[str, str], worker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`cytoscore web`, beside the session's worker (which sends the deliveries)."""
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


def _sign_in(page: Any, email: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def _finish_a_job(stack: str, token: str) -> str:
    request = urllib.request.Request(
        f"{stack}/api/v1/jobs?wait=30",
        data=json.dumps({"cases": [_case(5)]}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        job = json.load(response)
    assert job["status"] == "succeeded", job
    return str(job["id"])


def test_a_webhook_is_registered_its_secret_shown_once_and_its_delivery_listed(browser, stack, service_env):
    person = make_person(service_env, "lab")
    receiver = Receiver([200])
    context = browser.new_context(base_url=stack, viewport=DESKTOP)
    watch = Watch()
    page = watch.attach(context.new_page())
    try:
        _sign_in(page, person.email, person.password)
        page.goto("/account")
        page.get_by_role("link", name="Your webhooks").click()
        expect(page.get_by_role("heading", name="Your webhooks")).to_be_visible()

        page.get_by_label("URL").fill("http://example.org/hook")
        page.get_by_role("button", name="Register webhook").click()
        expect(page.locator("#e-f-url")).to_contain_text("http is accepted only for hosts an admin allowed")

        page.get_by_label("URL").fill(receiver.url)
        page.get_by_role("button", name="Register webhook").click()
        secret = page.locator("#secret-value").inner_text()
        assert secret.startswith("whsec_")
        expect(page.locator("#hook-list tbody tr", has_text=receiver.url)).to_have_count(1)
        page.goto("/account/webhooks")
        expect(page.locator("#secret-value")).to_have_count(0)  # shown once
        assert secret not in page.content()
        hint = page.locator("#signature")  # how a receiver checks a delivery, on the page and in the reference
        expect(hint).to_contain_text("t=<unix time>,v1=<hex HMAC-SHA256>")
        assert hint.get_by_role("link", name="API reference").get_attribute("href") == "/api/v1/docs"
        described = page.request.get("/api/v1/openapi.json").json()["paths"]["/api/v1/webhooks"]["post"]
        assert "Cytoscore-Signature: t=<unix time>,v1=" in described["description"]

        job_id = _finish_a_job(stack, person.token)
        deadline = time.monotonic() + 60
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.2)
        assert receiver.received, "the job's delivery never arrived"
        page.get_by_role("link", name=f"Delivery log of {receiver.url}").click()
        row = page.locator("#delivery-list tbody tr", has_text=job_id[:8])
        for _ in range(50):  # the worker records the answer just after the receiver has it
            if "delivered" in (row.all_inner_texts() or [""])[0]:
                break
            time.sleep(0.2)
            page.reload()
        expect(row).to_contain_text("delivered")
        expect(row).to_contain_text("200")
        log_page = page.url
        _axe_and_screenshots(browser, stack, person, log_page)

        page.goto("/account/webhooks")
        hook_row = page.locator("#hook-list tbody tr", has_text=receiver.url)
        page.get_by_role("button", name=f"Pause {receiver.url}").click()
        expect(hook_row).to_contain_text("paused")
        page.get_by_role("button", name=f"Resume {receiver.url}").click()
        expect(hook_row).to_contain_text("active")
        page.get_by_role("button", name=f"Delete {receiver.url}").click()
        expect(page.get_by_role("status")).to_contain_text("is deleted")
        expect(page.locator("#hook-list")).to_have_count(0)
    finally:
        context.close()
        receiver.close()
    watch.assert_clean()


def _axe_and_screenshots(browser: Any, stack: str, person: Any, log_page: str) -> None:
    """axe goes in as an inline script, which the pages' policy forbids; the journey keeps the policy on."""
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        context = browser.new_context(base_url=stack, viewport=viewport, bypass_csp=True)
        page = context.new_page()
        try:
            _sign_in(page, person.email, person.password)
            for page_name, path in (("webhooks", "/account/webhooks"), ("webhook-deliveries", log_page)):
                page.goto(path)
                audit(page, f"{page_name}, {name}")
                assert fits_the_width(page), f"{page_name} scrolls sideways at {viewport['width']} px"
                screenshot(page, f"{page_name}-{name}")
        finally:
            context.close()
