"""Accounts as people and admins use them: password rules, tokens with names and expiries, the admin's changes and
the audit page, the CLI's equivalents, and bad input on every form answered beside its field, never with a 500."""

from __future__ import annotations

import csv
import html
import io
import re
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text

from shared import accounts
from testkit.support import make_person, run_cli
from tests.support import csrf, sign_in


@pytest.fixture
def lab(app, service_env):
    person = make_person(service_env, "lab")
    return person, sign_in(app, person.email, person.password)


@pytest.fixture(scope="module")
def admin(app, people):
    return sign_in(app, people["admin"].email, people["admin"].password)


def _field_error(page: str, field: str) -> str:
    """The message shown next to a field (its span `e-f-<field>`), or "" when the field has none."""
    match = re.search(rf'<span class="error" id="e-f-{field}"( hidden)?>([^<]*)</span>', page)
    assert match, f"no field {field} on the page"
    if match.group(1):
        return ""
    assert re.search(rf'id="f-{field}"[^>]*aria-invalid="true"', page, re.S), f"{field} is not marked invalid"
    return match.group(2)


@pytest.mark.parametrize(
    ("current", "new", "confirm", "field", "message"),
    [
        ("wrong current pw", "meadow lantern copper 42", None, "current", "not your current password"),
        (None, "short pw 1", None, "password", "at least 12 characters"),
        (None, "aaaaaaaaaaaaaaaa", None, "password", "too easy to guess"),
        (None, "password1234", None, "password", "too easy to guess"),
        (None, "{email}!x9", None, "password", "must not contain your email"),
        (None, "my CytoScore pw 77", None, "password", "must not contain “cytoscore”"),
        (None, "meadow lantern copper 42", "meadow lantern copper 43", "confirm", "differ"),
        (None, "{password}", None, "password", "different from the current"),
        (None, "x" * 300, None, "password", "at most 256"),
    ],
)
def test_changing_a_password_refuses_weak_ones_beside_the_field(lab, current, new, confirm, field, message):
    person, client = lab
    new = new.format(email=person.email, password=person.password)
    form = {"current": current or person.password, "password": new, "confirm": confirm or new}
    response = client.post("/account/password", data={**form, "csrf_token": csrf(client)})
    assert response.status_code == 422
    assert message in _field_error(response.get_data(as_text=True), field)
    assert sign_in(client.application, person.email, person.password)  # the old password still works


def test_a_changed_password_is_the_one_that_signs_in(app, lab):
    person, client = lab
    new = "meadow lantern copper 42"
    response = client.post("/account/password", data={"current": person.password, "password": new, "confirm": new,
                                                       "csrf_token": csrf(client)})  # fmt: skip
    assert response.status_code == 302
    refused = app.test_client()
    assert refused.post("/login", data={"email": person.email, "password": person.password,
                                        "csrf_token": csrf(refused, "/login")}).status_code == 401  # fmt: skip
    assert sign_in(app, person.email, new).get("/jobs").status_code == 200


def test_a_token_is_shown_once_works_until_revoked_and_lists_its_name_and_expiry(app, lab):
    _, client = lab
    made = client.post("/account/tokens", data={"name": "nightly import", "days": "7", "csrf_token": csrf(client)})
    assert made.status_code == 201
    plain = re.search(r'<code id="token-value">([^<]+)</code>', made.get_data(as_text=True)).group(1)
    api = app.test_client()
    api.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {plain}"
    assert api.get("/api/v1/models").status_code == 200
    listing = client.get("/account").get_data(as_text=True)
    assert plain not in listing and "nightly import" in listing and "token-active" in listing
    token_id = re.search(r"/account/tokens/(\d+)/revoke", listing).group(1)
    revoked = client.post(f"/account/tokens/{token_id}/revoke", data={"csrf_token": csrf(client)})
    assert revoked.status_code == 302
    assert api.get("/api/v1/models").status_code == 401
    assert "token-revoked" in client.get("/account").get_data(as_text=True)


def test_an_expired_token_is_refused(app, service_env, pg_url):
    person = make_person(service_env, "lab")
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE api_tokens SET created_at = now() - interval '2 days', expires_at = now() - "
                          "interval '1 second' FROM users WHERE users.id = user_id AND email = :e"),
                     {"e": person.email})  # fmt: skip
    engine.dispose()
    assert person.client(app).get("/api/v1/models").status_code == 401
    assert "expired" in run_cli(["tokens", "list", "--email", person.email], service_env).stdout


def _user_id(admin, email: str) -> str:
    page = admin.get("/admin/users").get_data(as_text=True)
    return re.search(r'/admin/users/(\d+)">' + re.escape(email), page).group(1)


def test_an_admin_adds_a_user_who_must_change_the_one_time_password(app, admin):
    email = f"new-{uuid.uuid4().hex[:6]}@example.org"
    added = admin.post("/admin/users", data={"email": email, "role": "lab", "csrf_token": csrf(admin, "/admin/users")})
    assert added.status_code == 201
    one_time = re.search(r'<code id="one-time-value">([^<]+)</code>', added.get_data(as_text=True)).group(1)
    newcomer = app.test_client()
    first = newcomer.post("/login", data={"email": email, "password": one_time, "csrf_token": csrf(newcomer, "/login")})
    assert first.headers["Location"].endswith("/account/password")
    assert newcomer.get("/jobs").headers["Location"].endswith("/account/password")
    stay = newcomer.post("/account/keep-alive", headers={"X-CSRFToken": csrf(newcomer, "/account/password")})
    assert stay.status_code == 200  # the change's page warns before an idle sign-out, and its button works
    assert (
        newcomer.post(
            "/api/v1/jobs", json={"cases": []}, headers={"X-CSRFToken": csrf(newcomer, "/account/password")}
        ).status_code
        == 403
    )
    new = "orchid tunnel basalt 19"
    changed = newcomer.post("/account/password", data={"current": one_time, "password": new, "confirm": new,
                                                       "csrf_token": csrf(newcomer, "/account/password")})  # fmt: skip
    assert changed.status_code == 302 and newcomer.get("/jobs").status_code == 200
    listing = admin.get("/admin/users").get_data(as_text=True)
    row = re.search(re.escape(email) + r"</a></td>(.*?)</tr>", listing, re.S).group(1)
    assert "<td>lab</td>" in row and "active" in row and "one-time" not in row


def test_an_admin_disables_enables_changes_the_role_resets_and_every_change_is_audited(app, admin, service_env):
    person = make_person(service_env, "clinician")
    browser = sign_in(app, person.email, person.password)
    user_id = _user_id(admin, person.email)
    token = csrf(admin, f"/admin/users/{user_id}")

    assert admin.post(f"/admin/users/{user_id}/role", data={"role": "lab", "csrf_token": token}).status_code == 302
    assert "<dd>lab</dd>" in admin.get(f"/admin/users/{user_id}").get_data(as_text=True)
    assert browser.get("/jobs").status_code == 200  # a new role takes effect at the next request, no sign-in
    assert admin.post(f"/admin/users/{user_id}/disable", data={"csrf_token": token}).status_code == 302
    assert browser.get("/jobs").status_code == 302 and person.client(app).get("/api/v1/models").status_code == 401
    refused = app.test_client()
    assert refused.post("/login", data={"email": person.email, "password": person.password,
                                        "csrf_token": csrf(refused, "/login")}).status_code == 401  # fmt: skip
    assert admin.post(f"/admin/users/{user_id}/enable", data={"csrf_token": token}).status_code == 302
    assert sign_in(app, person.email, person.password)
    reset = admin.post(f"/admin/users/{user_id}/reset-password", data={"csrf_token": token})
    one_time = re.search(r'<code id="one-time-value">([^<]+)</code>', reset.get_data(as_text=True)).group(1)
    again = app.test_client()
    first = again.post(
        "/login", data={"email": person.email, "password": one_time, "csrf_token": csrf(again, "/login")}
    )
    assert first.headers["Location"].endswith("/account/password")

    trail = admin.get("/admin/audit", query_string={"user": person.email}).get_data(as_text=True)
    for action in ("user.role", "user.disable", "user.enable", "user.reset_password"):
        assert f"<td>{action}</td>" in trail, action
    cli = run_cli(["audit", "--limit", "1000"], service_env).stdout
    assert re.search(r"user\.role\s+-\s+" + re.escape(person.email) + r"\s+clinician to lab", cli)


def test_the_audit_page_pages_back_with_its_filters_and_returns_to_the_newest(lab, admin, sessions):
    person, _ = lab
    with sessions.begin() as session:
        for n in range(120):
            accounts.audit(session, "token.add", actor=person.email, target=person.email, detail=f"token {n}")

    def details(path: str, **query: str) -> tuple[list[str], str]:
        page = admin.get(path, query_string=query or None).get_data(as_text=True)
        return re.findall(r'<td class="filename">(token \d+)</td>', page), page

    newest, first = details("/admin/audit", user=person.email, action="token.add")
    assert newest == [f"token {n}" for n in range(119, 19, -1)] and 'id="first-page"' not in first
    older = re.search(r'<a href="([^"]+)" id="next-page" rel="next">Older events', first)
    assert older, first
    rest, second = details(html.unescape(older.group(1)))
    assert rest == [f"token {n}" for n in range(19, -1, -1)] and 'id="next-page"' not in second
    back = re.search(r'<a href="([^"]+)" id="first-page">Newest events', second)
    assert back, second
    assert details(html.unescape(back.group(1)))[0] == newest  # the filters kept both ways


def test_the_last_admin_can_be_neither_disabled_nor_demoted(app, admin, people, pg_url):
    engine = create_engine(pg_url)
    me = _user_id(admin, people["admin"].email)
    with engine.begin() as conn:  # for this test, the shared admin is the only active one
        others = conn.execute(text("UPDATE users SET active = false WHERE role = 'admin' AND active AND id <> :me "
                                   "RETURNING id"), {"me": int(me)}).scalars().all()  # fmt: skip
    try:
        token = csrf(admin, f"/admin/users/{me}")
        demoted = admin.post(f"/admin/users/{me}/role", data={"role": "lab", "csrf_token": token})
        assert demoted.status_code == 409 and "last active admin" in demoted.get_data(as_text=True)
        disabled = admin.post(f"/admin/users/{me}/disable", data={"csrf_token": token})
        assert disabled.status_code == 409 and "your own account" in disabled.get_data(as_text=True)
        assert admin.get("/admin/users").status_code == 200
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE users SET active = true WHERE id = ANY(:ids)"), {"ids": list(others)})
        engine.dispose()


def test_the_audit_page_filters_and_exports_what_it_shows(app, admin, people, service_env):
    person = make_person(service_env, "lab")
    sign_in(app, person.email, person.password)
    page = admin.get("/admin/audit", query_string={"user": person.email, "action": "login"}).get_data(as_text=True)
    rows = re.findall(r"<tr>\s*<td>", page)
    assert len(rows) == 1 and person.email in page
    export = admin.get("/admin/audit.csv", query_string={"user": person.email})
    assert export.status_code == 200 and export.mimetype == "text/csv"
    lines = list(csv.DictReader(io.StringIO(export.get_data(as_text=True))))
    assert {line["action"] for line in lines} == {"user.add", "token.add", "login"}
    assert all(person.email in (line["actor"], line["target"]) for line in lines)
    assert "audit.export" in admin.get("/admin/audit", query_string={"action": "audit.export"}).get_data(as_text=True)


def test_a_typed_formula_is_neutralised_in_the_audit_export(app, admin):
    client = app.test_client()
    client.post("/login", data={"email": "=HYPERLINK(1)@x.org", "password": "p", "csrf_token": csrf(client, "/login")})
    export = admin.get("/admin/audit.csv", query_string={"action": "login.failed"}).get_data(as_text=True)
    assert "'=hyperlink(1)@x.org" in export and "\n=" not in export and ",=" not in export


HOSTILE = ["", " ", "\x00", "a\x00b@x.org", "<script>alert(1)</script>", "x" * 20_000, "é" * 300, "\u202e\ufeff", "%00"]


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_bad_input_on_every_form_is_refused_beside_its_field_never_with_a_500(app, admin, lab, value):
    _, person = lab
    login = app.test_client()
    answers = [
        login.post("/login", data={"email": value, "password": value, "csrf_token": csrf(login, "/login")}),
        login.post(
            "/login", data={"email": "someone@example.org", "password": value, "csrf_token": csrf(login, "/login")}
        ),
        person.post(
            "/account/password",
            data={"current": value, "password": value, "confirm": value, "csrf_token": csrf(person)},
        ),
        person.post("/account/tokens", data={"name": value, "days": value, "csrf_token": csrf(person)}),
        admin.post("/admin/users", data={"email": value, "role": value, "csrf_token": csrf(admin, "/admin/users")}),
        admin.get(
            "/admin/audit",
            query_string={
                "user": value,
                "job": value,
                "since": value,
                "until": value,
                "action": value,
                "before": value,
            },
        ),
        admin.get("/admin/audit.csv", query_string={"job": value, "since": value}),
        admin.get(f"/admin/users/{value or 0}"),
    ]
    codes = [a.status_code for a in answers]
    assert all(code < 500 for code in codes), codes
    assert codes[0] in (401, 422) and codes[1] in (401, 422) and codes[2] == 422 and codes[3] == 422
    assert codes[4] == 422
    assert "<script>alert(1)</script>" not in "".join(a.get_data(as_text=True) for a in answers)


def test_the_login_page_never_tells_whether_an_email_has_an_account(app, people):
    client = app.test_client()
    token = csrf(client, "/login")
    known = client.post("/login", data={"email": people["lab"].email, "password": "nope", "csrf_token": token})
    unknown = client.post("/login", data={"email": "ghost@example.org", "password": "nope", "csrf_token": token})
    assert known.status_code == unknown.status_code == 401

    def message(page):
        return re.search(r'<p class="problems" role="alert">(.*?)</p>', page.get_data(as_text=True)).group(1)

    assert message(known) == message(unknown)


def test_the_cli_manages_users_and_tokens(service_env, app):
    email = f"cli-{uuid.uuid4().hex[:6]}@example.org"
    one_time = run_cli(["users", "add", email, "--role", "clinician", "--one-time"], service_env).stdout.strip()
    assert len(one_time) >= 12
    run_cli(["users", "set-role", email, "lab"], service_env)
    run_cli(["users", "disable", email], service_env)
    row = next(line for line in run_cli(["users", "list"], service_env).stdout.splitlines() if email in line)
    assert re.search(r"\blab\s+disabled", row), row
    run_cli(["users", "enable", email], service_env)
    new = run_cli(["users", "reset-password", email], service_env).stdout.strip()
    assert new != one_time and "one-time" in next(
        line for line in run_cli(["users", "list"], service_env).stdout.splitlines() if email in line
    )
    token = run_cli(["tokens", "add", email, "--name", "cli check", "--days", "30"], service_env).stdout.strip()
    api = app.test_client()
    api.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    assert api.get("/api/v1/models").status_code == 200
    listed = run_cli(["tokens", "list", "--email", email], service_env).stdout
    token_id = re.search(r"^(\d+)\s+" + re.escape(email) + r"\s+active\s+\S+\s+.+\s+cli check$", listed, re.M)
    assert token_id, listed
    # Times as the pages show them: in the site's zone, with its abbreviation (India: 5 h 30 ahead of UTC).
    in_india = {**service_env, "CYTOSCORE_TIME_ZONE": "Asia/Kolkata"}
    now = datetime.now(ZoneInfo("Asia/Kolkata"))
    listed_there = run_cli(["tokens", "list", "--email", email], in_india).stdout
    last_used = re.search(r"(\d{4}-\d\d-\d\d \d\d:\d\d) IST", listed_there)
    assert last_used, listed_there
    assert abs(datetime.strptime(last_used.group(1), "%Y-%m-%d %H:%M") - now.replace(tzinfo=None)) < timedelta(
        minutes=2), listed_there  # fmt: skip
    audited = run_cli(["audit", "--limit", "1"], in_india).stdout
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d IST  cli ", audited), audited
    run_cli(["tokens", "revoke", token_id.group(1)], service_env)
    assert api.get("/api/v1/models").status_code == 401
    with pytest.raises(AssertionError, match="from 1 to 365 days"):
        run_cli(["tokens", "add", email, "--days", "400"], service_env)
    with pytest.raises(AssertionError, match="already has an account"):
        run_cli(["users", "add", email, "--role", "lab", "--one-time"], service_env)


def _activity(client, path: str = "/account/activity") -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    """The rows of the activity page, each as its columns' texts."""
    page = client.get(path).get_data(as_text=True)
    head = re.findall(r'<th scope="col">([^<]+)</th>', page)
    rows = re.findall(r"<tr[^>]*>\s*(<td>.*?)</tr>", page, re.S)
    return [dict(zip(head, (re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td>(.*?)</td>", row, re.S)),
                     strict=True)) for row in rows]  # fmt: skip


def test_a_person_reads_their_sign_ins_failures_and_changes_by_whoever_made_them(app, lab, admin, people):
    person, client = lab
    stranger = app.test_client()
    stranger.environ_base["REMOTE_ADDR"] = "203.0.113.77"
    refused = stranger.post("/login", data={"email": person.email, "password": "guessing",
                                            "csrf_token": csrf(stranger, "/login")})  # fmt: skip
    assert refused.status_code == 401
    client.post("/account/tokens", data={"name": "import", "days": "7", "csrf_token": csrf(client)})
    user_id = _user_id(admin, person.email)
    admin.post(f"/admin/users/{user_id}/role", data={"role": "clinician", "csrf_token": csrf(admin, "/admin/users")})

    assert "/account/activity" in client.get("/account").get_data(as_text=True)
    rows = [(r["What"], r["From"], r["By"]) for r in _activity(client)]
    assert rows == [
        ("Role changed", "127.0.0.1", people["admin"].email),
        ("API token made", "127.0.0.1", "you"),
        ("Failed sign-in", "203.0.113.77", "you"),
        ("Signed in", "127.0.0.1", "you"),
        ("API token made", "–", "cli"),  # make_person: `cytoscore users add`, then `tokens add`
        ("Account made", "–", "cli"),
    ]
    assert _activity(client)[0]["Details"] == "lab to clinician"
    assert "Role changed" not in [r["What"] for r in _activity(admin)]  # the admin's changes are the person's


def test_a_long_activity_reads_a_page_at_a_time(lab, sessions):
    person, client = lab
    with sessions.begin() as session:
        for n in range(120):
            accounts.audit(session, "token.add", actor=person.email, target=person.email, detail=f"token {n}")
    first = client.get("/account/activity").get_data(as_text=True)
    assert "100 a page" in first and 'id="first-page"' not in first
    newest = _activity(client)
    assert len(newest) == 100 and newest[0]["Details"] == "token 119"
    older = re.search(r'<a href="([^"]+)" id="next-page" rel="next">Older activity', first)
    assert older, first
    rest = _activity(client, older.group(1))
    assert [r["Details"] for r in newest + rest][:120] == [f"token {n}" for n in range(119, -1, -1)]
    assert [r["What"] for r in rest[-3:]] == ["Signed in", "API token made", "Account made"]
    second = client.get(older.group(1)).get_data(as_text=True)
    assert 'id="first-page"' in second and 'id="next-page"' not in second
    for odd in ("99999999999999999999999", "-5", "abc"):  # not an event's id: the newest page
        assert _activity(client, f"/account/activity?before={odd}") == newest


def test_a_sign_in_tells_of_the_failed_ones_since_the_last(app, service_env):
    person = make_person(service_env, "lab")
    stranger = app.test_client()
    stranger.environ_base["REMOTE_ADDR"] = "203.0.113.78"
    for _ in range(2):
        stranger.post("/login", data={"email": person.email, "password": "guessing",
                                      "csrf_token": csrf(stranger, "/login")})  # fmt: skip
    told = sign_in(app, person.email, person.password).get("/jobs").get_data(as_text=True)
    assert re.search(r'<p class="flash" role="status">2 failed sign-ins to your account since your last sign-in, the '
                     r"last at \d{4}-\d\d-\d\d \d\d:\d\d UTC from 203.0.113.78", told)  # fmt: skip
    again = sign_in(app, person.email, person.password).get("/jobs").get_data(as_text=True)
    assert "failed sign-in" not in again  # told once: they are before this sign-in now


def test_a_read_only_token_reads_jobs_and_results_and_may_change_nothing(app, lab, service_env, worker):
    person, client = lab
    full = person.client(app)
    job = full.post(
        "/api/v1/jobs?wait=30",
        json={
            "cases": [
                {
                    "id": "r1",
                    "radius_mean": 14.1,
                    "texture_mean": 19.3,
                    "smoothness_mean": 0.096,
                    "compactness_mean": 0.104,
                }
            ]
        },
    )
    assert job.status_code == 201, job.get_json()
    job_id = job.get_json()["id"]
    made = client.post("/account/tokens", data={"name": "results download", "days": "30", "may": "read",
                                                "csrf_token": csrf(client)})  # fmt: skip
    plain = re.search(r'<code id="token-value">([^<]+)</code>', made.get_data(as_text=True)).group(1)
    reader = app.test_client()
    reader.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {plain}"
    assert reader.get(f"/api/v1/jobs/{job_id}").get_json()["status"] == "succeeded"
    assert "r1" in reader.get(f"/api/v1/jobs/{job_id}/results?format=csv").get_data(as_text=True)
    assert reader.get("/api/v1/jobs").status_code == 200
    for method, path, body in [
        ("post", "/api/v1/jobs", {"cases": [{"id": "r2", "radius_mean": 14.1, "texture_mean": 19.3,
                                             "smoothness_mean": 0.096, "compactness_mean": 0.104}]}),
        ("post", f"/api/v1/jobs/{job_id}/purge", None),
        ("post", f"/api/v1/jobs/{job_id}/rescore", {"model": "wdbc-rf30"}),
        ("post", "/api/v1/webhooks", {"url": "https://example.org/hook"}),
    ]:  # fmt: skip
        refused = getattr(reader, method)(path, json=body)
        assert refused.status_code == 403, (path, refused.status_code)
        assert "this token may only read" in refused.get_json()["error"]
    assert full.get(f"/api/v1/jobs/{job_id}/results?format=csv").status_code == 200  # nothing was removed
    listing = client.get("/account").get_data(as_text=True)
    assert re.search(r"results download</td>.*?<td>read only</td>", listing, re.S)
    listed = run_cli(["tokens", "list", "--email", person.email], service_env).stdout
    assert re.search(r"\sread\s+results download$", listed, re.M), listed


def test_the_cli_makes_a_read_only_token(app, service_env):
    person = make_person(service_env, "lab")
    plain = run_cli(["tokens", "add", person.email, "--read-only", "--name", "nightly pull"], service_env).stdout
    reader = app.test_client()
    reader.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {plain.strip()}"
    assert reader.get("/api/v1/models").status_code == 200
    assert reader.post("/api/v1/jobs", json={"cases": []}).status_code == 403
    assert "“nightly pull”, read only" in run_cli(["audit", "--limit", "20"], service_env).stdout


def _session_left(client) -> int:  # type: ignore[no-untyped-def]
    return int(re.search(r'data-session-left="(\d+)"', client.get("/account").get_data(as_text=True)).group(1))


def test_stay_signed_in_restarts_the_idle_clock_and_an_ended_session_stays_ended(app, lab, pg_url):
    person, client = lab
    engine = create_engine(pg_url)

    def last_seen(seconds_ago: int) -> None:
        with engine.begin() as conn:
            conn.execute(text("UPDATE user_sessions SET last_seen_at = now() - make_interval(secs => :s) "
                              "FROM users WHERE users.id = user_id AND email = :e AND ended_at IS NULL"),
                         {"s": seconds_ago, "e": person.email})  # fmt: skip

    # The server counts a use at most once a minute: 50 seconds after the last, a page leaves 29 min 10 s.
    last_seen(50)
    assert 1740 <= _session_left(client) <= 1750
    kept = client.post("/account/keep-alive", headers={"X-CSRFToken": csrf(client)})
    assert kept.status_code == 200 and kept.get_json() == {"seconds_left": 1800}
    assert _session_left(client) >= 1795  # counted from the click, not from the last counted use
    assert person.client(app).post("/account/keep-alive").status_code == 403  # a token has no session to keep
    last_seen(31 * 60)
    late = client.post("/account/keep-alive", headers={"X-CSRFToken": csrf(app.test_client(), "/login")})
    assert late.status_code == 302 and late.headers["Location"].startswith("/login")
    assert client.get("/jobs").headers["Location"].startswith("/login")  # ended, and not brought back
    engine.dispose()


def test_an_admin_finds_who_has_not_turned_on_two_step_sign_in(app, admin, service_env):
    tag = uuid.uuid4().hex[:6]
    lab_person = make_person(service_env, "lab", f"find-{tag}-lab@example.org")
    clinician = make_person(service_env, "clinician", f"find-{tag}-clinician@example.org")
    run_cli(["users", "disable", clinician.email], service_env)

    def emails(query: str) -> list[str]:
        page = admin.get(f"/admin/users?{query}").get_data(as_text=True)
        return re.findall(r'/admin/users/\d+">([^<]+)</a>', page)

    assert emails(f"q=find-{tag}") == [clinician.email, lab_person.email]
    assert emails(f"q=FIND-{tag}&role=lab") == [lab_person.email]
    assert emails(f"q=find-{tag}&status=disabled") == [clinician.email]
    assert emails(f"q=find-{tag}&two_step=on") == []
    assert emails(f"q=find-{tag}&two_step=off") == [clinician.email, lab_person.email]
    assert "2 accounts match" in admin.get(f"/admin/users?q=find-{tag}").get_data(as_text=True)
