"""The lab's pages in a real browser: the upload panel picks the model from the file's header, a job offers a
better model and rescores with one click, two jobs on the same input are compared, and the validation view sets the
training rows apart and filters the rows whose answer differs from the supplied diagnosis; a job started by mistake
is cancelled from its page and scored again, and a finished job's file and results are removed."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import openpyxl
import psycopg
from playwright.sync_api import expect

from shared.features import FEATURES
from testkit.support import case_ids, jittered_csv, multipart, wdbc, wdbc_csv
from tests import test_browser as base
from tests.browser_support import Watch, audit, chart_words_hidden, fields_out_of_line, fits_the_width, screenshot
from tests.support import queued_case
from tests.test_browser import DESKTOP, PHONE, RF4, _context, api, finished, job_id_of

# The browser tests' fixtures, so this module gets a web and a worker of its own as test_browser does.
stack, lab, browser, signed_in, watch, page = base.stack, base.lab, base.browser, base.signed_in, base.watch, base.page


def rf4_csv(n: int = 30) -> bytes:
    X, y = wdbc()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "diagnosis", *RF4])
    for i, case in enumerate(case_ids(n)):
        writer.writerow([case, y[i], *(repr(float(X[i, FEATURES.index(f)])) for f in RF4)])
    return out.getvalue().encode()


def test_the_upload_panel_preselects_the_best_model_the_files_header_fits(page, stack, lab):
    page.goto("/")
    select = page.locator("#upload-model")
    expect(select).to_have_value("")  # without a file: the server's rule decides
    page.set_input_files("#file", files=[{"name": "four.csv", "mimeType": "text/csv", "buffer": rf4_csv()}])
    expect(select).to_have_value("wdbc-rf4")
    page.set_input_files("#file", files=[{"name": "kaggle.csv", "mimeType": "text/csv", "buffer": wdbc_csv()}])
    expect(select).to_have_value("wdbc-rf30")
    expect(page.locator("#model-fit")).to_contain_text("Chosen for kaggle.csv: wdbc-rf30")
    screenshot(page, "upload-model-chosen-desktop")
    page.click("text=Upload and score")
    page.wait_for_url(re.compile(r".*/jobs/[0-9a-f-]{36}$"))
    assert finished(stack, lab, job_id_of(page.url))["model"]["name"] == "wdbc-rf30"


def test_several_files_are_sent_at_once_each_with_the_model_its_columns_fit(page, stack, lab):
    page.goto("/")
    expect(page.locator("#file-hint")).to_contain_text("Choose one or more files, or drop them here.")
    files = [
        {"name": "ward-4.csv", "mimeType": "text/csv", "buffer": rf4_csv()},
        {"name": "ward-30.csv", "mimeType": "text/csv", "buffer": wdbc_csv()},
        {"name": "ward-broken.csv", "mimeType": "text/csv", "buffer": b"id,radius_mean\nA,14.1\n"},
    ]
    page.set_input_files("#file", files=files)
    expect(page.locator("#chosen")).to_contain_text("ward-4.csv (")
    expect(page.locator("#chosen")).to_contain_text("ward-broken.csv (")
    expect(page.locator("#upload-model")).to_have_value("")  # each file gets the best model it fits
    page.click("text=Upload and score")
    expect(page.locator("#upload-status")).to_have_text("2 of 3 files accepted; they are on the Jobs page too.")
    sent = page.locator("#upload-results li")
    expect(sent).to_have_count(3)
    expect(sent.nth(2)).to_contain_text("ward-broken.csv was refused; nothing was created: missing required columns")
    models = {}
    for at, name in ((0, "ward-4.csv"), (1, "ward-30.csv")):
        link = sent.nth(at).get_by_role("link", name=f"{name}: accepted, see its job")
        job = finished(stack, lab, job_id_of(link.get_attribute("href") or ""))
        models[job["input"]["filename"]] = job["model"]["name"]
    assert models == {"ward-4.csv": "wdbc-rf4", "ward-30.csv": "wdbc-rf30"}
    assert page.url.endswith("/")  # the page stays, listing each file's outcome
    screenshot(page, "upload-several-desktop")


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _workbook(rows: list[list[Any]], sheets: tuple[str, ...] = ("Sheet1",)) -> bytes:
    """A workbook as openpyxl writes it (text in the shared strings), the rows on the last sheet named."""
    book = openpyxl.Workbook()
    book.active.title = sheets[0]
    for name in sheets[1:]:
        book.create_sheet(name)
    for row in rows:
        book[sheets[-1]].append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_the_upload_panel_reads_a_workbooks_header_and_preselects_as_the_server_would(page, stack, lab):
    X, y = wdbc()
    kaggle = [["id", "diagnosis", *FEATURES], *([f"W{i}", y[i], *map(float, X[i])] for i in range(200))]
    four = [
        [None],
        [None, "id", *RF4],
        *([None, f"F{i}", *(float(X[i, FEATURES.index(f)]) for f in RF4)] for i in range(5)),
    ]
    select = page.locator("#upload-model")
    page.goto("/")
    page.set_input_files("#file", files=[{"name": "four.xlsx", "mimeType": XLSX, "buffer": _workbook(four)}])
    expect(select).to_have_value("wdbc-rf4")  # a table at B2, as the server reads it
    # A workbook the script cannot choose from (two sheets, neither named cases): the server decides, and refuses.
    page.set_input_files("#file", files=[{"name": "two.xlsx", "mimeType": XLSX, "buffer": _workbook(four, ("a", "b"))}])
    expect(page.locator("#model-fit")).to_contain_text("The workbook's columns are read when it arrives")
    expect(select).to_have_value("")
    book = _workbook(kaggle, ("notes", "Cases"))
    page.set_input_files("#file", files=[{"name": "kaggle.xlsx", "mimeType": XLSX, "buffer": book}])
    expect(select).to_have_value("wdbc-rf30")
    expect(page.locator("#model-fit")).to_contain_text("Chosen for kaggle.xlsx: wdbc-rf30")
    page.click("text=Upload and score")
    page.wait_for_url(re.compile(r".*/jobs/[0-9a-f-]{36}$"))
    assert finished(stack, lab, job_id_of(page.url))["model"]["name"] == "wdbc-rf30"


def test_a_refused_workbook_s_page_says_why_and_nothing_more(page):
    """A workbook is checked by the worker: its job fails with the reason, with no empty progress bar beside it."""
    X, _ = wdbc()
    rows = [["id", *RF4[:3]], *([f"R{i}", *(float(X[i, FEATURES.index(f)]) for f in RF4[:3])] for i in range(3))]
    page.goto("/")
    page.select_option("#upload-model", "wdbc-rf4")
    page.set_input_files("#file", files=[{"name": "three.xlsx", "mimeType": XLSX, "buffer": _workbook(rows)}])
    page.click("text=Upload and score")
    page.wait_for_url(re.compile(r".*/jobs/[0-9a-f-]{36}$"))
    expect(page.locator("#status")).to_contain_text("failed", timeout=30_000)
    expect(page.locator("#error")).to_have_text("missing required columns: compactness_mean")
    expect(page.locator("#progress")).to_have_count(0)
    expect(page.locator("#job")).not_to_contain_text("0 of 0 rows")


def test_a_person_s_own_model_choice_stands_and_a_missing_column_is_listed(page):
    page.goto("/")
    page.select_option("#upload-model", "wdbc-rf30")
    page.set_input_files("#file", files=[{"name": "four.csv", "mimeType": "text/csv", "buffer": rf4_csv()}])
    expect(page.locator("#upload-model")).to_have_value("wdbc-rf30")
    page.click("text=Upload and score")
    problems = page.locator("#upload-problems")
    expect(problems).to_contain_text("four.csv was refused; nothing was created.")
    expect(problems).to_contain_text("missing required columns: perimeter_mean, area_mean")


def test_a_better_model_is_offered_and_one_click_rescores_then_compares(page, stack, lab):
    body, content_type = multipart({"model": "wdbc-rf4"}, wdbc_csv(), "kaggle.csv")
    first = api(stack, lab, "/api/v1/jobs", body, content_type)["id"]
    finished(stack, lab, first)
    page.goto(f"/jobs/{first}")
    expect(page.locator("#better-model")).to_contain_text("A better model fits this file")
    page.get_by_role("button", name="Rescore with wdbc-rf30").click()
    page.wait_for_url(re.compile(r".*/jobs/[0-9a-f-]{36}$"))
    second = job_id_of(page.url)
    assert second != first
    job = finished(stack, lab, second)
    assert job["model"]["name"] == "wdbc-rf30" and job["input"]["sha256"] == api(stack, lab, f"/api/v1/jobs/{first}")[
        "input"]["sha256"]  # fmt: skip
    # The page reloads itself once the job has finished (static/job.js): no reload of ours to race with it.
    expect(page.locator("#same-input")).to_be_visible(timeout=60_000)
    expect(page.locator("#better-model")).to_have_count(0)
    page.locator("#same-input").get_by_role("link", name=f"rows whose answers differ from {first[:8]}").click()
    expect(page.locator("#compare-summary")).to_contain_text("The answers differ in")
    differing = api(stack, lab, f"/api/v1/jobs/{second}/compare/{first}")["differing"]
    expect(page.locator("#differences tbody tr")).to_have_count(differing)
    screenshot(page, "compare-desktop")


def _validated_job(stack: str, lab: Any) -> str:
    body, content_type = multipart({"model": "wdbc-rf4"}, wdbc_csv(), "kaggle.csv")
    job_id: str = api(stack, lab, "/api/v1/jobs", body, content_type)["id"]
    finished(stack, lab, job_id)
    return job_id


def test_the_validation_view_sets_training_rows_apart_and_filters_differing_rows(page, stack, lab):
    job_id = _validated_job(stack, lab)
    page.goto(f"/jobs/{job_id}")
    expect(page.locator("#training-overlap")).to_contain_text(
        "426 of these rows were used to train this model; agreement on them overstates accuracy"
    )
    expect(page.locator("#validation-other")).to_contain_text("Rows not used in training")
    expect(page.locator("#roc-other polyline.curve")).to_have_count(1)
    figures = api(stack, lab, f"/api/v1/jobs/{job_id}/validation")["validation"]
    tp = figures["not_in_training"]["confusion"]["tp"]
    expect(page.locator("#confusion-other [data-cell=tp]")).to_have_text(f"TP {tp}")
    screenshot(page, "validation-desktop")
    page.get_by_role("link", name=re.compile(r"^Differs from the supplied diagnosis")).click()
    rows = page.locator("#results tbody tr")
    expect(rows.first).to_be_visible()
    assert rows.count() == page.locator("#results tbody tr.differs").count() > 0
    expect(rows.first).to_contain_text("differs")
    row, case_id = rows.first.locator("td").nth(0).inner_text(), rows.first.locator("td").nth(1).inner_text()
    rows.first.get_by_role("button", name=re.compile(r"^Why row")).click()  # the row, opened as a case
    card = page.locator("article.case")
    expect(card.locator(".verdict")).to_be_visible()
    expect(card).to_contain_text(f"Case {case_id}")
    expect(card.locator(".supplied")).to_contain_text("the model’s answer differs")
    expect(card.locator("svg.contributions rect.bar")).to_have_count(len(RF4))
    expect(card.locator("dl.facts")).to_contain_text(f"row {row} of kaggle.csv, job {job_id}")


def test_the_new_pages_pass_axe_and_fit_a_phone(browser, stack, signed_in, lab):
    job_id = _validated_job(stack, lab)
    other = api(stack, lab, f"/api/v1/jobs/{job_id}/rescore", b'{"model": "wdbc-rf30"}', "application/json")["id"]
    finished(stack, lab, other)
    answers = api(stack, lab, f"/api/v1/jobs/{job_id}/results?format=json")["results"]
    differing = next(r["row"] for r in answers if r["diagnosis"] != r["supplied_diagnosis"])
    # The comparison's differing rows with confirmed diagnoses: one agreeing on both jobs, one in conflict.
    between = [r["row"] for r in api(stack, lab, f"/api/v1/jobs/{job_id}/compare/{other}")["rows"]][:2]
    base._confirm(stack, lab, job_id, {between[0]: "M", between[1]: "M"})
    base._confirm(stack, lab, other, {between[1]: "B"})
    opened = api(stack, lab, f"/api/v1/jobs/{job_id}/rows/{differing}/case?wait=30", b"")["id"]
    for viewport, width in ((DESKTOP, "desktop"), (PHONE, "phone")):
        context = _context(browser, stack, signed_in, viewport=viewport, bypass_csp=True)  # axe goes in inline
        watch = Watch()
        page = watch.attach(context.new_page())
        try:
            for name, path in (("job-validation", f"/jobs/{job_id}"), ("compare", f"/jobs/{job_id}/compare/{other}"),
                               ("job-differs", f"/jobs/{job_id}?show=differs"),
                               ("row-case", f"/jobs/{opened}")):  # fmt: skip
                page.goto(path)
                audit(page, f"{name}, {width}")
                assert fits_the_width(page), f"{name} scrolls sideways at {viewport['width']} px"
                assert chart_words_hidden(page) == [], name
                screenshot(page, f"{name}-{width}")
        finally:
            context.close()
        watch.assert_clean()


def test_a_job_started_by_mistake_is_cancelled_from_its_page_and_scored_again(browser, stack, signed_in, lab):
    body, content_type = multipart({"model": "wdbc-rf4"}, jittered_csv(200_000), "wrong-week.csv")
    job_id = api(stack, lab, "/api/v1/jobs", body, content_type)["id"]
    context = _context(browser, stack, signed_in, bypass_csp=True)  # axe goes in inline
    watch = Watch()
    page = watch.attach(context.new_page())
    try:
        page.goto(f"/jobs/{job_id}")
        page.get_by_role("button", name="Cancel this job").click()
        page.wait_for_url(re.compile(rf".*/jobs/{job_id}$"))
        expect(page.locator("#status")).to_contain_text("cancelled")
        expect(page.locator("#cancelled")).to_contain_text(f"Cancelled by {lab.email} at ")
        expect(page.get_by_role("button", name="Cancel this job")).to_have_count(0)
        job = api(stack, lab, f"/api/v1/jobs/{job_id}")
        assert job["status"] == "cancelled" and job["rows_scored"] < 200_000
        audit(page, "job-cancelled, desktop")
        assert fields_out_of_line(page) == []
        screenshot(page, "job-cancelled-desktop")
        model = page.get_by_label("Model")
        expect(model).to_have_value("wdbc-rf4")  # the job's own, among every model the file fits
        assert model.locator("option").all_inner_texts() == ["wdbc-rf4 (4 features, ROC AUC 0.979)"]
        page.get_by_role("button", name="Score it again").click()
        page.wait_for_url(re.compile(r".*/jobs/[0-9a-f-]{36}$"))
        again = job_id_of(page.url)
        assert again != job_id
        assert finished(stack, lab, again)["rows_scored"] == 200_000
        page.reload()  # the finished job's downloads: an XLSX this large is made whole first, the CSV streams
        expect(page.locator("ul.downloads")).to_contain_text("made whole before it starts: minutes for this many rows")
    finally:
        context.close()
    watch.assert_clean()


def test_a_finished_jobs_file_and_results_are_removed_once_the_box_is_ticked(browser, stack, signed_in, lab):
    job_id = _validated_job(stack, lab)
    context = _context(browser, stack, signed_in, bypass_csp=True)  # axe goes in inline
    watch = Watch()
    page = watch.attach(context.new_page())
    try:
        page.goto(f"/jobs/{job_id}")
        remove = page.get_by_role("button", name="Remove the file and results")
        remove.scroll_into_view_if_needed()
        screenshot(page, "job-remove-desktop")
        remove.click()  # the box is not ticked: the browser keeps the form, nothing is sent
        expect(page.get_by_role("checkbox")).to_be_focused()
        assert api(stack, lab, f"/api/v1/jobs/{job_id}")["purged_at"] is None
        page.get_by_label("I understand that the file and results cannot be recovered").check()
        remove.click()
        expect(page.locator("#removed")).to_contain_text(f"Removed by {lab.email} at ")
        expect(page.locator("#results")).to_have_count(0)
        assert api(stack, lab, f"/api/v1/jobs/{job_id}")["purged_by"] == lab.email
        audit(page, "job-removed, desktop")
        screenshot(page, "job-removed-desktop")
    finally:
        context.close()
    watch.assert_clean()


def test_a_queued_jobs_page_keeps_saying_how_many_jobs_are_ahead_of_it(page, stack, lab, pg_url):
    dsn = pg_url.replace("postgresql+psycopg:", "postgresql:")
    first, second = (queued_case(dsn, lab.email) for _ in range(2))
    with psycopg.connect(dsn) as conn:  # waiting since yesterday, the second a second after the first
        for job_id, seconds in ((first, 0), (second, 1)):
            conn.execute(
                "UPDATE jobs SET created_at = now() - interval '1 day' + make_interval(secs => %s) WHERE id = %s",
                (seconds, job_id),
            )
    try:
        page.goto(f"/jobs/{second}")
        with page.expect_response(re.compile(rf".*/api/v1/jobs/{second}$")):  # the page's script has polled
            pass
        expect(page.locator("#eta")).to_have_text("Waiting for a worker: 1 job is ahead of it.")
    finally:
        for job_id in (first, second):
            api(stack, lab, f"/api/v1/jobs/{job_id}/cancel", b"")


# The browser's own Notification, watched: each one shown is kept in sessionStorage, which outlives the reload.
KEEP_NOTIFICATIONS = """
(() => {
  const Shown = window.Notification;
  if (!Shown) return;
  window.Notification = class extends Shown {
    constructor(title, options) {
      super(title, options);
      const kept = JSON.parse(sessionStorage.getItem("shown") || "[]");
      kept.push({ title: title, body: (options && options.body) || "" });
      sessionStorage.setItem("shown", JSON.stringify(kept));
    }
  };
})();
"""


def test_a_waiting_job_s_tab_says_how_far_it_is_and_tells_when_it_ends(browser, stack, signed_in, lab, pg_url):
    job_id = queued_case(pg_url.replace("postgresql+psycopg:", "postgresql:"), lab.email)
    context = _context(browser, stack, signed_in, permissions=["notifications"])
    context.add_init_script(KEEP_NOTIFICATIONS)
    watch = Watch()
    page = watch.attach(context.new_page())
    try:
        page.goto(f"/jobs/{job_id}")
        expect(page).to_have_title(re.compile(rf"^Waiting · Job {job_id[:8]} · cytoscore$"))
        page.get_by_role("button", name="Tell me when it is done").click()
        expect(page.locator("#notify-status")).to_contain_text("You will be told when it ends")
        api(stack, lab, f"/api/v1/jobs/{job_id}/cancel", b"")  # it ends (here: stopped from elsewhere)
        expect(page).to_have_title(f"Job {job_id[:8]} (cancelled) · cytoscore")  # reloaded, finished
        shown = page.evaluate("JSON.parse(sessionStorage.getItem('shown') || '[]')")
        assert shown == [{"title": f"cytoscore: job {job_id[:8]} cancelled", "body": ""}], shown
    finally:
        context.close()
    watch.assert_clean()
