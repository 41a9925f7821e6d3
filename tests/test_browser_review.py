"""In a real browser: a job held for review says why, shows no results, and a lab user releases them; each outcome in
the jobs list has its own words, colour and icon. Against a real `cytoscore web` and worker (tests/test_browser.py)."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from testkit.support import Person, multipart, wdbc_csv
from tests.browser_support import Watch, audit, fits_the_width, screenshot
from tests.test_browser import DESKTOP, PHONE, _context, api, browser, lab, signed_in, stack  # noqa: F401
from tests.test_plausibility import german_misread


def _upload(base: str, person: Person, content: bytes, name: str) -> dict[str, Any]:
    body, content_type = multipart({"model": "wdbc-rf4"}, content, name)
    job_id = api(base, person, "/api/v1/jobs", body, content_type)["id"]
    return api(base, person, f"/api/v1/jobs/{job_id}?wait=60")  # type: ignore[no-any-return]


def _one_bad_row() -> bytes:
    header, *rows = wdbc_csv(slice(0, 30)).decode().splitlines()
    rows[3] = rows[3].replace(rows[3].split(",")[2], "abc", 1)
    return ("\n".join([header, *rows]) + "\n").encode()


def test_a_held_job_says_why_hides_its_results_and_is_released_by_a_lab_user(browser, stack, signed_in, lab):  # noqa: F811
    # axe goes in as an inline script, which the pages' policy forbids: this context lets it in
    context = _context(browser, stack, signed_in, bypass_csp=True)
    watch = Watch()
    try:
        _held_job(watch.attach(context.new_page()), stack, lab)
    finally:
        context.close()
    watch.assert_clean()


def _held_job(page: Any, stack: str, lab: Person) -> None:  # noqa: F811
    held = _upload(stack, lab, german_misread(wdbc_csv()), "libreoffice-de.csv")
    assert held["status"] == "needs_review"
    scored = _upload(stack, lab, wdbc_csv(slice(0, 30)), "good.csv")
    partial = _upload(stack, lab, _one_bad_row(), "one-bad-row.csv")
    assert scored["status"] == partial["status"] == "succeeded" and partial["rows_rejected"] == 1

    page.set_viewport_size(DESKTOP)
    page.goto("/jobs")
    badges = {name: page.locator(f'tr:has(a[href="/jobs/{job["id"]}"]) .badge')
              for name, job in (("review", held), ("scored", scored), ("partial", partial))}  # fmt: skip
    expect(badges["review"]).to_have_text("needs review: results held")
    expect(badges["review"].get_by_role("img", name="held")).to_be_visible()
    expect(badges["scored"].get_by_role("img", name="every row scored")).to_be_visible()
    expect(badges["partial"].get_by_role("img", name="some rows rejected")).to_be_visible()
    colours = {name: badge.evaluate("b => getComputedStyle(b).color") for name, badge in badges.items()}
    assert len(set(colours.values())) == 3, colours
    audit(page, "jobs with outcomes")

    page.goto(f"/jobs/{held['id']}")
    expect(page.locator("#status .badge")).to_have_text("needs review: results held")
    expect(page.locator("#review-reason")).to_contain_text("check the decimal separator")
    expect(page.locator("#results")).to_have_count(0)
    expect(page.get_by_role("link", name="Download results (CSV)")).to_have_count(0)
    audit(page, "job held for review")
    assert fits_the_width(page)
    screenshot(page, "job-review-desktop")
    page.set_viewport_size(PHONE)
    assert fits_the_width(page)
    screenshot(page, "job-review-phone")

    page.get_by_role("button", name="I have checked the file: release the results").click()
    expect(page.locator("#status .badge")).to_contain_text("succeeded")
    expect(page.locator("#reviewed")).to_contain_text(f"released by {lab.email}")
    expect(page.locator("#results")).to_be_visible()
    assert api(stack, lab, f"/api/v1/jobs/{held['id']}")["reviewed_by"] == lab.email
