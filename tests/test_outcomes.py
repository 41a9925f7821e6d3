"""A job's outcome looks different for each state, in the jobs list and on its page: text, colour and an icon,
never colour alone."""

from __future__ import annotations

import re

from shared.features import FEATURES
from testkit.support import RF4, wdbc, wdbc_csv
from tests.support import post_upload, sign_in
from tests.test_plausibility import german_misread
from tests.test_workbooks import _workbook

BADGE = re.compile(
    r'<span class="badge (?P<cls>status-[a-z_]+)" data-outcome="(?P<outcome>[a-z_]+)">\s*'
    r'<svg class="icon"[^>]*role="img" aria-label="(?P<icon>[^"]+)"[^>]*>.*?</svg>\s*'
    r"(?P<text>.*?)</span>\s*(?:</|<span)",
    re.S,
)


def _one_bad_row() -> bytes:
    header, *rows = wdbc_csv(slice(0, 30)).decode().splitlines()
    cells = rows[3].split(",")
    cells[2] = "abc"  # radius_mean
    rows[3] = ",".join(cells)
    return ("\n".join([header, *rows]) + "\n").encode()


def _missing_column() -> bytes:
    X, _ = wdbc()
    return _workbook(
        ["id", *RF4[:3]], [[f"M{i}", *(float(X[i, FEATURES.index(f)]) for f in RF4[:3])] for i in range(5)]
    )


def _badge(html: str) -> dict[str, str]:
    match = BADGE.search(html)
    assert match, html[:2000]
    return {k: re.sub(r"<[^>]+>", "", v).strip() for k, v in match.groupdict().items()}


def test_each_outcome_has_its_own_words_colour_and_icon(app, client, finished, people):
    jobs = {
        "scored": post_upload(client, wdbc_csv(slice(0, 30))),
        "partial": post_upload(client, _one_bad_row()),
        "review": post_upload(client, german_misread(wdbc_csv()), "libreoffice-de.csv"),
        "failed": post_upload(client, _missing_column(), "three-columns.xlsx"),
    }
    assert {name: r.status_code for name, r in jobs.items()} == dict.fromkeys(jobs, 202), [
        r.get_json() for r in jobs.values()
    ]
    ids = {name: response.get_json()["id"] for name, response in jobs.items()}
    statuses = {name: finished(job_id)["status"] for name, job_id in ids.items()}
    assert statuses == {"scored": "succeeded", "partial": "succeeded", "review": "needs_review", "failed": "failed"}

    lab = people["lab"]
    browser = sign_in(app, lab.email, lab.password)
    listing = browser.get("/jobs").get_data(as_text=True)
    in_list, on_page = {}, {}
    for name, job_id in ids.items():
        row = re.search(rf'<tr>(?:(?!</tr>).)*?/jobs/{job_id}"(?:(?!</tr>).)*</tr>', listing, re.S)
        assert row, name
        in_list[name] = _badge(row.group(0))
        on_page[name] = _badge(browser.get(f"/jobs/{job_id}").get_data(as_text=True))
    assert in_list == on_page
    for name, badge in in_list.items():
        assert badge["outcome"] == name
    for key in ("cls", "icon", "text"):  # each state differs from every other in colour, icon and words
        assert len({badge[key] for badge in in_list.values()}) == 4, (key, in_list)
    assert in_list["scored"]["text"] == "succeeded"
    assert in_list["partial"]["text"] == "succeeded, 1 row rejected"
    assert in_list["review"]["text"] == "needs review: results held"
    assert in_list["failed"]["text"] == "failed"
