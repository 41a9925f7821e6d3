"""Locked doors: who may see and do what, CSRF, headers, rate limits, audit, retention, the model file."""

from __future__ import annotations

import pickle
import re
import shutil
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from shared.features import FEATURES
from testkit.support import ServiceProcess, fresh_queue, make_person, run_cli, wdbc, wdbc_csv
from tests.support import csrf, post_upload, session_cookie, sign_in, with_cookie

RF4 = ["radius_mean", "texture_mean", "smoothness_mean", "compactness_mean"]


def _case(i: int = 0) -> dict:
    X, _ = wdbc()
    return {"case_id": f"s{i}", **{f: float(X[i, FEATURES.index(f)]) for f in RF4}}


@pytest.fixture(scope="module")
def owned_jobs(app, worker, people):
    """A finished job of the clinician's (a single case) and of the lab's (an upload)."""
    from tests.support import wait_for_job

    clinician, lab = people["clinician"].client(app), people["lab"].client(app)
    mine = clinician.post("/api/v1/jobs", json={"cases": [_case()]}).get_json()["id"]
    theirs = post_upload(lab, wdbc_csv(slice(0, 5))).get_json()["id"]
    assert wait_for_job(clinician, mine)["status"] == "succeeded"
    assert wait_for_job(lab, theirs)["status"] == "succeeded"
    return {"clinician": mine, "lab": theirs}


JOB_DOORS = [
    "/api/v1/jobs/{id}",
    "/api/v1/jobs/{id}?wait=1",
    "/api/v1/jobs/{id}/results",
    "/api/v1/jobs/{id}/results?format=csv",
    "/api/v1/jobs/{id}/results?format=xlsx",
    "/api/v1/jobs/{id}/errors",
    "/jobs/{id}",
]


@pytest.mark.parametrize("door", JOB_DOORS)
@pytest.mark.parametrize("who", [None, "clinician", "lab", "admin"])
@pytest.mark.parametrize("owner", ["clinician", "lab"])
def test_access_matrix_for_job_doors(app, people, owned_jobs, door, who, owner):
    client = people[who].client(app) if who else app.test_client()
    response = client.get(door.format(id=owned_jobs[owner]))
    if who is None:
        expected = 401 if door.startswith("/api/") else 302
    elif who == owner or who == "admin":
        expected = 200
    else:
        expected = 404  # exactly like a job that does not exist
    assert response.status_code == expected, response.get_data(as_text=True)[:300]
    if who is None and expected == 302:
        assert "/login" in response.headers["Location"]


@pytest.mark.parametrize(
    ("door", "anonymous"),
    [
        ("/", 302),
        ("/jobs", 302),
        ("/models", 302),
        ("/models/wdbc-rf4", 302),
        ("/api/v1/models", 401),
        ("/api/v1/models/wdbc-rf4/template", 401),
    ],
)
@pytest.mark.parametrize("who", [None, "clinician", "lab", "admin"])
def test_access_matrix_for_shared_doors(app, people, door, anonymous, who):
    client = people[who].client(app) if who else app.test_client()
    assert client.get(door).status_code == (anonymous if who is None else 200)


@pytest.mark.parametrize(
    ("door", "anonymous"),
    [
        ("/models/wdbc-rf4/use", 302),
        ("/api/v1/models/wdbc-rf4/use", 401),
        ("/api/v1/models/wdbc-rf4/use?format=csv", 401),
    ],
)
@pytest.mark.parametrize("who", [None, "clinician", "lab", "admin"])
def test_access_matrix_for_a_models_use_here(app, people, door, anonymous, who):
    """Counts over everybody's jobs: administrators only."""
    client = people[who].client(app) if who else app.test_client()
    assert client.get(door).status_code == (anonymous if who is None else 200 if who == "admin" else 403)


def test_the_jobs_list_shows_only_your_own_jobs_and_admins_all(app, people, owned_jobs):
    pages = {who: people[who].client(app).get("/jobs").get_data(as_text=True) for who in ("clinician", "lab", "admin")}
    mine, theirs = owned_jobs["clinician"][:8], owned_jobs["lab"][:8]
    assert mine in pages["clinician"] and theirs not in pages["clinician"]
    assert theirs in pages["lab"] and mine not in pages["lab"]
    assert mine in pages["admin"] and theirs in pages["admin"]


@pytest.mark.parametrize(("who", "expected"), [(None, 401), ("clinician", 403), ("lab", 202), ("admin", 202)])
def test_only_lab_and_admin_may_upload(app, worker, people, who, expected):
    client = people[who].client(app) if who else app.test_client()
    assert post_upload(client, wdbc_csv(slice(0, 3))).status_code == expected


@pytest.mark.parametrize(("who", "expected"), [(None, 401), ("clinician", 202), ("lab", 202), ("admin", 202)])
def test_every_role_may_score_a_single_case(app, worker, people, who, expected):
    client = people[who].client(app) if who else app.test_client()
    assert client.post("/api/v1/jobs", json={"cases": [_case()]}).status_code == expected


def _login(app, person) -> tuple:
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/login", data={"email": person.email, "password": person.password, "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return client, response


def _csrf(client, path: str = "/") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def test_a_browser_post_needs_the_csrf_token(app, worker, people):
    client, _ = _login(app, people["clinician"])
    form = {"model": "wdbc-rf4", **{f: str(v) for f, v in _case().items() if f != "case_id"}}
    assert client.post("/cases", data=form).status_code == 400
    assert client.post("/cases", data={**form, "csrf_token": "forged"}).status_code == 400
    assert client.post("/api/v1/jobs", json={"cases": [_case()]}).status_code == 400  # JSON from a session, too
    assert client.post("/cases", data={**form, "csrf_token": _csrf(client)}).status_code == 303


def test_login_renews_the_session_and_sets_safe_cookie_flags(app, app_with, people):
    client = app.test_client()
    client.get("/login")
    before = client.get_cookie("session")
    _, response = _login(app, people["lab"])
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert before is None or before.value not in cookie
    page = app_with(secure_cookies=True).test_client().get("/login", base_url="https://localhost")
    assert "Secure" in page.headers["Set-Cookie"]


def test_logout_ends_the_session(app, people):
    client, _ = _login(app, people["lab"])
    assert client.get("/jobs").status_code == 200
    assert client.post("/logout", data={"csrf_token": _csrf(client, "/jobs")}).status_code == 302
    assert client.get("/jobs").status_code == 302


def test_login_brute_force_answers_429(app, service_env):
    target = make_person(service_env, "admin")  # its own account: the back-off would hold up others' sign-ins
    client = app.test_client()
    token = _csrf(client, "/login")
    codes = [
        client.post("/login", data={"email": target.email, "password": "wrong", "csrf_token": token}).status_code
        for _ in range(12)
    ]
    assert codes[0] == 401 and codes[-1] == 429


def test_a_disabled_user_and_a_revoked_token_are_refused_at_once(app, service_env):
    person = make_person(service_env, "lab")
    client, _ = _login(app, person)
    api = person.client(app)
    assert client.get("/jobs").status_code == 200 and api.get("/api/v1/models").status_code == 200
    run_cli(["users", "disable", person.email], service_env)
    assert client.get("/jobs").status_code == 302
    assert api.get("/api/v1/models").status_code == 401

    other = make_person(service_env, "clinician")
    token_id = re.search(r"(\d+)\s+" + re.escape(other.email), run_cli(["tokens", "list"], service_env).stdout)
    run_cli(["tokens", "revoke", token_id.group(1)], service_env)
    assert other.client(app).get("/api/v1/models").status_code == 401


def test_security_headers_on_pages_polls_and_downloads(app, people, owned_jobs):
    client = people["lab"].client(app)
    job = owned_jobs["lab"]
    for path in ("/", f"/jobs/{job}", f"/api/v1/jobs/{job}", f"/api/v1/jobs/{job}/results?format=csv"):
        headers = client.get(path).headers
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["Cache-Control"] == "no-store"


def test_start_up_fails_without_a_secret_key_outside_the_embedded_mode(settings):
    from api import create_app

    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app(settings.model_copy(update={"secret_key": ""}))


def test_job_creation_is_rate_limited_and_jobs_in_flight_are_capped(app_with, settings, people):
    idle = {"queue": fresh_queue("nobody")}  # no worker reads it: jobs stay queued
    app = app_with(**idle, max_jobs_in_flight=2, jobs_rate_limit="100/minute")
    person_client = people["clinician"].client(app)
    codes = [person_client.post("/api/v1/jobs", json={"cases": [_case()]}).status_code for _ in range(3)]
    assert codes[:2] == [202, 202] or codes.count(202) <= 2
    last = person_client.post("/api/v1/jobs", json={"cases": [_case()]})
    assert last.status_code == 429 and "queued or running" in last.get_json()["error"]

    limited = app_with(**idle, jobs_rate_limit="2/minute", max_jobs_in_flight=99)
    admin = make_person({**_env(settings)}, "admin")
    client = admin.client(limited)
    codes = [client.post("/api/v1/jobs", json={"cases": [_case()]}).status_code for _ in range(3)]
    assert codes == [202, 202, 429]


def _env(settings) -> dict[str, str]:
    return {"DATABASE_URL": settings.database_url, "BROKER_URL": settings.broker_url, "SECRET_KEY": "x"}


def test_the_audit_log_records_who_created_viewed_and_downloaded_which_job(app, people, owned_jobs, service_env):
    client = people["lab"].client(app)
    _login(app, people["lab"])  # a sign-in of its own: the trail must hold one whichever tests ran before
    job = owned_jobs["lab"]
    client.get(f"/api/v1/jobs/{job}/results?format=csv")
    client.get(f"/jobs/{job}")
    trail = run_cli(["audit", "--limit", "5000"], service_env).stdout
    lines = [line for line in trail.splitlines() if job in line and people["lab"].email in line]
    actions = {re.split(r"\s+", line)[5] for line in lines}
    assert {"job.create", "job.view", "job.download"} <= actions, lines
    assert "user.add" in trail and "login" in trail
    X, _ = wdbc()
    assert repr(float(X[0, 0])) not in trail  # ids and actions, never measurements


def test_purge_removes_old_inputs_and_results_and_records_it(app, worker, people, service_env, pg_url):
    client = people["lab"].client(app)
    from tests.support import wait_for_job

    job = post_upload(client, wdbc_csv(slice(0, 3))).get_json()["id"]
    wait_for_job(client, job)
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE jobs SET created_at = now() - interval '40 days' WHERE id = :id"), {"id": job})
    run_cli(["purge", "--older-than", "30d"], service_env)
    with engine.connect() as conn:
        left = conn.execute(text("SELECT count(*) FROM results WHERE job_id = :id"), {"id": job}).scalar_one()
        inputs = conn.execute(text("SELECT count(*) FROM job_inputs WHERE job_id = :id"), {"id": job}).scalar_one()
        parts = conn.execute(text("SELECT count(*) FROM job_input_parts WHERE job_id = :id"), {"id": job}).scalar_one()
    engine.dispose()
    assert (left, inputs, parts) == (0, 0, 0)
    assert client.get(f"/api/v1/jobs/{job}/results?format=csv").status_code == 410
    waited = client.get(f"/api/v1/jobs/{job}?wait=1").get_json()  # small and succeeded, but its results are gone
    assert waited["status"] == "succeeded" and "results" not in waited
    assert waited["purged_at"] is not None and waited["purged_by"] is None
    assert "purge" in run_cli(["audit"], service_env).stdout
    page = sign_in(app, people["lab"].email, people["lab"].password).get(f"/jobs/{job}").get_data(as_text=True)
    page = " ".join(page.split())
    assert "Removed after the retention period at " in page and "malignant (M)" not in page  # no counts of nothing


class _Payload:
    """Unpickling this would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("attack", ["one changed byte", "pickle payload"])
def test_a_tampered_model_file_never_runs_and_stops_worker_and_web(tmp_path, service_env, settings, attack):
    models = tmp_path / "models"
    shutil.copytree(settings.models_dir, models)
    artifact = models / "wdbc-rf4.skops"
    marker = tmp_path / "payload-ran"
    if attack == "one changed byte":
        data = bytearray(artifact.read_bytes())
        data[len(data) // 2] ^= 0x01
        artifact.write_bytes(bytes(data))
    else:
        import hashlib
        import json

        artifact.write_bytes(pickle.dumps(_Payload(marker)))
        meta = json.loads((models / "wdbc-rf4.json").read_text())
        meta["sha256"] = hashlib.sha256(artifact.read_bytes()).hexdigest()  # the attacker edits the JSON too
        (models / "wdbc-rf4.json").write_text(json.dumps(meta))
    env = {**service_env, "CYTOSCORE_MODELS_DIR": str(models)}
    proc = ServiceProcess(["worker"], env, tmp_path / "worker.log")
    code = proc.proc.wait(timeout=60)
    proc.stop()
    assert code != 0
    assert "refusing to start" in proc.output()
    assert ("sha256" if attack == "one changed byte" else "not a valid skops archive") in proc.output()

    from api import create_app
    from shared.modelstore import ModelIntegrityError

    with pytest.raises(ModelIntegrityError):
        create_app(settings.model_copy(update={"models_dir": models}))
    assert not marker.exists()


# --- the account and admin pages ------------------------------------------------------------------------------

ACCOUNT_DOORS = ["/account", "/account/password"]
ADMIN_DOORS = ["/admin/users", "/admin/users/{admin_id}", "/admin/audit", "/admin/audit.csv"]


@pytest.fixture(scope="module")
def browsers(app, people):
    """A browser signed in with a password for each role."""
    return {who: sign_in(app, p.email, p.password) for who, p in people.items()}


@pytest.fixture(scope="module")
def admin_id(pg_url, people) -> int:
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        found = conn.execute(text("SELECT id FROM users WHERE email = :e"), {"e": people["admin"].email}).scalar_one()
    engine.dispose()
    return int(found)


@pytest.mark.parametrize("door", ACCOUNT_DOORS + ADMIN_DOORS)
@pytest.mark.parametrize("who", [None, "clinician", "lab", "admin"])
def test_access_matrix_for_account_and_admin_pages(app, browsers, admin_id, door, who):
    client = browsers[who] if who else app.test_client()
    response = client.get(door.format(admin_id=admin_id))
    if who is None:
        assert response.status_code == 302 and "/login" in response.headers["Location"]
    elif door in ACCOUNT_DOORS or who == "admin":
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
    else:
        assert response.status_code == 403


@pytest.mark.parametrize("door", ACCOUNT_DOORS + ADMIN_DOORS)
@pytest.mark.parametrize("who", ["clinician", "lab", "admin"])
def test_a_token_never_opens_the_account_or_admin_pages(app, people, admin_id, door, who):
    # A leaked token must not be able to make itself new tokens, change a password or manage accounts.
    assert people[who].client(app).get(door.format(admin_id=admin_id)).status_code == 403


@pytest.mark.parametrize("role", ["clinician", "lab", "admin"])
def test_another_person_of_the_same_role_can_neither_see_nor_end_your_sessions_and_tokens(app, service_env, role):
    me, other = make_person(service_env, role), make_person(service_env, role)
    mine, theirs = sign_in(app, me.email, me.password), sign_in(app, other.email, other.password)
    made = mine.post("/account/tokens", data={"name": "mine", "days": "30", "csrf_token": csrf(mine)})
    assert made.status_code == 201
    page = mine.get("/account").get_data(as_text=True)
    token_id = re.search(r"/account/tokens/(\d+)/revoke", page).group(1)
    session_id = re.search(r"/account/sessions/(\d+)/end", page).group(1)

    their_page = theirs.get("/account").get_data(as_text=True)
    assert "mine" not in their_page and f"/account/sessions/{session_id}/end" not in their_page
    token = csrf(theirs)
    assert theirs.post(f"/account/tokens/{token_id}/revoke", data={"csrf_token": token}).status_code == 404
    assert theirs.post(f"/account/sessions/{session_id}/end", data={"csrf_token": token}).status_code == 404
    assert theirs.get("/admin/users").status_code == (200 if role == "admin" else 403)
    # Still there, still live: mine goes on working.
    assert mine.get("/jobs").status_code == 200
    assert "revoked" not in mine.get("/account").get_data(as_text=True)


# --- sessions end on the server ----------------------------------------------------------------------------------


def _new_job_with(client, token: str):
    form = {"model": "wdbc-rf4", "csrf_token": token, **{f: str(v) for f, v in _case().items() if f != "case_id"}}
    return client.post("/cases", data=form)


@pytest.mark.parametrize("how", ["sign-out", "password change", "disabled", "password reset", "admin revokes"])
def test_a_copied_cookie_stops_working_when_the_session_ends(app, worker, service_env, people, how):
    person = make_person(service_env, "lab")
    victim = sign_in(app, person.email, person.password)
    token = csrf(victim, "/")
    thief = with_cookie(app, session_cookie(victim))  # copied before the session ends
    assert thief.get("/jobs").status_code == 200 and _new_job_with(thief, token).status_code == 303

    if how == "sign-out":
        assert victim.post("/logout", data={"csrf_token": token}).status_code == 302
    elif how == "password change":
        new = f"plum tractor whistle {uuid.uuid4().hex[:6]}"
        changed = victim.post("/account/password", data={"current": person.password, "password": new,
                                                        "confirm": new, "csrf_token": token})  # fmt: skip
        assert changed.status_code == 302 and victim.get("/jobs").status_code == 200  # this browser goes on
    elif how == "disabled":
        run_cli(["users", "disable", person.email], service_env)
    elif how == "password reset":
        run_cli(["users", "reset-password", person.email], service_env)
    else:
        admin = sign_in(app, people["admin"].email, people["admin"].password)
        page = admin.get("/admin/users").get_data(as_text=True)
        user_id = re.search(r'/admin/users/(\d+)">' + re.escape(person.email), page).group(1)
        assert admin.post(f"/admin/users/{user_id}/revoke", data={"csrf_token": csrf(admin)}).status_code == 302

    page = thief.get("/jobs")
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    assert thief.get("/api/v1/models").status_code == 401
    refused = _new_job_with(thief, token)
    assert refused.status_code == 302 and "/login" in refused.headers["Location"]  # no job made
    assert thief.post("/api/v1/jobs", json={"cases": [_case()]}, headers={"X-CSRFToken": token}).status_code == 401


def test_sign_out_everywhere_ends_every_session_of_the_account(app, service_env):
    person = make_person(service_env, "clinician")
    laptop, phone = sign_in(app, person.email, person.password), sign_in(app, person.email, person.password, "10.0.0.9")
    listed = laptop.get("/account").get_data(as_text=True)
    assert listed.count('/end"') == 2 and "10.0.0.9" in listed
    assert laptop.post("/account/sessions/end-all", data={"csrf_token": csrf(laptop)}).status_code == 302
    assert laptop.get("/jobs").status_code == 302 and phone.get("/jobs").status_code == 302


def test_an_idle_session_ends_on_the_server(app, service_env, pg_url):
    person = make_person(service_env, "clinician")
    client = sign_in(app, person.email, person.password)
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE user_sessions SET last_seen_at = now() - interval '31 minutes' "
                          "FROM users WHERE users.id = user_id AND email = :e"), {"e": person.email})  # fmt: skip
    assert client.get("/jobs").status_code == 302
    with engine.connect() as conn:
        ended = conn.execute(text("SELECT ended_by FROM user_sessions JOIN users ON users.id = user_id "
                                  "WHERE email = :e"), {"e": person.email}).scalars().all()  # fmt: skip
    engine.dispose()
    assert ended == ["idle"]


# --- sign-in throttling ------------------------------------------------------------------------------------------


def _try(client, email: str, password: str = "not the password"):
    return client.post("/login", data={"email": email, "password": password, "csrf_token": csrf(client, "/login")})


def test_password_spraying_from_one_address_answers_429(app):
    sprayer = app.test_client()
    sprayer.environ_base["REMOTE_ADDR"] = f"198.51.100.{uuid.uuid4().int % 250 + 1}"
    codes = [
        _try(sprayer, f"victim{i}-{uuid.uuid4().hex[:4]}@example.org", "Winter2026!").status_code for i in range(40)
    ]
    assert codes[:30] == [401] * 30 and set(codes[30:]) == {429}, codes
    other = app.test_client()  # another address is not held back
    other.environ_base["REMOTE_ADDR"] = "192.0.2.200"
    assert _try(other, "someone@example.org").status_code == 401


@pytest.fixture
def quick_backoff(app_with):
    """3 free failures per 30 s, then waits of 1 s, 2 s, 4 s …"""
    return app_with(login_account_limit="3 per 30 seconds", queue=fresh_queue("backoff"))


@pytest.mark.parametrize("exists", [True, False], ids=["an account", "no account"])
def test_failures_on_one_account_from_many_addresses_back_off_exponentially(quick_backoff, service_env, exists):
    person = make_person(service_env, "lab")
    email = person.email if exists else f"nobody-{uuid.uuid4().hex[:6]}@example.org"

    def from_somewhere(password: str = "wrong password here"):
        client = quick_backoff.test_client()
        client.environ_base["REMOTE_ADDR"] = f"203.0.113.{uuid.uuid4().int % 250 + 1}"
        return _try(client, email, password)

    assert [from_somewhere().status_code for _ in range(3)] == [401, 401, 401]
    held = from_somewhere(person.password)  # even the right password waits: the wait says nothing
    assert held.status_code == 429 and held.headers["Retry-After"] == "1"
    assert "Wait 1 seconds" in held.get_data(as_text=True)
    time.sleep(1.1)
    assert from_somewhere().status_code == 401  # not locked: tried again after the wait
    assert from_somewhere().headers.get("Retry-After") == "2"  # and the next wait is twice as long
    time.sleep(2.1)
    final = from_somewhere(person.password)
    assert final.status_code == (302 if exists else 401)
    if exists:
        assert [from_somewhere().status_code for _ in range(3)] == [401, 401, 401]  # a sign-in starts the count again


# --- the client's address, and TLS ------------------------------------------------------------------------------


@pytest.mark.parametrize(("proxies", "recorded"), [(0, "127.0.0.1"), (1, "203.0.113.77")])
def test_the_audit_trail_records_the_address_through_the_trusted_proxies_only(app_with, service_env, proxies,
                                                                            recorded):  # fmt: skip
    app = app_with(trusted_proxies=proxies)
    email = f"proxied-{uuid.uuid4().hex[:6]}@example.org"
    client = app.test_client()
    # The client forges a first hop; the one proxy appends the address it saw.
    headers = {"X-Forwarded-For": "10.9.9.9, 203.0.113.77"}
    client.post("/login", headers=headers,
                data={"email": email, "password": "x", "csrf_token": csrf(client, "/login")})  # fmt: skip
    trail = run_cli(["audit", "--limit", "500"], service_env).stdout
    (line,) = [line for line in trail.splitlines() if email in line]
    assert re.split(r"\s+", line)[4] == recorded  # after the day, time and zone, the actor


def test_hsts_only_over_tls(app, app_with):
    assert "Strict-Transport-Security" not in app.test_client().get("/login").headers
    assert app.test_client().get("/login", base_url="https://localhost").headers["Strict-Transport-Security"]
    forged = {"X-Forwarded-Proto": "https"}
    assert "Strict-Transport-Security" not in app.test_client().get("/login", headers=forged).headers
    proxied = app_with(trusted_proxies=1)
    assert (
        proxied.test_client().get("/login", headers=forged).headers["Strict-Transport-Security"].startswith("max-age=")
    )
