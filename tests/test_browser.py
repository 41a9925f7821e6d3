"""The pages in a real browser (Chromium), against a real `cytoscore web`, a real worker, PostgreSQL and Redis.

What a person does: fill in a case and read the answer without leaving the page; upload a spreadsheet, watch it
progress, read the counts and the chart, download the results; see a refused file's problems; never see uploaded
text run as markup. Every page is checked with axe-core and photographed, at desktop and at phone width.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect, sync_playwright
from pypdf import PdfReader

from shared.features import FEATURES
from testkit.support import (
    WORKER_NODES,
    Person,
    ServiceProcess,
    free_port,
    fresh_queue,
    jittered_csv,
    multipart,
    wdbc,
)
from tests.browser_support import (
    Watch,
    audit,
    chart_words_hidden,
    fields_out_of_line,
    fits_the_width,
    icon,
    launch,
    names_broken_inside,
    screenshot,
    values_under_labels,
    wait_for_http,
)

RF4 = ["radius_mean", "texture_mean", "smoothness_mean", "compactness_mean"]
PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
SCRIPT_ID = "<script>window.__pwned=1</script>"
IMG_ID = '<img src=x onerror="window.__pwned=1;alert(1)">'


@pytest.fixture(scope="module")
def stack(service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`cytoscore web` and a worker of its own, on their own queue.

    The worker writes progress every 500 rows (instead of 20,000), so a 60,000-row job moves its progress bar
    many times while the page watches, on a fast machine too.
    """
    port = free_port()
    env = {
        **service_env,
        "PORT": str(port),
        "CYTOSCORE_QUEUE": fresh_queue("cytoscore-browser"),
        "CYTOSCORE_BATCH_ROWS": "500",
    }
    logs = tmp_path_factory.mktemp("browser")
    worker = ServiceProcess(["worker"], env, logs / "worker.log")
    web = ServiceProcess(["web"], env, logs / "web.log")
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
        worker.wait_for_log("ready.", timeout=60, count=WORKER_NODES)
        yield f"http://127.0.0.1:{port}"
    finally:
        web.stop()
        worker.stop()


@pytest.fixture(scope="module")
def lab(people: dict[str, Person]) -> Person:
    return people["lab"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def signed_in(browser: Any, stack: str, lab: Person) -> dict[str, Any]:
    """The lab person signs in once through the login page; each test's browser context starts from here."""
    context = browser.new_context(base_url=stack)
    page = context.new_page()
    page.goto("/login")
    page.get_by_label("Email").fill(lab.email)
    page.get_by_label("Password").fill(lab.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{stack}/")
    state: dict[str, Any] = context.storage_state()
    context.close()
    return state


@pytest.fixture
def watch() -> Watch:
    return Watch()


def _context(browser: Any, stack: str, state: dict[str, Any] | None, **options: Any) -> Any:
    options.setdefault("viewport", DESKTOP)
    return browser.new_context(base_url=stack, storage_state=state, accept_downloads=True, **options)


@pytest.fixture
def page(browser: Any, stack: str, signed_in: dict[str, Any], watch: Watch) -> Iterator[Any]:
    context = _context(browser, stack, signed_in)
    yield watch.attach(context.new_page())
    context.close()
    watch.assert_clean()


def api(stack: str, person: Person, path: str, body: bytes | None = None, content_type: str = "") -> Any:
    """The JSON API with the person's bearer token (the browser's cookies play no part)."""
    headers = {"Authorization": f"Bearer {person.token}", "Accept": "application/json"}
    if content_type:
        headers["Content-Type"] = content_type
    request = urllib.request.Request(stack + path, data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def finished(stack: str, person: Person, job_id: str) -> dict[str, Any]:
    job = api(stack, person, f"/api/v1/jobs/{job_id}?wait=60")
    assert job["status"] == "succeeded", job
    return job  # type: ignore[no-any-return]


def shown(p: float) -> str:
    """A probability as the pages show it: never a certain 0.000 or 1.000."""
    return "< 0.01" if p < 0.01 else "> 0.99" if p > 0.99 else f"{p:.3f}"


def job_id_of(url: str) -> str:
    match = re.search(r"/jobs/([0-9a-f-]{36})", url)
    assert match, url
    return match.group(1)


def test_one_case_is_answered_on_the_same_page_from_the_keyboard(page, stack, lab):
    X, _ = wdbc()
    values = {f: repr(float(X[3, FEATURES.index(f)])) for f in RF4}
    page.goto("/")
    start = page.url

    # A first try with two mistakes, typed and sent from the keyboard alone.
    page.focus("#case_id")
    page.keyboard.type("kb-1")
    for feature, typed in zip(RF4, ["abc", "-3", values[RF4[2]], values[RF4[3]]], strict=True):
        page.keyboard.press("Tab")
        page.keyboard.type(typed)
    page.keyboard.press("Enter")
    expect(page.locator("#case-status")).to_contain_text("not scored")
    invalid = page.locator('input[aria-invalid="true"]')
    expect(invalid).to_have_count(2)
    assert [invalid.nth(i).get_attribute("name") for i in range(2)] == ["radius_mean", "texture_mean"]
    expect(page.locator("#e-radius_mean")).to_be_visible()
    expect(page.locator("#e-texture_mean")).to_be_visible()
    assert page.evaluate("() => document.activeElement.name") == "radius_mean"  # focus goes to the first problem
    assert page.input_value("#f-radius_mean") == "abc" and page.input_value("#f-texture_mean") == "-3"
    assert page.url == start

    # Corrected, and sent again with Enter.
    page.fill("#f-radius_mean", values["radius_mean"])
    page.fill("#f-texture_mean", values["texture_mean"])
    page.press("#f-texture_mean", "Enter")
    answer = page.locator("#answer")
    expect(answer).to_be_visible(timeout=30_000)
    expect(invalid).to_have_count(0)
    assert page.url == start  # no reload, no redirect
    assert page.evaluate("() => document.activeElement.id") == "answer"

    job_id = job_id_of(answer.locator('[data-slot="job-link"]').get_attribute("href"))
    (result,) = api(stack, lab, f"/api/v1/jobs/{job_id}/results")["results"]
    card = answer.locator("article.case")
    probability = card.locator(".verdict data")
    assert card.locator(".verdict .dx").inner_text() == result["diagnosis"]
    assert float(probability.get_attribute("value")) == result["probability_malignant"]  # exactly
    assert probability.inner_text() == shown(result["probability_malignant"])
    expect(card.locator("dl.facts")).to_contain_text(f"{result['model_name']} version {result['model_version']}")
    expect(card.locator("dl.facts")).to_contain_text(result["model_sha256"])
    assert result["case_id"] == "kb-1" and "kb-1" in card.locator("h2").inner_text()
    expect(card.locator(".notice")).to_have_count(1)
    expect(card.locator(".notice")).to_contain_text("not a diagnosis")
    screenshot(page, "home-answer")

    # A value changed once answered: the card says it no longer answers the form.
    stale = page.locator("#answer-stale")
    expect(stale).to_be_hidden()
    page.fill("#f-radius_mean", "20")
    expect(stale).to_be_visible()
    expect(stale).to_contain_text("it answers the values in the card below, not those in the form")
    screenshot(page, "home-answer-stale")
    # The next patient: an empty form, no answer, the cursor in the first field; a new answer is not stale.
    page.get_by_role("button", name="New case").click()
    expect(answer).to_be_hidden()
    assert [page.input_value(f'[name="{name}"]') for name in ("case_id", *RF4)] == [""] * 5
    assert page.evaluate("() => document.activeElement.name") == "case_id"
    for feature in RF4:
        page.fill(f"#f-{feature}", values[feature])
    page.press(f"#f-{RF4[-1]}", "Enter")
    expect(answer.locator("article.case h2")).to_have_text("Case (no case id)", timeout=30_000)
    expect(stale).to_be_hidden()


def test_an_out_of_range_case_is_flagged_beside_its_answer(page):
    X, _ = wdbc()
    page.goto("/")
    for f in RF4:
        page.fill(f"#f-{f}", repr(float(X[0, FEATURES.index(f)])))
    page.fill("#f-radius_mean", "60")  # far above the training range
    page.click("text=Score this case")
    flag = page.locator("#answer .case .flag")
    expect(flag).to_be_visible(timeout=30_000)
    expect(flag).to_contain_text("1 value is outside the range seen in training")
    flagged = page.locator("#answer tr.flagged")
    expect(flagged).to_have_count(1)
    expect(flagged).to_contain_text("Radius (mean)")
    expect(flagged).to_contain_text("60 above range")


# The cells of the answer's table a person cannot see without scrolling inside it: past the right edge of its
# region (its chart's words: `chart_words_hidden`). On a phone the header row is for screen readers only: each cell
# names its column.
CELLS_HIDDEN_IN_THE_ANSWER = """() => {
  const hidden = [];
  const inside = (box, edge) => box.left >= edge.left - 1 && box.right <= edge.right + 1;
  for (const wrap of document.querySelectorAll("#answer .table-wrap")) {
    const edge = wrap.getBoundingClientRect();
    const shown = wrap.querySelector("thead").getBoundingClientRect().width > 1;
    for (const cell of wrap.querySelectorAll(shown ? "th, td" : "tbody th, tbody td")) {
      if (!inside(cell.getBoundingClientRect(), edge)) hidden.push("cell: " + cell.textContent.trim());
    }
  }
  return hidden;
}"""


def _box(page: Any, selector: str) -> dict[str, float]:
    found: dict[str, float] = page.locator(selector).bounding_box()
    return found


def test_a_thirty_measurement_answer_is_read_whole_after_its_form(page):
    """Every value's contribution and every bar's name in sight, the longest names ("Fractal dimension (standard
    error)") included: on a desktop under the form and the upload panel beside it, on a phone right after the form."""
    X, _ = wdbc()
    page.goto("/?model=wdbc-rf30")
    for f in FEATURES:
        page.fill(f'input[name="{f}"]', repr(float(X[7, FEATURES.index(f)])))
    page.click("text=Score this case")
    card = page.locator("#answer article.case")
    expect(card.locator(".verdict")).to_be_visible(timeout=30_000)
    expect(card.locator("tbody tr")).to_have_count(30)
    expect(card.locator("svg.contributions rect")).to_have_count(30)
    expect(card.locator("svg.contributions")).to_contain_text("Fractal dimension (standard error)")
    assert page.evaluate(CELLS_HIDDEN_IN_THE_ANSWER) == []
    assert chart_words_hidden(page) == []
    assert fits_the_width(page)
    form, upload, answer = (_box(page, s) for s in ("#case-form", "section[aria-labelledby=upload]", "#answer"))
    assert upload["y"] < form["y"] + form["height"] < answer["y"]  # the panel beside the form, the answer under both
    assert answer["width"] > form["width"] + upload["width"]

    page.set_viewport_size(PHONE)
    form, upload, answer = (_box(page, s) for s in ("#case-form", "section[aria-labelledby=upload]", "#answer"))
    assert form["y"] < answer["y"] < upload["y"]  # one column: the answer between the form and the upload panel
    assert page.evaluate(CELLS_HIDDEN_IN_THE_ANSWER) == []
    assert chart_words_hidden(page) == []
    assert fits_the_width(page)


def test_a_case_pasted_from_a_sheet_fills_the_form_by_name_and_is_scored_once_checked(page):
    X, _ = wdbc()
    order = list(reversed(FEATURES))  # a sheet whose columns are in another order than the form's
    header = "\t".join(["id", *order])
    row = "\t".join(["P-30", *(repr(float(X[7, FEATURES.index(f)])) for f in order)])
    page.goto("/?model=wdbc-rf30")
    page.get_by_text("Paste a case from a spreadsheet").click()
    page.get_by_label("The header row and the case's row, copied together").fill(
        "\t".join(order[:4]) + "\n1\t2\t3\t4\n5\t6\t7\t8"
    )
    page.get_by_role("button", name="Fill the form").click()
    expect(page.locator("#paste-problems")).to_contain_text("this paste has 2 rows under the header")
    page.get_by_label("The header row and the case's row, copied together").fill(header + "\n" + row)
    page.get_by_role("button", name="Fill the form").click()
    expect(page.locator("#pasted-into")).to_contain_text("Filled from the paste: 31 values")
    for f in FEATURES:
        expect(page.locator(f'input[name="{f}"]')).to_have_value(repr(float(X[7, FEATURES.index(f)])))
    expect(page.locator("#answer")).to_be_hidden()  # filled, not scored
    page.click("text=Score this case")
    expect(page.locator("#answer article.case .verdict")).to_be_visible(timeout=30_000)
    expect(page.locator("#answer article.case")).to_contain_text("P-30")


def _progress(page: Any) -> list[Any] | None:
    try:
        return page.evaluate(  # type: ignore[no-any-return]
            """() => {
              const p = document.getElementById("progress");
              return p && [p.value, p.max, document.getElementById("status").textContent,
                           document.getElementById("eta").textContent.trim(),
                           Boolean(document.getElementById("histogram"))];
            }"""
        )
    except PlaywrightError:
        return None  # between the page and its reload


def test_an_upload_shows_progress_counts_chart_and_downloads(page, stack, lab, tmp_path):
    rows = 60_000
    sheet = tmp_path / "jittered.csv"
    sheet.write_bytes(jittered_csv(rows))
    page.goto("/")
    expect(page.locator("#file-hint")).to_contain_text("At most 512 MiB")
    page.set_input_files("#file", str(sheet))
    expect(page.locator("#chosen")).to_have_text(f"Chosen: jittered.csv ({sheet.stat().st_size / 2**20:.1f} MiB)")
    page.click("text=Upload and score")
    page.wait_for_url(re.compile(r".*/jobs/[0-9a-f-]{36}$"))
    job_id = job_id_of(page.url)

    samples: list[list[Any]] = []
    shot = False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        sample = _progress(page)
        if sample:
            samples.append(sample)
            if sample[4]:  # the finished page, with its chart
                break
            if 0 < sample[0] < sample[1] and not shot:
                shot = True
                with contextlib.suppress(PlaywrightError):  # the page may reload meanwhile
                    screenshot(page, "job-running-desktop")
        page.wait_for_timeout(40)
    moving = sorted({int(s[0]) for s in samples if 0 < s[0] < s[1]})
    job = api(stack, lab, f"/api/v1/jobs/{job_id}")
    took = f"the job ran from {job['started_at']} to {job['finished_at']}"
    print(f"progress seen: {moving}; {took}")
    assert moving, f"the progress bar never showed a value between 0 and its maximum ({took}): {samples[::10]}"
    assert any(s[3].endswith("left.") for s in samples if 0 < s[0] < s[1]), "no estimate of the time left was shown"
    assert job["status"] == "succeeded" and job["rows_scored"] == rows
    progress = page.locator("#progress")
    assert progress.get_attribute("value") == progress.get_attribute("max") == str(rows)
    expect(page.locator("#percent")).to_have_text("100.0 %")

    counts = [int(t.replace(",", "")) for t in page.locator("ul.counts .count").all_inner_texts()]
    assert counts[0] + counts[1] == rows  # M + B
    bars = page.locator("#histogram rect.bar")
    assert bars.count() == 20
    assert sum(int(c) for c in bars.evaluate_all("bars => bars.map(b => b.dataset.count)")) == rows

    with page.expect_download() as download_info:
        page.click("text=Download results (CSV)")
    download = download_info.value
    downloaded = list(csv.DictReader(io.StringIO(Path(download.path()).read_text())))
    results = api(stack, lab, f"/api/v1/jobs/{job_id}/results")["results"]
    assert len(downloaded) == len(results) == rows
    for row, record in zip(downloaded, results, strict=True):
        assert (row["case_id"], row["diagnosis"]) == (record["case_id"], record["diagnosis"])
        assert float(row["probability_malignant"]) == record["probability_malignant"]

    # The table pages and sorts on the server.
    page.click("#results th >> text=P(malignant)")
    expect(page).to_have_url(re.compile(r"sort=probability"))
    page.click("#results th >> text=P(malignant)")
    expect(page).to_have_url(re.compile(r"dir=desc"))
    top = max(r["probability_malignant"] for r in results)
    assert page.locator("#results tbody tr td:nth-child(4)").first.inner_text() == shown(top)
    page.click("nav.pager >> text=Next")
    expect(page).to_have_url(re.compile(r"page=2"))
    expect(page.locator("#rows-caption")).to_contain_text("Rows 51–100 of 60,000")


def _drop_file(page: Any, selector: str, name: str, text: str) -> None:
    """Drag a file onto an element, as a person dragging it from their desktop would."""
    transfer = page.evaluate_handle(
        """([name, text]) => {
          const transfer = new DataTransfer();
          transfer.items.add(new File([text], name, {type: "text/csv"}));
          return transfer;
        }""",
        [name, text],
    )
    for event in ("dragenter", "dragover", "drop"):
        page.dispatch_event(selector, event, {"dataTransfer": transfer})


def test_a_refused_file_lists_every_problem_in_place(page):
    page.goto("/")
    start = page.url
    _drop_file(page, "#dropzone", "two-columns.csv", "id,radius_mean\n1,12.0\n")
    expect(page.locator("#chosen")).to_have_text("Chosen: two-columns.csv (22 bytes)")  # not "0.0 MiB"
    page.click("text=Upload and score")
    problems = page.locator("#upload-problems")
    expect(problems).to_be_visible()
    expect(problems).to_contain_text("two-columns.csv was refused; nothing was created.")
    text = problems.inner_text()
    for missing in ("texture_mean", "smoothness_mean", "compactness_mean"):
        assert missing in text, text
    assert page.url == start


def test_without_javascript_the_forms_still_work(browser, stack, signed_in):
    context = _context(browser, stack, signed_in, java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto("/")
        page.set_input_files(
            "#file", files=[{"name": "two.csv", "mimeType": "text/csv", "buffer": b"id,radius_mean\n1,1\n"}]
        )
        page.click("text=Upload and score")
        assert page.url.endswith("/uploads")
        expect(page.locator("#upload-problems")).to_contain_text("texture_mean")

        X, _ = wdbc()
        page.goto("/?model=wdbc-rf30")  # the model chooser is a plain GET form
        expect(page.locator("#model-choice")).to_have_value("wdbc-rf30")
        for f in FEATURES:
            page.fill(f"#f-{f.replace(' ', '-')}", repr(float(X[7, FEATURES.index(f)])))
        page.click("text=Score this case")
        page.wait_for_url(re.compile(r".*/jobs/[0-9a-f-]{36}$"))
        for _ in range(60):  # no script reloads the page: a person would press reload
            if page.locator(".case .verdict").count():
                break
            page.wait_for_timeout(500)
            page.reload()
        expect(page.locator(".case .verdict")).to_contain_text(
            re.compile(r"^[MB]\s+(malignant|benign), probability of malignancy\s+(< 0\.01|> 0\.99|0\.\d{3})\s*$")
        )
        expect(page.locator(".case")).to_contain_text("wdbc-rf30")
        expect(page.locator(".case table.values tbody tr")).to_have_count(30)
    finally:
        context.close()


def test_a_clinician_is_offered_the_case_form_and_no_upload(browser, stack, people):
    context = _context(browser, stack, None)
    page = context.new_page()
    try:
        page.goto("/login")
        page.get_by_label("Email").fill(people["clinician"].email)
        page.get_by_label("Password").fill(people["clinician"].password)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#case-form")).to_be_visible()
        assert page.locator("#upload-form").count() == 0
    finally:
        context.close()


def test_uploaded_text_is_shown_as_text_and_never_runs(page, stack, lab, watch):
    X, _ = wdbc()
    good = [repr(float(X[0, FEATURES.index(f)])) for f in RF4]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([["id", *RF4], [SCRIPT_ID, *good], [IMG_ID, *good]])
    page.goto("/")
    name = "<b>bold</b>.csv"
    page.set_input_files("#file", files=[{"name": name, "mimeType": "text/csv", "buffer": out.getvalue().encode()}])
    page.click("text=Upload and score")
    page.wait_for_url(re.compile(r".*/jobs/[0-9a-f-]{36}$"))
    expect(page.locator("#results")).to_be_visible(timeout=30_000)
    assert page.locator("#results td.case-id").all_inner_texts() == [SCRIPT_ID, IMG_ID]
    expect(page.locator("h1 .filename")).to_have_text(name)
    assert page.locator("#results img, #results script, h1 b").count() == 0

    page.goto("/jobs")
    expect(page.locator("#jobs td.filename").first).to_have_text(name)

    page.goto("/")  # and through the form, where the script writes the answer
    page.fill("#case_id", IMG_ID)
    for f, value in zip(RF4, good, strict=True):
        page.fill(f"#f-{f}", value)
    page.click("text=Score this case")
    expect(page.locator("#answer .case h2")).to_have_text(f"Case {IMG_ID}", timeout=30_000)
    assert page.locator("#answer img").count() == 0

    assert page.evaluate("() => window.__pwned") is None
    assert not watch.dialogs


def _sign_in(page: Any, person: Person) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(person.email)
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#case-form")).to_be_visible()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_clinician_reads_the_values_and_why_then_prints_the_case_and_files_its_report(
    browser, stack, people, viewport
):
    width = "desktop" if viewport is DESKTOP else "phone"
    clinician = people["clinician"]
    X, _ = wdbc()
    context = _context(browser, stack, None, viewport=viewport)
    watch = Watch()
    page = watch.attach(context.new_page())
    try:
        _sign_in(page, clinician)
        page.fill("#case_id", f"clin-{width}")
        for f in RF4:
            page.fill(f"#f-{f}", repr(float(X[5, FEATURES.index(f)])))
        page.fill("#f-radius_mean", "45")  # far above the training range
        page.click("text=Score this case")
        card = page.locator("#answer article.case")
        expect(card).to_be_visible(timeout=30_000)
        rows = card.locator("table.values tbody tr")
        expect(rows).to_have_count(4)
        expect(rows.first).to_contain_text("Radius (mean)")
        expect(rows.first).to_contain_text("45 above range")
        expect(rows.first).to_contain_text("px")
        expect(card.locator("svg.contributions rect.bar")).to_have_count(4)
        job_id = job_id_of(page.locator('#answer [data-slot="job-link"]').get_attribute("href"))
        (result,) = api(stack, clinician, f"/api/v1/jobs/{job_id}/results")["results"]
        shares = [float(t) for t in card.locator('td[data-label="Contribution"]').all_inner_texts()]
        assert (
            abs(result["explanation"]["base"] + sum(shares) - result["probability_malignant"]) < 0.003
        )  # 3 decimals shown
        assert fits_the_width(page), f"the answer scrolls sideways at {viewport['width']} px"
        screenshot(page, f"case-answer-{width}")
        with page.expect_download() as from_the_answer:  # the report to file, straight from the answer
            page.get_by_role("link", name="Download the report (PDF)").click()
        assert from_the_answer.value.suggested_filename == f"cytoscore-case-{job_id}.pdf"

        page.locator('#answer [data-slot="job-link"]').click()
        page.wait_for_url(re.compile(r".*/jobs/[0-9a-f-]{36}$"))
        expect(page.locator("article.case h2")).to_have_text(f"Case clin-{width}")
        expect(page.get_by_role("button", name="Print this case")).to_be_visible()
        context.grant_permissions(["clipboard-read", "clipboard-write"])
        page.get_by_role("button", name="Copy a summary for the record").click()
        expect(page.locator("#copy-status")).to_have_text("Copied: paste it into the record.")
        copied = page.evaluate("() => navigator.clipboard.readText()")
        said = "malignant" if result["diagnosis"] == "M" else "benign"
        assert copied.startswith(f"Case clin-{width}: {result['diagnosis']} ({said}), probability of malignancy ")
        assert "; flagged: radius_mean 45 above training range 6.981–28.11. " in copied, copied
        assert f"model wdbc-rf4 1.0.0 (sha256 {result['model_sha256']}), job {job_id}, " in copied
        assert copied.endswith("Decision support only: this is not a diagnosis. A qualified clinician must interpret "
                               "every result.")  # fmt: skip
        assert fits_the_width(page), f"the case page scrolls sideways at {viewport['width']} px"
        screenshot(page, f"case-{width}")
        page.emulate_media(media="print")  # what the printer gets: the case, once, without the site around it
        expect(page.locator("header.site")).to_be_hidden()
        expect(page.locator(".report-actions")).to_be_hidden()
        expect(page.locator("article.case")).to_be_visible()
        expect(page.locator("footer.site")).to_be_hidden()
        screenshot(page, f"case-print-{width}")
        page.emulate_media(media="screen")

        with page.expect_download() as download_info:
            page.click("text=Download the report (PDF)")
        download = download_info.value
        assert download.suggested_filename == f"cytoscore-case-{job_id}.pdf"
        text = " ".join(p.extract_text() for p in PdfReader(download.path()).pages)
        assert f"clin-{width}" in text and "Why the model said it" in text and clinician.email in text
        assert text.count("Decision support only") == 1
    finally:
        context.close()
    watch.assert_clean()


@pytest.fixture(scope="module")
def sample_case(stack: str, lab: Person) -> str:
    """A single case answered through the JSON API, its diagnosis confirmed later."""
    X, y = wdbc()
    case = {"case_id": "sample-case", **{f: float(X[9, FEATURES.index(f)]) for f in RF4}}
    body = json.dumps({"cases": [case]}).encode()
    job_id: str = api(stack, lab, "/api/v1/jobs?wait=30", body, "application/json")["id"]
    _confirm(stack, lab, job_id, {1: str(y[9])})
    return job_id


@pytest.fixture(scope="module")
def sample_job(stack: str, lab: Person) -> str:
    """A small lab file with a supplied diagnosis, one rejected row and one row outside the training range; two
    rows' diagnoses confirmed later, one of them against the file's."""
    X, y = wdbc()
    rows = [["id", "diagnosis", *RF4]]
    rows += [[f"S{i:03d}", y[i], *(repr(float(X[i, FEATURES.index(f)])) for f in RF4)] for i in range(60)]
    rows.append(["S-bad", "B", "abc", "20.1", "0.09", "0.1"])
    rows.append(["S-far", "M", "41.5", "20.1", "0.09", "0.1"])
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    body, content_type = multipart({"model": "wdbc-rf4"}, out.getvalue().encode(), "clinic-batch.csv")
    job_id: str = api(stack, lab, "/api/v1/jobs", body, content_type)["id"]
    finished(stack, lab, job_id)
    _confirm(stack, lab, job_id, {1: str(y[0]), 2: "B" if y[1] == "M" else "M"})
    return job_id


def _confirm(stack: str, person: Person, job_id: str, diagnoses: dict[int, str]) -> None:
    entries = [{"row": row, "diagnosis": diagnosis} for row, diagnosis in diagnoses.items()]
    body = json.dumps({"basis": "histology", "diagnoses": entries}).encode()
    api(stack, person, f"/api/v1/jobs/{job_id}/confirmed-diagnoses", body, "application/json")


PAGES = [
    ("home", "/"),
    ("home-rf30", "/?model=wdbc-rf30"),
    ("jobs", "/jobs"),
    ("models", "/models"),
    ("model", "/models/wdbc-rf4"),
    ("model-rf30", "/models/wdbc-rf30"),
    ("job", None),
    ("case", "case"),
]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_every_page_passes_axe_and_fits_the_screen(browser, stack, signed_in, sample_job, sample_case, viewport):
    width = "desktop" if viewport is DESKTOP else "phone"
    # axe goes in as an inline script, which the pages' policy forbids; the other tests keep the policy on.
    context = _context(browser, stack, None, viewport=viewport, bypass_csp=True)
    watch = Watch()
    page = watch.attach(context.new_page())
    try:
        page.goto("/login")
        audit(page, f"login, {width}")
        assert fits_the_width(page)
        assert icon(page) == [200, "image/svg+xml; charset=utf-8"], "the sign-in page has no icon for its tab"
        screenshot(page, f"login-{width}")
        context.add_cookies(signed_in["cookies"])
        for name, path in PAGES:
            page.goto({None: f"/jobs/{sample_job}", "case": f"/jobs/{sample_case}"}.get(path, path))
            audit(page, f"{name}, {width}")
            assert fits_the_width(page), f"{name} scrolls sideways at {viewport['width']} px"
            assert icon(page) == [200, "image/svg+xml; charset=utf-8"], f"{name} has no icon for its tab"
            assert chart_words_hidden(page) == [], name
            assert fields_out_of_line(page) == [], name
            assert names_broken_inside(page) == [], name
            assert values_under_labels(page) == [], name
            screenshot(page, f"{name}-{width}")
        page.goto(f"/jobs/{sample_job}?show=flagged")
        expect(page.locator("#results tbody tr.flagged").first).to_be_visible()
        expect(page.locator("#results")).to_contain_text("S-far")
        page.goto(f"/jobs/{sample_job}?show=rejected")
        expect(page.locator("#results tbody tr.rejected")).to_contain_text("Rejected: ")
        expect(page.locator("#agreement")).to_contain_text("agrees with the supplied diagnosis in")
    finally:
        context.close()
    watch.assert_clean()


def test_the_jobs_list_finds_a_file_by_name_and_a_job_by_a_case_id(page, stack, lab):
    marker = uuid.uuid4().hex[:8]
    content = jittered_csv(3).replace(b"\nJ2,", f"\nK-{marker},".encode())
    ids = []
    for name in (f"ward-{marker}-a.csv", f"ward-{marker}-b.csv"):
        body, content_type = multipart({}, content if name.endswith("a.csv") else jittered_csv(3), name)
        ids.append(finished(stack, lab, api(stack, lab, "/api/v1/jobs", body, content_type)["id"])["id"])
    page.goto("/jobs")
    page.get_by_label("File name or case id").fill(f"WARD-{marker}")
    page.get_by_role("button", name="Find").click()
    expect(page.locator("#jobs td.filename")).to_have_text([f"ward-{marker}-b.csv", f"ward-{marker}-a.csv"])
    page.get_by_label("File name or case id").fill(f"K-{marker}")
    page.get_by_role("button", name="Find").click()
    expect(page.locator("#jobs td.filename")).to_have_text([f"ward-{marker}-a.csv"])
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Find").click()
    expect(page.locator("#no-jobs")).to_have_text("No jobs match.")
    page.get_by_role("link", name="Clear the search and filters").click()
    expect(page.locator("#jobs td.filename").first).to_have_text(f"ward-{marker}-b.csv")
    # Each job's time and short id on one line of its own, as they are read and copied, on a small laptop too.
    page.set_viewport_size({"width": 1024, "height": 768})
    lines = page.evaluate(
        """() => [...document.querySelectorAll('#jobs td[data-label="Created"], #jobs td[data-label="Job"] code')]
                   .map(e => { const r = document.createRange(); r.selectNodeContents(e);
                               return r.getClientRects().length; })"""
    )
    assert lines and set(lines) == {1}, lines
