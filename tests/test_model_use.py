"""How a model has been used here, month by month (administrators): the figures equal the jobs' own counts and
validation, a job whose results were removed leaves them, months follow the site's time zone, and only an
administrator sees them."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import update

from shared.schema import Job
from testkit.support import wdbc_csv
from tests.support import post_upload, sign_in

CASE = {
    "id": "use-1",
    "radius_mean": 17.99,
    "texture_mean": 10.38,
    "smoothness_mean": 0.1184,
    "compactness_mean": 0.2776,
}
SUMMED = ("jobs", "rows_scored", "rows_rejected", "rows_out_of_range", "answered_m")


def totals(admin: Any, model: str = "wdbc-rf4") -> dict[str, Any]:
    answer = admin.get(f"/api/v1/models/{model}/use")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    months = answer.get_json()["months"]
    out: dict[str, Any] = {key: sum(m[key] for m in months) for key in SUMMED}
    against = [m["against_diagnosis"] for m in months]
    out["against"] = {key: sum(a[key] for a in against) for key in ("rows", "training_rows")}
    out["confusion"] = {key: sum(a["confusion"][key] for a in against) for key in ("tp", "fp", "fn", "tn")}
    return out


def change(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {
        key: {k: after[key][k] - before[key][k] for k in before[key]}
        if isinstance(before[key], dict)
        else after[key] - before[key]
        for key in before
    }


def test_a_months_figures_are_its_jobs_counts_and_validation(app, client, finished, people):
    admin = people["admin"].client(app)
    before = totals(admin)

    upload = finished(post_upload(client, wdbc_csv(), model="wdbc-rf4").get_json()["id"])
    case = people["clinician"].client(app).post("/api/v1/jobs?wait=30", json={"cases": [CASE], "model": "wdbc-rf4"})
    assert case.status_code == 201 and case.get_json()["status"] == "succeeded"
    single = case.get_json()

    results = client.get(f"/api/v1/jobs/{upload['id']}/results").get_json()["results"]
    said = np.array([r["diagnosis"] for r in results] + [r["diagnosis"] for r in single["results"]])
    validation = client.get(f"/api/v1/jobs/{upload['id']}/validation").get_json()["validation"]

    assert change(before, totals(admin)) == {
        "jobs": 2,
        "rows_scored": 570,
        "rows_rejected": 0,
        "rows_out_of_range": upload["rows_out_of_range"] + single["rows_out_of_range"],
        "answered_m": int((said == "M").sum()),
        "against": {"rows": 143, "training_rows": 426},  # the single case supplied no diagnosis
        "confusion": validation["not_in_training"]["confusion"],
    }

    now = admin.get("/api/v1/models/wdbc-rf4/use").get_json()
    assert now["time_zone"] == "UTC"
    month = now["months"][0]
    assert month["month"] == f"{datetime.now(UTC):%Y-%m}" and month["version"] == upload["model"]["version"]
    c, sensitivity = month["against_diagnosis"]["confusion"], month["against_diagnosis"]["sensitivity"]
    assert (sensitivity["numerator"], sensitivity["denominator"]) == (c["tp"], c["tp"] + c["fn"])
    assert sensitivity["ci_low"] < sensitivity["value"] == c["tp"] / (c["tp"] + c["fn"]) < sensitivity["ci_high"]

    browser = sign_in(app, people["admin"].email, people["admin"].password)
    page = browser.get("/models/wdbc-rf4/use")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    row = re.search(rf"<td[^>]*>{datetime.now(UTC):%B %Y}</td>(.*?)</tr>", text, re.S)
    assert row, text
    cells = [
        " ".join(re.sub(r"<[^>]+>", " ", cell).split())
        for cell in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    ]
    assert cells[1:3] == [f"{month['jobs']:,}", f"{month['rows_scored']:,}"]
    assert cells[3] == f"{month['answered_m']:,} {100 * month['answered_m'] / month['rows_scored']:.1f} %"
    s = sensitivity
    assert cells[7] == f"{s['value']:.3f} {c['tp']:,} of {c['tp'] + c['fn']:,} · {s['ci_low']:.2f}–{s['ci_high']:.2f}"

    link = re.search(r'<a href="([^"]+)" download>Download the table as CSV</a>', text)
    download = browser.get(link.group(1))  # the page's session, as a browser follows the link
    assert download.headers["Content-Disposition"] == 'attachment; filename="cytoscore-wdbc-rf4-use.csv"'
    table = list(csv.DictReader(io.StringIO(download.get_data(as_text=True))))
    assert len(table) == len(now["months"])
    first = table[0]
    assert (first["month"], first["version"], int(first["jobs"])) == (month["month"], month["version"], month["jobs"])
    assert (int(first["tp"]), int(first["fn"]), int(first["rows_with_diagnosis"])) == (
        c["tp"], c["fn"], month["against_diagnosis"]["rows"]
    )  # fmt: skip
    assert (
        float(first["sensitivity_ci_low"]) == s["ci_low"]
        and float(first["specificity"]) == (month["against_diagnosis"]["specificity"]["value"])
    )


def test_a_job_whose_results_are_removed_leaves_the_figures(app, client, finished, people):
    admin = people["admin"].client(app)
    job = finished(post_upload(client, wdbc_csv(slice(0, 40)), model="wdbc-rf4").get_json()["id"])
    counted = totals(admin)
    assert client.post(f"/api/v1/jobs/{job['id']}/purge").status_code == 200
    gone = change(totals(admin), counted)
    assert (gone["jobs"], gone["rows_scored"], gone["against"]["training_rows"]) == (
        1,
        40,
        40 - gone["against"]["rows"],
    )


def test_months_are_the_sites_time_zone_months(app, app_with, client, finished, people, sessions):
    """A job that finished at 00:30 on the first of a month in Tokyo finished the month before in UTC."""
    job = finished(post_upload(client, wdbc_csv(slice(0, 10)), model="wdbc-rf30").get_json()["id"])
    tokyo_web = app_with(time_zone="Asia/Tokyo")
    first = datetime.now(ZoneInfo("Asia/Tokyo")).replace(day=1, hour=0, minute=30, second=0, microsecond=0)
    in_utc = first.astimezone(UTC)
    assert f"{in_utc:%Y-%m}" != f"{first:%Y-%m}"

    def rows_in(web: Any, month: str) -> int:
        months = people["admin"].client(web).get("/api/v1/models/wdbc-rf30/use").get_json()["months"]
        return sum(m["rows_scored"] for m in months if m["month"] == month)

    def finished_at(moment: datetime) -> tuple[int, int]:
        with sessions() as session:
            session.execute(update(Job).where(Job.id == job["id"]).values(finished_at=moment))
            session.commit()
        return rows_in(app, f"{in_utc:%Y-%m}"), rows_in(tokyo_web, f"{first:%Y-%m}")

    utc_before, tokyo_before = finished_at(first)
    utc_after, tokyo_after = finished_at(first + timedelta(hours=10))  # 01:30 UTC on the same first
    assert utc_before - utc_after == 10  # it left UTC's previous month
    assert tokyo_before == tokyo_after >= 10  # and stayed in Tokyo's month


def test_only_an_administrator_sees_how_a_model_is_used(app, people):
    for role in ("clinician", "lab"):
        person = people[role]
        assert person.client(app).get("/api/v1/models/wdbc-rf4/use").status_code == 403
        browser = sign_in(app, person.email, person.password)
        assert browser.get("/models/wdbc-rf4/use").status_code == 403
        assert "How it has been used here" not in browser.get("/models/wdbc-rf4").get_data(as_text=True)
        assert "/use" not in browser.get("/models").get_data(as_text=True)
    admin = sign_in(app, people["admin"].email, people["admin"].password)
    assert 'href="/models/wdbc-rf4/use">How it has been used here</a>' in admin.get("/models/wdbc-rf4").get_data(
        as_text=True
    )
    listed = admin.get("/models").get_data(as_text=True)
    assert all(f'href="/models/{name}/use">{name} in use here</a>' in listed for name in ("wdbc-rf4", "wdbc-rf30"))
    assert people["admin"].client(app).get("/api/v1/models/no-such-model/use").status_code == 404
    assert admin.get("/models/no-such-model/use").status_code == 404
