"""Bad input from the wild never gets a 500: it is refused with where and why, or rejected in its own row only."""

from __future__ import annotations

import json

import pytest

from testkit.support import RF4

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
