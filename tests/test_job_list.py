"""Any job found again: the jobs list searched by file name and case id, filtered, and paged through thousands."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import text

from api import job_search
from testkit.support import jittered_csv, make_person
from tests.support import post_upload, sign_in

# Jobs written straight into PostgreSQL, on days no test creates jobs on: three to a second, so many share a time.
MANY = (
    "INSERT INTO jobs (id, kind, status, model_name, model_version, model_sha256, input_filename, input_sha256, "
    "input_format, rows_total, rows_scored, rows_rejected, attempts, created_at, owner_id, enqueued_at) "
    "SELECT gen_random_uuid(), 'upload', :status, :model, '1', 'h', 'file-' || g || '.csv', 'h', 'csv', 1, 1, 0, 1, "
    "CAST(:day AS timestamptz) + (g / 3) * interval '1 second', (SELECT id FROM users WHERE email = :owner), "
    # sent, as far as the reconciler knows: the session's worker must not take a queued one while the test looks
    "now() + interval '1 day' "
    "FROM generate_series(1, :n) AS g RETURNING id"
)


@pytest.fixture
def stored(sessions):
    """Insert jobs straight into PostgreSQL (`stored(n, owner_email, day=…, status=…, model=…)`), removed after."""
    made: list[uuid.UUID] = []

    def insert(n: int, owner: str, day: str, status: str = "succeeded", model: str = "wdbc-rf4") -> set[str]:
        with sessions.begin() as session:
            at = day if "T" in day else f"{day}T00:00:00Z"
            args = {"n": n, "owner": owner, "day": at, "status": status, "model": model}
            ids = list(session.scalars(text(MANY), args))
        made.extend(ids)
        return {str(i) for i in ids}

    yield insert
    with sessions.begin() as session:
        session.execute(text("DELETE FROM jobs WHERE id = ANY(:ids)"), {"ids": made})


def _pages(client, url: str) -> list[list[dict]]:
    """Every page of the list from `url`, following `next` to the end."""
    pages: list[list[dict]] = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        pages.append(body["jobs"])
        url = body["next"]
        assert len(pages) < 1000, "the list never ended"
    return pages


def _ids(client, url: str) -> list[str]:
    return [job["id"] for page in _pages(client, url) for job in page]


def test_ten_thousand_jobs_page_through_with_no_job_twice_and_none_missed(client, people, app, stored, sessions):
    lab = people["lab"]
    made = stored(10_000, lab.email, day="2020-01-01")
    url = "/api/v1/jobs?from=2020-01-01&to=2020-01-01&limit=200"
    first = client.get(url).get_json()
    # A job created while someone pages shifts nothing: later pages go on from where the last one ended.
    newer = stored(1, lab.email, day="2020-01-01T23:59:59Z")  # the newest of the day, so it would lead page 1
    rest = _ids(client, first["next"])
    seen = [job["id"] for job in first["jobs"]] + rest
    assert len(first["jobs"]) == 200 and len(seen) == 10_000
    assert len(set(seen)) == len(seen) and set(seen) == made and not newer & set(seen)
    created = [job["created_at"] for job in first["jobs"]]
    assert created == sorted(created, reverse=True)  # newest first
    # An admin filtering by the owner pages through the same jobs, each with its owner.
    admin = people["admin"].client(app)
    pages = _pages(admin, f"/api/v1/jobs?from=2020-01-01&to=2020-01-01&limit=200&owner={lab.email}")
    assert {job["owner"] for page in pages for job in page} == {lab.email}
    assert [job["id"] for page in pages for job in page] == sorted(newer) + seen
    # The page of a job far down the list is read from the index, not by sorting every job.
    with sessions.begin() as session:
        session.execute(text("ANALYZE jobs"))
        last = job_search.JobFilter(after=parse_qs(urlsplit(first["next"]).query)["after"][0])
        for viewer in (job_search.Viewer(0, is_admin=False), job_search.Viewer(0, is_admin=True)):
            compiled = job_search.query(last, viewer).compile(session.bind, compile_kwargs={"literal_binds": True})
            plan = "\n".join(session.scalars(text(f"EXPLAIN {compiled}")))
            index = "ix_jobs_owner_id_created_at_id" if not viewer.is_admin else "ix_jobs_created_at_id"
            assert index in plan and "Sort" not in plan, plan


def test_the_page_pages_with_older_and_newest_links(people, app, stored):
    lab = people["lab"].client(app)
    made = stored(120, people["lab"].email, day="2020-02-01")
    page = lab.get("/jobs?from=2020-02-01&to=2020-02-01").get_data(as_text=True)
    assert page.count('<td class="filename"') == 50 and 'id="next-page"' in page and 'id="first-page"' not in page
    older = page.split('id="next-page"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
    second = lab.get(older).get_data(as_text=True)
    assert second.count('<td class="filename"') == 50 and 'id="first-page"' in second
    names = {f"file-{n}.csv" for n in range(1, 121)}
    shown = {name for name in names if f">{name}<" in page or f">{name}<" in second}
    assert len(shown) == 100 and len(made) == 120


def test_a_job_is_found_by_part_of_its_file_name_or_by_one_of_its_case_ids(client, finished):
    marker = uuid.uuid4().hex[:8]
    job_id = post_upload(client, jittered_csv(5), filename=f"Ward 7 {marker}.csv").get_json()["id"]
    assert finished(job_id)["status"] == "succeeded"
    single = client.post("/api/v1/jobs?wait=30", json={"cases": [{"case_id": f"SC-{marker}", **CASE}]}).get_json()
    assert single["status"] == "succeeded"

    def found(q: str) -> list[str]:
        return _ids(client, f"/api/v1/jobs?q={q}")

    assert found(f"ward 7 {marker.upper()}") == [job_id]  # any case
    assert job_id in found("J3")  # a case id of one of its rows, exactly
    assert found(f"SC-{marker}") == [single["id"]]
    assert found(f"SC-{marker[:4]}") == []  # a case id matches whole, not in part
    assert found("%") == [] and found("_") == []  # a search is text, not a pattern
    listed = client.get(f"/api/v1/jobs?q=SC-{marker}").get_json()["jobs"]
    assert listed[0]["case_id"] == f"SC-{marker}" and "owner" not in listed[0]  # a single case shows its case id
    page = client.get(f"/jobs?q=SC-{marker}").get_data(as_text=True)
    assert f'<span class="case-id">SC-{marker}</span>' in page


CASE = {"radius_mean": 14.1, "texture_mean": 19.3, "smoothness_mean": 0.096, "compactness_mean": 0.104}


def test_the_list_filters_by_status_model_and_days(client, people, stored):
    email = people["lab"].email
    failed = stored(3, email, day="2020-03-02", status="failed")
    queued = stored(2, email, day="2020-03-03", status="queued", model="wdbc-rf30")
    earlier = stored(4, email, day="2020-03-01")
    days = "from=2020-03-01&to=2020-03-03"
    assert set(_ids(client, f"/api/v1/jobs?{days}&status=failed")) == failed
    assert set(_ids(client, f"/api/v1/jobs?{days}&model=wdbc-rf30")) == queued
    assert set(_ids(client, "/api/v1/jobs?from=2020-03-01&to=2020-03-01")) == earlier  # `to` takes the whole day
    assert set(_ids(client, "/api/v1/jobs?from=2020-03-02&to=2020-03-03")) == failed | queued
    page = client.get(f"/jobs?{days}&status=queued").get_data(as_text=True)
    assert page.count('<td class="filename"') == 2 and '<option value="queued" selected>' in page


def test_an_admin_sees_each_jobs_owner_and_no_one_else_sees_anothers_jobs(app, people, stored):
    lab, clinician, admin = (people[r] for r in ("lab", "clinician", "admin"))
    labs = stored(2, lab.email, day="2020-04-01")
    clinicians = stored(1, clinician.email, day="2020-04-01")
    day = "from=2020-04-01&to=2020-04-01"
    listed = admin.client(app).get(f"/api/v1/jobs?{day}").get_json()["jobs"]
    assert {(j["id"], j["owner"]) for j in listed} == {(i, lab.email) for i in labs} | {
        (i, clinician.email) for i in clinicians
    }
    assert set(_ids(admin.client(app), f"/api/v1/jobs?{day}&owner={clinician.email.upper()}")) == clinicians
    page = admin.client(app).get(f"/jobs?{day}").get_data(as_text=True)
    assert page.count(f'<td class="owner" data-label="Owner">{lab.email}</td>') == 2
    # Everyone else sees their own jobs only, and may not ask for someone else's.
    assert set(_ids(lab.client(app), f"/api/v1/jobs?{day}")) == labs
    assert set(_ids(clinician.client(app), f"/api/v1/jobs?{day}")) == clinicians
    refused = lab.client(app).get(f"/api/v1/jobs?owner={clinician.email}")
    assert refused.status_code == 400 and "only an admin" in refused.get_json()["problems"][0]
    assert 'class="owner"' not in lab.client(app).get(f"/jobs?{day}").get_data(as_text=True)


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("status=done", "status 'done': must be one of queued, running, succeeded, failed, needs_review, cancelled"),
        ("from=03/01/2020", "from '03/01/2020': must be a date written YYYY-MM-DD"),
        ("from=2020-03-02&to=2020-03-01", "from 2020-03-02 is after to 2020-03-01"),
        ("limit=0", "limit '0': must be a whole number from 1 to 200"),
        ("after=not-a-cursor", "after 'not-a-cursor': not a position this list gave; start again from the first page"),
    ],
)
def test_a_list_argument_it_does_not_take_is_refused_with_the_reason(client, query, problem):
    response = client.get(f"/api/v1/jobs?{query}")
    assert response.status_code == 400 and response.get_json()["problems"] == [problem]
    page = client.get(f"/jobs?{query}")
    assert page.status_code == 400 and problem.replace("'", "&#39;") in page.get_data(as_text=True)


def test_a_site_reads_its_own_time_and_days_and_the_api_keeps_utc(app_with, app, service_env, stored):
    berlin = app_with(time_zone="Europe/Berlin")
    person = make_person(service_env, "lab")
    (job,) = stored(1, person.email, day="2031-01-15T23:30:00Z")  # half past midnight on the 16th in Berlin
    page = sign_in(berlin, person.email, person.password)
    assert "2031-01-16 00:30:00 CET" in page.get(f"/jobs/{job}").get_data(as_text=True)
    listed = page.get("/jobs").get_data(as_text=True)
    assert "2031-01-16 00:30:00 CET" in listed and "Times are UTC" not in listed
    api = person.client(berlin)
    assert _ids(api, "/api/v1/jobs?from=2031-01-16&to=2031-01-16") == [job]
    assert _ids(api, "/api/v1/jobs?from=2031-01-15&to=2031-01-15") == []
    assert api.get(f"/api/v1/jobs/{job}").get_json()["created_at"] == "2031-01-15T23:30:00+00:00"
    assert "2031-01-16 00:30:00 CET" in page.get("/jobs?from=2031-01-16&to=2031-01-16").get_data(as_text=True)
    at_utc = person.client(app)  # the same job, on a site left at UTC
    assert _ids(at_utc, "/api/v1/jobs?from=2031-01-15&to=2031-01-15") == [job]
    assert "2031-01-15 23:30:00 UTC" in sign_in(app, person.email, person.password).get(f"/jobs/{job}").get_data(
        as_text=True
    )


def test_a_time_zone_that_does_not_exist_stops_the_start(settings):
    with pytest.raises(ValueError, match="CYTOSCORE_TIME_ZONE 'Mars/Olympus': not a time zone"):
        settings.model_validate({**settings.model_dump(), "time_zone": "Mars/Olympus"})
