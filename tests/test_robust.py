"""Bad input from the wild never gets a 500: it is refused with where and why, or rejected in its own row only."""

from __future__ import annotations

import json
import os
import shutil
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from testkit.support import QUEUES, RF4, WORKER_NODES, ServiceProcess, forget_queues, fresh_queue, make_person

CASE = {"case_id": "a", **dict.fromkeys(RF4, 12.5)}
CASE["texture_mean"], CASE["smoothness_mean"], CASE["compactness_mean"] = 18.0, 0.1, 0.1


def _post_json(client, text: str, path: str = "/api/v1/jobs"):  # type: ignore[no-untyped-def]
    return client.post(path, data=text.encode(), content_type="application/json")


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
@pytest.mark.parametrize("key", ["texture_mean", "case_id"])
def test_a_non_finite_number_is_refused_naming_its_case_and_key(client, number, key):
    cases = [CASE, {**CASE, key: "@"}]
    text = json.dumps({"cases": cases}).replace('"@"', number)
    response = _post_json(client, text)
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.get_json()["problems"] == [f"cases[1] '{key}': {number} is not a finite number"]


def test_deep_nesting_is_refused_naming_its_case_and_key(client):
    deep = "[" * 5000 + "]" * 5000
    text = json.dumps({"cases": [CASE, {**CASE, "radius_mean": "@"}]}).replace('"@"', deep)
    response = _post_json(client, text)
    assert response.status_code == 422
    (problem,) = response.get_json()["problems"]
    assert problem.startswith("cases[1].radius_mean") and "nests too deep" in problem
    shallow = json.dumps({"cases": [CASE, {**CASE, "radius_mean": [[[1.0]]]}]})
    response = _post_json(client, shallow)
    assert response.status_code == 422
    assert response.get_json()["problems"] == ["cases[1] 'radius_mean': is a list, not a number or text"]


def test_a_body_that_is_not_json_answers_400(client):
    response = _post_json(client, '{"cases": [')
    assert response.status_code == 400 and "not valid JSON" in response.get_json()["error"]


def test_a_lone_surrogate_case_id_rejects_only_its_own_row(client, finished):
    text = json.dumps({"cases": [CASE, {**CASE, "case_id": "@"}, {**CASE, "case_id": "c"}]})
    response = _post_json(client, text.replace('"@"', '"x\\ud800"'))
    assert response.status_code == 202
    job = finished(response.get_json()["id"])
    assert (job["status"], job["rows_scored"], job["rows_rejected"]) == ("succeeded", 2, 1)
    results = client.get(f"/api/v1/jobs/{job['id']}/results").get_json()["results"]
    assert [r["case_id"] for r in results] == ["a", None, "c"]
    assert "surrogate" in results[1]["error"] and "\\ud800" in results[1]["error"]
    for fmt in ("csv", "xlsx"):
        assert client.get(f"/api/v1/jobs/{job['id']}/results?format={fmt}").status_code == 200
    errors = client.get(f"/api/v1/jobs/{job['id']}/errors?format=csv")
    assert errors.status_code == 200 and "surrogate" in errors.get_data(as_text=True)


def test_page_numbers_are_bounded(client, finished):
    job_id = client.post("/api/v1/jobs", json={"cases": [CASE, {**CASE, "case_id": "b"}]}).get_json()["id"]
    finished(job_id)
    for page in ("99999999999999999999", "9" * 5000, "-3", "x"):
        response = client.get(f"/jobs/{job_id}?page={page}")
        assert response.status_code == 200
        assert "Rows 1–2 of 2" in response.get_data(as_text=True)  # a page past the end shows the last one


def test_json_cases_are_capped_per_request_and_per_role(client, people, app, settings):
    many = {"cases": [{**CASE, "case_id": f"c{i}"} for i in range(settings.json_max_cases + 1)]}
    response = client.post("/api/v1/jobs", json=many)
    assert response.status_code == 422
    assert f"at most {settings.json_max_cases} cases" in response.get_json()["problems"][0]
    clinician = people["clinician"].client(app)
    few = {"cases": [{**CASE, "case_id": f"c{i}"} for i in range(settings.clinician_max_cases + 1)]}
    response = clinician.post("/api/v1/jobs", json=few)
    assert response.status_code == 422
    assert f"a clinician may send at most {settings.clinician_max_cases} cases" in response.get_json()["problems"][0]


def test_a_json_body_over_its_byte_cap_answers_413_and_points_to_the_upload(client, settings):
    padding = " " * (settings.json_max_bytes + 1)
    response = _post_json(client, '{"cases": []' + padding + "}")
    assert response.status_code == 413
    message = response.get_json()["error"]
    assert "JSON body is larger than the limit of 4 MiB" in message and "file upload" in message


def test_the_in_flight_cap_holds_under_40_concurrent_submissions(idle_app, service_env, settings):
    person = make_person(service_env, "lab")
    start = threading.Barrier(40)

    def submit(i: int) -> int:
        client = person.client(idle_app)
        start.wait()
        return client.post("/api/v1/jobs", json={"cases": [{**CASE, "case_id": f"c{i}"}]}).status_code

    with ThreadPoolExecutor(40) as pool:
        codes = list(pool.map(submit, range(40)))
    assert (codes.count(202), codes.count(429)) == (settings.max_jobs_in_flight, 40 - settings.max_jobs_in_flight)


def test_the_queues_a_run_made_leave_no_key_behind_in_redis(settings, redis_url):
    """The run's queues are deleted from Redis at its end (conftest's `redis_url`); no other run's keys are."""
    import redis

    from shared import jobs
    from shared.queue import make_celery

    ours, theirs = fresh_queue("forget-me"), f"another-run-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_url)
    try:
        for name in (ours, theirs):
            assert jobs.publish(make_celery(settings.model_copy(update={"queue": name})), uuid.uuid4(), name)
        assert client.keys(f"*{ours}*") and client.keys(f"*{theirs}*")
        assert ours in QUEUES
        assert forget_queues(redis_url, {ours}) >= 1
        assert client.keys(f"*{ours}*") == [] and client.keys(f"*{theirs}*")
    finally:
        client.delete(*client.keys(f"*{theirs}*"))
        client.close()


def test_each_worker_node_has_a_name_of_its_own(settings):
    from shared.cli import _worker_argvs

    names = [argv[argv.index("--hostname") + 1] for argv, _ in _worker_argvs(settings, 2)]
    assert len(set(names)) == 2 and all(not n.startswith("celery@") for n in names)
    assert all(f"-{os.getpid()}@" in n for n in names)  # unique per `cytoscore worker` process on a host


def test_a_worker_started_in_another_projects_folder_scores_with_its_own_code(tmp_path, service_env, app_with):
    """Celery imports from its working directory first: a folder holding another `worker` package must not change
    what `cytoscore worker` runs."""
    (tmp_path / "worker").mkdir()
    (tmp_path / "worker" / "__init__.py").write_text('raise SystemExit("another project\'s worker package")\n')
    queue = fresh_queue("started-elsewhere")
    proc = ServiceProcess(["worker"], {**service_env, "CYTOSCORE_QUEUE": queue}, tmp_path / "worker.log", cwd=tmp_path)
    app = app_with(queue=queue)
    try:
        proc.wait_for_log("ready.", timeout=90, count=WORKER_NODES)
        answer = make_person(service_env, "lab").client(app).post("/api/v1/jobs?wait=30", json={"cases": [CASE]})
        assert answer.status_code == 201, answer.get_json()
        assert answer.get_json()["results"][0]["diagnosis"] in ("M", "B")
    finally:
        proc.stop()


@pytest.mark.parametrize("edit", ["a feature dropped", "a probability changed"])
def test_worker_and_web_refuse_a_model_whose_golden_row_was_edited_with_one_message(
    tmp_path, service_env, settings, edit
):
    models = tmp_path / "models"
    shutil.copytree(settings.models_dir, models)
    meta = json.loads((models / "wdbc-rf30.json").read_text())
    if edit == "a feature dropped":
        meta["golden"][2]["features"] = meta["golden"][2]["features"][:-1]
    else:
        meta["golden"][2]["probability_malignant"] = 0.5
    (models / "wdbc-rf30.json").write_text(json.dumps(meta))

    from api import create_app
    from shared.modelstore import ModelIntegrityError

    with pytest.raises(ModelIntegrityError) as refused:
        create_app(settings.model_copy(update={"models_dir": models}))
    assert str(refused.value).startswith("model wdbc-rf30: ")
    proc = ServiceProcess(["worker"], {**service_env, "CYTOSCORE_MODELS_DIR": str(models)}, tmp_path / "worker.log")
    try:
        code = proc.proc.wait(timeout=90)
    finally:
        proc.stop()
    assert code != 0
    assert f"refusing to start: {refused.value}" in proc.output()
    assert " ready." not in proc.output()


@pytest.mark.parametrize("most", [7, 90_000, 100_000, 1_999_999])
def test_the_histograms_y_labels_fit_left_of_the_axis(most):
    from api.charts import histogram

    chart = histogram([most] + [1] * 19)
    for tick in chart.y_ticks:  # right-aligned at x, in 12 px digits about 7 units wide each
        assert tick.x - 7 * len(tick.text) >= 0, tick.text
    assert chart.bars[0].x > chart.left and chart.bars[-1].x + chart.bars[-1].width <= chart.right


def test_a_single_case_with_a_lone_surrogate_in_a_value_shows_its_page(client, finished):
    text = json.dumps({"cases": [{**CASE, "texture_mean": "@"}]}).replace('"@"', '"1\\udc80"')
    job_id = _post_json(client, text).get_json()["id"]
    assert finished(job_id)["rows_rejected"] == 1
    page = client.get(f"/jobs/{job_id}")
    assert page.status_code == 200 and "\ufffd" in page.get_data(as_text=True)
    assert client.get(f"/jobs/{job_id}/report.pdf").status_code == 200


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/v1/models/wdbc-rf4/template?format=pdf", "format"),
        ("/api/v1/jobs?wait=-1", "wait"),
        ("/api/v1/jobs?wait=soon", "wait"),
        ("/api/v1/jobs?explain=2", "explain"),
    ],
)
def test_a_query_parameter_outside_the_document_answers_400_naming_it(client, pg_url, path, name):
    import psycopg

    def jobs() -> int:
        with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            return conn.execute("SELECT count(*) FROM jobs").fetchone()[0]

    before = jobs()
    response = client.post(path, json={"cases": [CASE]}) if path.startswith("/api/v1/jobs") else client.get(path)
    assert response.status_code == 400
    assert response.get_json()["error"].startswith(f"{name}: ")
    assert jobs() == before  # refused before anything was created
