"""The spine: a case goes from form, JSON or spreadsheet to a scored result, through PostgreSQL, Redis and a worker."""

from __future__ import annotations

import csv
import io
import re
import uuid

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from shared.features import FEATURES
from shared.jobs import publish
from shared.modelstore import load_model
from shared.queue import make_celery
from testkit.support import case_ids, wdbc, wdbc_csv
from tests.support import post_upload

RF4 = ["radius_mean", "texture_mean", "smoothness_mean", "compactness_mean"]


def expected(model_name: str, settings, rows: np.ndarray) -> tuple[list[str], list[float]]:
    """What the saved pipeline itself says for these rows (published feature order in, M/B out)."""
    model = load_model(model_name, settings.models_dir)
    X = rows[:, [FEATURES.index(f) for f in model.features]]
    pipe = model.pipeline
    malignant = list(pipe.classes_).index(0)  # the bundled data codes 0 = malignant
    labels = ["M" if c == 0 else "B" for c in pipe.predict(X)]
    return labels, [float(p) for p in pipe.predict_proba(X)[:, malignant]]


def upload(client, content: bytes, filename: str = "cases.csv", **form):
    return post_upload(client, content, filename, **form)


@pytest.mark.parametrize("model_name", [None, "wdbc-rf30"])
def test_upload_of_the_bundled_cases_equals_the_pipelines_own_answers(client, finished, settings, model_name):
    form = {"model": model_name} if model_name else {}
    response = upload(client, wdbc_csv(), **form)
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert body["status"] == "queued" and response.headers["Location"] == body["url"]

    job = finished(body["id"])
    assert job["status"] == "succeeded", job
    assert (job["rows_total"], job["rows_scored"], job["rows_rejected"]) == (569, 569, 0)
    name = model_name or "wdbc-rf30"  # named no model: the best held-out ROC AUC among those the file fits
    meta = load_model(name, settings.models_dir)
    assert job["model"] == {"name": name, "version": meta.version, "sha256": meta.sha256}

    results = client.get(f"/api/v1/jobs/{body['id']}/results?format=json").get_json()["results"]
    X, _ = wdbc()
    labels, probs = expected(name, settings, X)
    assert [r["row"] for r in results] == list(range(1, 570))
    assert [r["case_id"] for r in results] == case_ids(569)
    assert [r["diagnosis"] for r in results] == labels
    assert [r["probability_malignant"] for r in results] == probs  # exact, not approximately
    assert {(r["model_name"], r["model_version"], r["model_sha256"]) for r in results} == {
        (name, meta.version, meta.sha256)
    }


def test_results_download_as_csv_matches_json(client, finished):
    job_id = upload(client, wdbc_csv(slice(0, 40))).get_json()["id"]
    assert finished(job_id)["status"] == "succeeded"
    response = client.get(f"/api/v1/jobs/{job_id}/results?format=csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    records = client.get(f"/api/v1/jobs/{job_id}/results").get_json()["results"]
    assert len(rows) == len(records) == 40
    for row, record in zip(rows, records, strict=True):
        assert row["case_id"] == record["case_id"]
        assert row["diagnosis"] == record["diagnosis"]
        assert float(row["probability_malignant"]) == record["probability_malignant"]
        assert row["supplied_diagnosis"] == record["supplied_diagnosis"] in ("M", "B")


def test_a_single_case_through_the_json_api(client, finished, settings):
    X, _ = wdbc()
    case = {"case_id": "clinic-7", **{f: float(X[10, FEATURES.index(f)]) for f in RF4}}
    response = client.post("/api/v1/jobs", json={"cases": [case]})
    assert response.status_code == 202, response.get_json()
    job = finished(response.get_json()["id"])
    assert job["status"] == "succeeded" and job["kind"] == "form"
    (result,) = client.get(f"/api/v1/jobs/{job['id']}/results").get_json()["results"]
    labels, probs = expected("wdbc-rf4", settings, X[10:11])
    assert (result["case_id"], result["diagnosis"], result["probability_malignant"]) == (
        "clinic-7",
        labels[0],
        probs[0],
    )


def test_a_single_case_through_the_form_lands_on_its_job_page(client, finished, settings):
    X, _ = wdbc()
    form = {
        "model": "wdbc-rf4",
        "case_id": "form-1",
        **{f: repr(float(X[3, FEATURES.index(f)])) for f in RF4},
    }
    response = client.post("/cases", data=form)
    assert response.status_code == 303
    job_id = re.fullmatch(r".*/jobs/([0-9a-f-]{36})", response.headers["Location"]).group(1)
    assert finished(job_id)["status"] == "succeeded"
    page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    labels, probs = expected("wdbc-rf4", settings, X[3:4])
    assert "Case form-1" in page
    assert f'<span class="dx dx-{labels[0]}">{labels[0]}</span>' in page
    assert f'<data value="{float(probs[0])!r}">' in page  # the probability exactly, however it is shown
    assert "not a diagnosis" in page
    for f in RF4:  # what was entered, as it was typed
        assert f'data-label="Entered">{form[f]}' in page


def test_the_form_shows_problems_beside_the_fields_and_keeps_what_was_typed(client, pg_url):
    before = _count(pg_url, "jobs")
    form = {"model": "wdbc-rf4", "case_id": "x", "radius_mean": "abc", "texture_mean": "-3",
            "smoothness_mean": "0.1", "compactness_mean": "0.2"}  # fmt: skip
    response = client.post("/cases", data=form)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'value="abc"' in page and 'value="-3"' in page and 'value="0.1"' in page
    assert page.count('aria-invalid="true"') == 2
    assert _count(pg_url, "jobs") == before


def test_a_task_delivered_twice_leaves_one_result_per_row(client, finished, settings, pg_url):
    job_id = upload(client, wdbc_csv(slice(0, 200))).get_json()["id"]
    app = make_celery(settings)
    assert publish(app, uuid.UUID(job_id)) and publish(app, uuid.UUID(job_id))
    assert finished(job_id)["status"] == "succeeded"
    first = client.get(f"/api/v1/jobs/{job_id}/results").get_json()["results"]

    # A redelivery after the job finished (a lost acknowledgement): the job is handed back and runs again.
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE jobs SET status = 'queued' WHERE id = :id"), {"id": job_id})
    assert publish(app, uuid.UUID(job_id))
    job = finished(job_id)
    assert job["status"] == "succeeded" and job["attempts"] == 2
    with engine.connect() as conn:
        counts = conn.execute(
            text("SELECT count(*), count(DISTINCT row_number) FROM results WHERE job_id = :id"),
            {"id": job_id},
        ).one()
    engine.dispose()
    assert tuple(counts) == (200, 200)
    assert client.get(f"/api/v1/jobs/{job_id}/results").get_json()["results"] == first


def test_a_file_refused_as_a_whole_creates_nothing(client, pg_url):
    before = _count(pg_url, "jobs")
    response = upload(client, b"id,radius_mean\n1,12.0\n")
    assert response.status_code == 422
    body = response.get_json()
    assert "texture_mean" in " ".join(body["problems"])
    assert _count(pg_url, "jobs") == before


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"cases": []}, 422),
        ({"cases": "nope"}, 422),
        ({"nothing": 1}, 422),
        ({"cases": [{"case_id": "a", **dict.fromkeys(RF4, 1.0)}], "model": "no-such-model"}, 422),
    ],
)
def test_bad_json_is_answered_with_a_message_not_a_crash(client, body, status):
    response = client.post("/api/v1/jobs", json=body)
    assert response.status_code == status
    assert response.get_json()["problems"]


def test_unknown_and_malformed_job_ids_answer_404(client):
    for job_id in (str(uuid.uuid4()), "not-a-uuid"):
        for path in (f"/api/v1/jobs/{job_id}", f"/api/v1/jobs/{job_id}/results", f"/jobs/{job_id}"):
            assert client.get(path).status_code == 404


def test_models_lists_features_and_held_out_metrics(client):
    models = {m["name"]: m for m in client.get("/api/v1/models").get_json()["models"]}
    assert models["wdbc-rf4"]["features"] == RF4
    assert len(models["wdbc-rf30"]["features"]) == 30
    for m in models.values():
        assert set(m["metrics"]) >= {"roc_auc", "accuracy", "sensitivity", "specificity"}
        assert re.fullmatch(r"[0-9a-f]{64}", m["sha256"])


def test_healthz_answers_for_database_and_broker(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"database": True, "broker": True}


def test_healthz_says_503_when_the_broker_does_not_answer(settings):
    from api import create_app

    port = _closed_port()
    broken = settings.model_copy(update={"broker_url": f"redis://127.0.0.1:{port}/0", "broker_timeout": 1.0})
    app = create_app(broken)
    response = app.test_client().get("/healthz")
    app.extensions["cytoscore.engine"].dispose()
    assert response.status_code == 503
    assert response.get_json()["checks"] == {"database": True, "broker": False}


def test_the_job_page_and_list_show_a_finished_job(client, finished):
    job_id = upload(client, wdbc_csv(slice(0, 10)), filename="ten cases.csv").get_json()["id"]
    finished(job_id)
    listing = client.get("/jobs").get_data(as_text=True)
    assert job_id[:8] in listing and "ten cases.csv" in listing
    page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "succeeded" in page and "Download results" in page


def _count(pg_url: str, table: str) -> int:
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        n = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
    engine.dispose()
    return int(n)


def _closed_port() -> int:
    from testkit.support import free_port

    return free_port()
