"""The validation view: the answers against a supplied diagnosis, checked against scikit-learn's own metrics on the
same rows, with the rows the model was trained on counted and set apart."""

from __future__ import annotations

import csv
import io
import math
import re

import numpy as np
import pypdfium2 as pdfium
import pytest
from pypdf import PdfReader
from sklearn.metrics import confusion_matrix, roc_auc_score

from api.validation import bootstrap_auc, figures, wilson
from shared.features import FEATURES
from shared.modelstore import load_model, read_metadata
from shared.training import load_split
from testkit.support import case_ids, wdbc, wdbc_csv
from tests.support import post_upload, without_diagnosis
from tests.test_clinician import words_off_the_page

Z = 1.959963984540054


def wilson_by_hand(k: int, n: int) -> tuple[float, float]:
    p = k / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
    return centre - half, centre + half


@pytest.mark.parametrize(("k", "n"), [(0, 10), (48, 53), (84, 90), (10, 10), (1, 569)])
def test_wilson_interval_is_the_score_interval(k: int, n: int) -> None:
    assert wilson(k, n) == pytest.approx(wilson_by_hand(k, n), abs=1e-12)
    assert wilson(0, 0) is None


def sklearn_figures(truth: np.ndarray, said: np.ndarray, proba: np.ndarray) -> dict[str, object]:
    (tp, fn), (fp, tn) = confusion_matrix(truth, said, labels=["M", "B"])
    return {"confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn}, "roc_auc": roc_auc_score(truth == "M", proba)}


def test_figures_equal_scikit_learns_metrics_on_random_rows() -> None:
    rng = np.random.default_rng(3)
    truth = rng.choice(["M", "B"], 500)
    proba = np.clip(rng.normal(np.where(truth == "M", 0.65, 0.35), 0.2), 0, 1).round(2)  # rounded: ties
    said = np.where(proba >= 0.5, "M", "B")
    got, expected = figures(truth, said, proba), sklearn_figures(truth, said, proba)
    assert got["confusion"] == expected["confusion"]
    assert got["roc_auc"]["value"] == pytest.approx(expected["roc_auc"], abs=1e-12)
    c = got["confusion"]
    assert got["sensitivity"]["value"] == c["tp"] / (c["tp"] + c["fn"])
    assert (got["ppv"]["ci_low"], got["ppv"]["ci_high"]) == pytest.approx(wilson_by_hand(c["tp"], c["tp"] + c["fp"]))
    assert got["roc_auc"]["ci_low"] < got["roc_auc"]["value"] < got["roc_auc"]["ci_high"]
    assert figures(truth, said, proba)["roc_auc"] == got["roc_auc"]  # a fixed seed: the same interval every time


def test_each_bootstrap_auc_equals_roc_auc_score_on_its_resample() -> None:
    rng = np.random.default_rng(5)
    truth = rng.random(200) < 0.4
    score = rng.random(200).round(1)  # many ties
    aucs = bootstrap_auc(truth, score, 5, seed=11)
    draws = np.random.default_rng(11)
    for auc in aucs:
        picked = draws.integers(0, 200, 200)
        assert auc == pytest.approx(roc_auc_score(truth[picked], score[picked]), abs=1e-12)


def model_answers(settings, name: str) -> tuple[np.ndarray, np.ndarray]:
    model = load_model(name, settings.models_dir)
    X, _ = wdbc()
    labels, proba = model.diagnose(X[:, [FEATURES.index(f) for f in model.features]], engine=False)
    return labels.astype(str), proba


@pytest.mark.parametrize("name", ["wdbc-rf4", "wdbc-rf30"])
def test_the_validation_view_counts_training_rows_and_sets_them_apart(client, finished, settings, name):
    job = finished(post_upload(client, wdbc_csv(), model=name).get_json()["id"])
    body = client.get(f"/api/v1/jobs/{job['id']}/validation").get_json()
    v = body["validation"]
    _, truth = wdbc()
    said, proba = model_answers(settings, name)

    assert v["training_rows"] == 426 and v["unchecked_rows"] == 0
    expected = sklearn_figures(truth, said, proba)
    assert v["all"]["rows"] == 569 and v["all"]["confusion"] == expected["confusion"]
    assert v["all"]["roc_auc"]["value"] == pytest.approx(expected["roc_auc"], abs=1e-12)

    test = np.zeros(569, dtype=bool)
    test[load_split()["idx_test"]] = True
    held_out = sklearn_figures(truth[test], said[test], proba[test])
    other = v["not_in_training"]
    assert other["rows"] == 143 and other["confusion"] == held_out["confusion"]
    assert other["roc_auc"]["value"] == pytest.approx(held_out["roc_auc"], abs=1e-12)
    # The rows not used in training are the model's own held-out rows: the figures its metadata published.
    metrics = read_metadata(name, settings.models_dir)["metrics"]
    assert other["confusion"] == {k: metrics["confusion"][k] for k in ("tp", "fp", "fn", "tn")}
    assert other["roc_auc"]["value"] == pytest.approx(metrics["roc_auc"], abs=1e-12)
    assert other["roc_auc"]["ci_low"] <= other["roc_auc"]["value"] <= other["roc_auc"]["ci_high"]

    page = client.get(f"/jobs/{job['id']}").get_data(as_text=True)
    assert "426 of these rows were used to train this model; agreement on them overstates accuracy" in page
    assert "Rows not used in training" in page and 'id="roc-other"' in page and 'id="roc-all"' in page
    assert f"TP {held_out['confusion']['tp']}" in page


def test_differing_rows_are_highlighted_and_a_filter_shows_only_them(client, finished, settings):
    job = finished(post_upload(client, wdbc_csv(), model="wdbc-rf4").get_json()["id"])
    _, truth = wdbc()
    said, _ = model_answers(settings, "wdbc-rf4")
    differing = [i + 1 for i in range(569) if said[i] != truth[i]]
    assert differing

    page = client.get(f"/jobs/{job['id']}?show=differs").get_data(as_text=True)
    assert f"Differs from the supplied diagnosis ({len(differing)})" in page
    rows = re.findall(r'<tr class="([^"]*)">\s*<td data-label="Row">(\d+)</td>', page)
    assert [int(n) for _, n in rows] == differing[:50]
    assert {cls for cls, _ in rows} == {"differs"}
    everything = client.get(f"/jobs/{job['id']}").get_data(as_text=True)
    classes = dict((int(n), cls) for cls, n in re.findall(r'<tr class="([^"]*)">\s*<td data-label="Row">(\d+)</td>',
                                                            everything))  # fmt: skip
    assert all((classes[n] == "differs") == (n in differing) for n in classes)


def test_a_file_of_held_out_rows_has_no_training_overlap(client, finished):
    X, y = wdbc()
    held_out = sorted(load_split()["idx_test"])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "diagnosis", *FEATURES])
    ids = case_ids(569)
    for i in held_out:
        writer.writerow([ids[i], y[i], *(repr(float(v)) for v in X[i])])
    job = finished(post_upload(client, out.getvalue().encode(), model="wdbc-rf30").get_json()["id"])
    v = client.get(f"/api/v1/jobs/{job['id']}/validation").get_json()["validation"]
    assert v["training_rows"] == 0 and v["not_in_training"] is None and v["all"]["rows"] == 143
    assert "used to train this model" not in client.get(f"/jobs/{job['id']}").get_data(as_text=True)


def test_no_validation_without_a_supplied_diagnosis(client, finished):
    X, _ = wdbc()
    rows = "\n".join(f"{i},{','.join(repr(float(v)) for v in X[i])}" for i in range(5))
    content = f"id,{','.join(FEATURES)}\n{rows}\n".encode()
    job = finished(post_upload(client, content).get_json()["id"])
    assert client.get(f"/api/v1/jobs/{job['id']}/validation").get_json()["validation"] is None
    assert 'id="validation"' not in client.get(f"/jobs/{job['id']}").get_data(as_text=True)


def test_a_job_report_holds_the_file_the_model_the_counts_and_the_figures_for_the_records(client, finished):
    job = finished(post_upload(client, wdbc_csv(), "kaggle.csv", model="wdbc-rf4").get_json()["id"])
    page = client.get(f"/jobs/{job['id']}").get_data(as_text=True)
    assert f'href="/jobs/{job["id"]}/report.pdf"' in page and "Download a report of this job (PDF)" in page
    report = client.get(f"/jobs/{job['id']}/report.pdf")
    assert report.status_code == 200 and report.mimetype == "application/pdf"
    assert f'filename="cytoscore-job-{job["id"]}.pdf"' in report.headers["Content-Disposition"]
    pdf = report.get_data()
    text = " ".join(" ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(pdf)).pages)
    counts = {r["diagnosis"] for r in client.get(f"/api/v1/jobs/{job['id']}/results?format=json").get_json()["results"]}
    assert counts == {"M", "B"}
    for said in (
        "kaggle.csv",
        job["id"],
        job["model"]["sha256"],
        "Malignant (M) 213",
        "Benign (B) 356",
        "426 of these rows were used to train this model",
        "Rows not used in training",
        "Sensitivity",
    ):
        assert said in text, said  # fmt: skip
    assert text.count("Decision support only") == 1
    assert words_off_the_page(pdf) == []
    # The ROC curves are lines: drawn filled (black), each would darken a few per cent of its page.
    for number, drawn in enumerate(pdfium.PdfDocument(pdf), 1):
        gray = drawn.render(scale=1).to_numpy()[..., :3].mean(axis=2)
        assert (gray < 60).mean() < 0.02, f"page {number} is {100 * (gray < 60).mean():.1f} % dark"

    assert client.post(f"/api/v1/jobs/{job['id']}/purge").status_code == 200
    assert client.get(f"/jobs/{job['id']}/report.pdf").status_code == 404  # its results removed: nothing to report


def _page_text(client, job_id: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", client.get(f"/jobs/{job_id}").get_data(as_text=True)).split())


def test_diagnoses_confirmed_after_scoring_give_a_file_without_any_its_validation_view(client, finished, settings):
    job = finished(post_upload(client, without_diagnosis(wdbc_csv()), model="wdbc-rf4").get_json()["id"])
    path = f"/api/v1/jobs/{job['id']}/validation"
    assert client.get(path).get_json()["validation"] is None
    _, truth = wdbc()
    said, proba = model_answers(settings, "wdbc-rf4")
    diagnoses = [{"row": i + 1, "diagnosis": str(d)} for i, d in enumerate(truth)]
    sent = client.post(
        f"/api/v1/jobs/{job['id']}/confirmed-diagnoses", json={"basis": "histology", "diagnoses": diagnoses}
    )
    assert sent.get_json() == {"recorded": 569}

    # The histology of every row, recorded later, checks the model as the same diagnoses in the file would.
    v = client.get(path).get_json()["validation"]
    assert (v["reference"], v["confirmed_rows"], v["corrected_rows"]) == ("confirmed", 569, 0)
    assert (v["training_rows"], v["unchecked_rows"]) == (426, 0)
    expected = sklearn_figures(truth, said, proba)
    assert v["all"]["confusion"] == expected["confusion"]
    assert v["all"]["roc_auc"]["value"] == pytest.approx(expected["roc_auc"], abs=1e-12)
    metrics = read_metadata("wdbc-rf4", settings.models_dir)["metrics"]
    other = v["not_in_training"]
    assert other["confusion"] == {k: metrics["confusion"][k] for k in ("tp", "fp", "fn", "tn")}
    text = _page_text(client, job["id"])
    assert "Against the confirmed diagnosis 569 rows count by a diagnosis confirmed after scoring." in text
    view = text[text.index("Against the") : text.index("Held out when the model was built")]
    assert "Confirmed M Confirmed B Answered M TP" in view and "supplied" not in view

    # A correction counts at once: a held-out malignant row the model called M, now confirmed B, is a false positive.
    test = set(load_split()["idx_test"])
    row = next(i for i in sorted(test) if truth[i] == "M" and said[i] == "M") + 1
    assert client.put(f"/api/v1/jobs/{job['id']}/rows/{row}/confirmed-diagnosis",
                      json={"diagnosis": "B", "basis": "follow-up"}).status_code == 200  # fmt: skip
    moved = client.get(path).get_json()["validation"]["not_in_training"]["confusion"]
    assert moved == {**other["confusion"], "tp": other["confusion"]["tp"] - 1, "fp": other["confusion"]["fp"] + 1}
    assert client.delete(f"/api/v1/jobs/{job['id']}/rows/{row}/confirmed-diagnosis").status_code == 204
    v = client.get(path).get_json()["validation"]
    assert (v["confirmed_rows"], v["all"]["rows"], v["not_in_training"]["rows"]) == (568, 568, 142)
    assert "568 rows count by a diagnosis confirmed after scoring." in _page_text(client, job["id"])


def test_a_confirmed_diagnosis_counts_in_place_of_a_different_one_in_the_file(client, finished, settings):
    job = finished(post_upload(client, wdbc_csv(), model="wdbc-rf4").get_json()["id"])
    _, truth = wdbc()
    said, _ = model_answers(settings, "wdbc-rf4")
    before = client.get(f"/api/v1/jobs/{job['id']}/validation").get_json()["validation"]
    assert (before["reference"], before["confirmed_rows"], before["corrected_rows"]) == ("supplied", 0, 0)
    # Two rows confirmed by histology: one as the file had it, one benign where the file said malignant.
    agreeing = next(i for i in range(569) if truth[i] == "B") + 1
    corrected = next(i for i in range(569) if truth[i] == "M" and said[i] == "M") + 1
    sent = client.post(f"/api/v1/jobs/{job['id']}/confirmed-diagnoses", json={"basis": "histology", "diagnoses": [
        {"row": agreeing, "diagnosis": "B"}, {"row": corrected, "diagnosis": "B"}]})  # fmt: skip
    assert sent.status_code == 200

    v = client.get(f"/api/v1/jobs/{job['id']}/validation").get_json()["validation"]
    assert (v["reference"], v["confirmed_rows"], v["corrected_rows"]) == ("confirmed or supplied", 2, 1)
    c = before["all"]["confusion"]
    assert v["all"]["confusion"] == {**c, "tp": c["tp"] - 1, "fp": c["fp"] + 1} and v["all"]["rows"] == 569
    text = _page_text(client, job["id"])
    assert (
        "Against the confirmed or supplied diagnosis 2 rows count by a diagnosis confirmed after scoring, 1 of "
        "them in place of a different diagnosis in the file."
    ) in text
    assert "Diagnosis M Diagnosis B Answered M TP" in text
    pdf = client.get(f"/jobs/{job['id']}/report.pdf").get_data()
    report = " ".join(" ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "Against the confirmed or supplied diagnosis" in report and "in place of a different diagnosis" in report
