"""Progress a lab can see: the job page's bar and time left move during a real 1M-row CSV and a 100k-row XLSX.

The stack runs with the default settings (batches of 20,000 rows, parts of 4 MiB), as a lab would run it; the
page is watched while the job runs, and photographed once it shows between 10 % and 90 % with an estimate.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

from testkit.files import csv_file, xlsx_file
from testkit.support import WORKER_NODES, Person, ServiceProcess, free_port, fresh_queue
from tests.browser_support import launch, screenshot, wait_for_http

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`cytoscore web` and two workers of their own, with the default batch and part sizes."""
    port = free_port()
    env = {**service_env, "PORT": str(port), "CYTOSCORE_QUEUE": fresh_queue("cytoscore-progress")}
    logs = tmp_path_factory.mktemp("progress")
    workers = [ServiceProcess(["worker"], env, logs / f"worker{i}.log") for i in range(2)]
    web = ServiceProcess(["web"], env, logs / "web.log")
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
        for worker in workers:
            worker.wait_for_log("ready.", timeout=90, count=WORKER_NODES)
        yield f"http://127.0.0.1:{port}"
    finally:
        web.stop()
        for worker in workers:
            worker.stop()


@pytest.fixture(scope="module")
def page(stack: str, people: dict[str, Person]) -> Iterator[Any]:
    lab = people["lab"]
    with sync_playwright() as playwright:
        browser = launch(playwright)
        context = browser.new_context(base_url=stack, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.goto("/login")
        page.get_by_label("Email").fill(lab.email)
        page.get_by_label("Password").fill(lab.password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{stack}/")
        yield page
        browser.close()


def _shown(page: Any) -> tuple[float, float, str] | None:
    """The bar's value and maximum and the time-left line, as the page shows them now."""
    try:
        return page.evaluate(  # type: ignore[no-any-return]
            """() => {
              const p = document.getElementById("progress");
              const eta = document.getElementById("eta");
              return p && eta ? [p.value, p.max, eta.textContent.trim()] : null;
            }"""
        )
    except PlaywrightError:
        return None  # between the page and its reload


@pytest.mark.parametrize(
    ("name", "sheet", "moves"),
    [("csv-1m", lambda: csv_file(1_000_000), 3), ("xlsx-100k", lambda: xlsx_file(100_000), 2)],
    ids=["1M-row CSV", "100k-row XLSX"],
)
def test_the_bar_and_the_time_left_move_while_a_real_upload_is_scored(page, name, sheet, moves):
    """A workbook's rows are counted once its sheet is read (calamine reads it whole, in one call), so its bar
    shows fewer steps: "Reading the file…", then 0 of its rows, then the batches as they are scored."""
    path: Path = sheet()
    page.goto("/")
    page.set_input_files("#file", str(path))
    page.click("text=Upload and score")
    page.wait_for_url(re.compile(r".*/jobs/[0-9a-f-]{36}$"), timeout=120_000)

    seen: list[tuple[float, float, str]] = []
    photographed = False
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        shown = _shown(page)
        if shown and (not seen or shown != seen[-1]):
            seen.append(shown)
        if shown and shown[1] > 1 and shown[0] >= shown[1]:
            break
        if shown and 0.1 <= shown[0] / shown[1] <= 0.9 and shown[2].endswith("left.") and not photographed:
            photographed = True
            screenshot(page, f"job-progress-{name}")
        page.wait_for_timeout(20)

    running = [(v, m, eta) for v, m, eta in seen if m > 1 and v < m]
    steps = sorted({round(100 * v / m) for v, m, _ in running})
    print(f"{name}: percentages shown while running: {steps}; time left: {[eta for _, _, eta in seen]}")
    assert seen[-1][0] == seen[-1][1] > 1, f"the job did not finish: {seen}"
    assert len(steps) >= moves, f"the bar did not move while the job ran: {seen}"
    assert photographed, f"never between 10 % and 90 % with the time left shown: {seen}"
