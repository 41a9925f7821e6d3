"""The clinician's answer: what was entered, why the model said it, how sure it is, and a report to file."""

from __future__ import annotations

import html
import io
import json
import re

import numpy as np
import pypdfium2 as pdfium
import pytest
from pypdf import PdfReader

from api.formats import plural as _plural
from api.formats import probability as _probability
from shared.explain import TOLERANCE, largest_gap
from shared.features import FEATURES
from shared.modelstore import load_model
from shared.settings import ROOT
from testkit.support import RF4, wdbc
from tests.support import csrf, post_upload, sign_in, wait_for_job

MODELS = ("wdbc-rf4", "wdbc-rf30")


def _case(i: int, case_id: str, features: tuple[str, ...] | list[str] = RF4, **changes: object) -> dict[str, object]:
    X, _ = wdbc()
    return {"case_id": case_id, **{f: float(X[i, FEATURES.index(f)]) for f in features}, **changes}


def _adds_up(explanation: dict[str, object], probability: float, features: tuple[str, ...] | list[str]) -> None:
    contributions = explanation["contributions"]
    assert isinstance(contributions, dict) and list(contributions) == list(features)
    total = float(explanation["base"]) + sum(contributions.values())  # type: ignore[arg-type]
    assert abs(total - probability) <= TOLERANCE, (total, probability)


@pytest.mark.parametrize("name", MODELS)
def test_explanations_add_up_on_the_bundled_cases_and_on_ten_thousand_jittered_ones(name):
    model = load_model(name, ROOT / "models")
    X, _ = wdbc()
    bundled = X[:, [FEATURES.index(f) for f in model.features]]
    jittered = bundled[np.random.default_rng(3).integers(0, len(bundled), 10_000)]
    jittered = jittered * np.random.default_rng(4).normal(1.0, 0.02, jittered.shape)
    for rows in (bundled, jittered):
        assert model.explainer is not None
        assert largest_gap(model.explainer, rows, model.predict_proba_malignant(rows)) <= TOLERANCE


def test_a_gap_beyond_the_tolerance_is_found():
    model = load_model("wdbc-rf4", ROOT / "models")
    X = np.array([row["features"] for row in model.metadata["golden"]])
    wrong = model.predict_proba_malignant(X) + 2 * TOLERANCE  # what load_model refuses a model for
    assert model.explainer is not None and largest_gap(model.explainer, X, wrong) > TOLERANCE


def test_a_single_case_answer_carries_its_explanation(client):
    job = client.post("/api/v1/jobs?wait=30", json={"cases": [_case(20, "why-1")]}).get_json()
    (result,) = job["results"]
    _adds_up(result["explanation"], result["probability_malignant"], RF4)
    exported = client.get(f"{job['url']}/results?format=json").get_json()["results"][0]
    assert exported["explanation"] == result["explanation"]  # the same, stored once


def test_a_single_case_without_explain_and_a_few_cases_with_it(client):
    plain = client.post("/api/v1/jobs?wait=30&explain=0", json={"cases": [_case(21, "no-why")]}).get_json()
    assert plain["results"][0]["explanation"] is None
    cases = [_case(22, "a"), _case(23, "b", texture_mean="twelve")]
    several = client.post("/api/v1/jobs?wait=30", json={"cases": cases}).get_json()
    assert [r["explanation"] for r in several["results"]] == [None, None]  # several cases: only when asked
    asked = client.post("/api/v1/jobs?wait=30&explain=1", json={"cases": cases}).get_json()
    scored, rejected = asked["results"]
    _adds_up(scored["explanation"], scored["probability_malignant"], RF4)
    assert rejected["error"] and rejected["explanation"] is None


def test_an_upload_is_explained_only_on_request_and_only_up_to_the_limit(client, settings):
    X, y = wdbc()
    rows = ["id,diagnosis," + ",".join(FEATURES)]
    rows += [f"U{i},{y[i]}," + ",".join(repr(float(v)) for v in X[i]) for i in range(30)]
    content = ("\n".join(rows) + "\n").encode()
    job = post_upload(client, content, path="/api/v1/jobs?explain=1", model="wdbc-rf30").get_json()
    done = client.get(f"/api/v1/jobs/{job['id']}?wait=60").get_json()
    assert done["status"] == "succeeded"
    for record in client.get(f"/api/v1/jobs/{job['id']}/results").get_json()["results"]:
        _adds_up(record["explanation"], record["probability_malignant"], FEATURES)
    unasked = post_upload(client, content, model="wdbc-rf30").get_json()
    client.get(f"/api/v1/jobs/{unasked['id']}?wait=60")
    assert {r["explanation"] for r in client.get(f"/api/v1/jobs/{unasked['id']}/results").get_json()["results"]} == {
        None
    }
    limit = settings.explain_max_rows
    big = (
        "\n".join([rows[0], *(rows[1 + i % 30].replace("U", f"B{i}-", 1) for i in range(limit + 1))]) + "\n"
    ).encode()
    refused = post_upload(client, big, path="/api/v1/jobs?explain=1", model="wdbc-rf30")
    assert refused.status_code == 422
    assert f"at most {limit:,} rows" in " ".join(refused.get_json()["problems"])


def test_the_case_page_shows_what_was_entered_why_and_how_sure(client, people, app):
    flagged = _case(30, "clinic-30", radius_mean=41.5)  # far above the training range
    job = client.post("/api/v1/jobs?wait=30", json={"cases": [flagged]}).get_json()
    page = people["lab"].client(app).get(f"/jobs/{job['id']}").get_data(as_text=True)
    assert "Case clinic-30" in page and "entered on the form or sent as JSON" in page
    values = [v.strip() for v in re.findall(r'data-label="Entered">([^<]+)', page)]
    assert values == [repr(flagged[f]) for f in RF4]
    assert re.search(r'<tr class="flagged">\s*<th scope="row" data-label="Measurement">Radius \(mean\)', page)
    assert "above range" in page and "1 value is outside the range seen in training" in page
    assert page.count('data-label="Unit">px<') == 1 and "Typical range" in page
    assert page.count('<rect class="bar bar-') == 4  # one bar per measurement
    assert "toward M →" in page and "pushed toward M" in page
    result = job["results"][0]
    shown = re.search(r"<data value=\"([^\"]+)\">([^<]+)</data>", page)
    assert shown and float(shown.group(1)) == result["probability_malignant"]
    assert html.unescape(shown.group(2)) == _probability(result["probability_malignant"])
    shown = re.sub(r"<[^>]+>", "", page)  # the words on the page (the copied summary, an attribute, has its own)
    assert shown.count("Decision support only") == 2  # once on the page, once on the answer


def test_the_pdf_report_holds_the_case_and_reads_back_as_text(client, people, app):
    job = client.post("/api/v1/jobs?wait=30", json={"cases": [_case(31, "clinic-31")]}).get_json()
    response = people["lab"].client(app).get(f"/jobs/{job['id']}/report.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(response.data)).pages)
    text = re.sub(r"\s+", " ", text)
    result = job["results"][0]
    for expected in ("clinic-31", "Radius (mean)", "Texture (mean)", job["model"]["name"], job["model"]["version"],
                     job["model"]["sha256"], people["lab"].email, _probability(result["probability_malignant"]),
                     "Why the model said it"):  # fmt: skip
        assert expected in text.replace(" ", "") or expected in text, expected
    assert text.count("Decision support only") == 1
    assert ("malignant" if result["diagnosis"] == "M" else "benign") in text
    other = client.post("/api/v1/jobs?wait=30", json={"cases": [_case(1, "a"), _case(2, "b")]}).get_json()
    several = people["lab"].client(app).get(f"/jobs/{other['id']}/report.pdf")  # not a single case: the job's report
    assert several.status_code == 200 and "cytoscore-job-" in several.headers["Content-Disposition"]
    assert "Cases sent as JSON" in PdfReader(io.BytesIO(several.data)).pages[0].extract_text()
    assert people["clinician"].client(app).get(f"/jobs/{job['id']}/report.pdf").status_code == 404  # not theirs


# The fill colours of the report's bars (app.css: --malignant, --benign), as the PDF's content streams write them.
BAR_FILLS = {"M": "0.701961 0.14902 0.117647 rg", "B": "0.184314 0.427451 0.701961 rg"}


MM = 72 / 25.4  # PDF points in a millimetre


def words_off_the_page(pdf: bytes, side_margin_mm: float = 14) -> list[str]:
    """The words of a PDF, as a reader sees them drawn (pdfium places every character where the page puts it,
    transforms applied), that reach into the page's side margins (report.css: 14 mm) or beyond its edges."""
    off = []
    document = pdfium.PdfDocument(pdf)
    for number, page in enumerate(document, 1):
        width, _ = page.get_size()
        left, right = side_margin_mm * MM - 1, width - side_margin_mm * MM + 1  # a point for glyphs' overhang
        text = page.get_textpage()
        for i in range(text.count_chars()):
            char = text.get_text_range(i, 1)
            x0, _, x1, _ = text.get_charbox(i)
            if char.strip() and (x0 < left or x1 > right):
                off.append(f"page {number}: {char!r} at {x0:.0f}–{x1:.0f} pt, of {left:.0f}–{right:.0f}")
    return off


def test_a_thirty_measurement_report_draws_its_bars_in_colour_and_names_the_model_on_every_page(client, people, app):
    """Bars in the colours the caption names, and the case and the model that answered at the foot of every page,
    however many pages it takes."""
    job = client.post("/api/v1/jobs?wait=30", json={"cases": [_case(7, "clinic-30f", FEATURES)],
                                                    "model": "wdbc-rf30"}).get_json()  # fmt: skip
    (result,) = job["results"]
    pushed = {"M" if value > 0 else "B" for value in result["explanation"]["contributions"].values() if value}
    against = pushed - {result["diagnosis"]}  # the verdict's own colour is also its badge's: look for the other one
    assert against, "the case should push both ways"
    pdf_bytes = people["lab"].client(app).get(f"/jobs/{job['id']}/report.pdf").data
    assert words_off_the_page(pdf_bytes) == []  # the chart's labels, say, whole and inside the page's margins
    pdf = PdfReader(io.BytesIO(pdf_bytes))
    streams = " ".join(page.get_contents().get_data().decode("latin-1") for page in pdf.pages)
    assert all(BAR_FILLS[side] in streams for side in against)
    for number, page in enumerate(pdf.pages, 1):
        foot = re.sub(r"\s+", " ", page.extract_text())
        assert "clinic-30f" in foot and f"sha256 {job['model']['sha256'][:16]}" in foot, f"page {number}"


def test_the_jobs_list_names_a_single_case_by_its_case_id(client, people, app):
    client.post("/api/v1/jobs?wait=30", json={"cases": [_case(32, "listed-32")]})
    listing = people["lab"].client(app).get("/jobs").get_data(as_text=True)
    assert re.search(r'data-label="Input">case <span class="case-id">listed-32</span>', listing)
    assert "form or API" not in listing


def test_the_model_card_says_how_sure_the_model_is(client, people, app):
    for name in MODELS:
        card = people["clinician"].client(app).get(f"/models/{name}").get_data(as_text=True)
        brier = json.loads((ROOT / "models" / f"{name}.json").read_text())["calibration"]["brier"]
        assert f"Brier score on the 143 held-out cases: <strong>{brier:.3f}</strong>" in card
        assert "Calibrated: <strong>no</strong>" in card and '<svg class="reliability"' in card


def test_probabilities_are_never_shown_as_certain_and_plurals_are_right():
    assert [_probability(p) for p in (0.0, 0.004, 0.01, 0.5, 0.99, 0.996, 1.0)] == [
        "< 0.01", "< 0.01", "0.010", "0.500", "0.990", "> 0.99", "> 0.99"]  # fmt: skip
    assert [_plural(n, "row") for n in (0, 1, 2, 1000)] == ["0 rows", "1 row", "2 rows", "1,000 rows"]


def test_a_clinicians_home_page_offers_no_upload(people, app):
    home = people["clinician"].client(app).get("/").get_data(as_text=True)
    assert "upload" not in home.lower() and 'id="case-form"' in home
    assert home.count("Decision support only") == 1


def test_the_score_page_lists_the_persons_own_recent_cases_with_their_answers(app, worker, people):
    mine = people["clinician"].client(app)
    answers = []
    for i, case_id in ((3, "recent-a"), (7, "recent-b")):
        job = mine.post("/api/v1/jobs?wait=30", json={"cases": [_case(i, case_id)]}).get_json()
        answers.append(job["results"][0])
    theirs = people["lab"].client(app).post("/api/v1/jobs?wait=30", json={"cases": [_case(9, "not-mine")]})
    assert theirs.status_code == 201
    page = mine.get("/").get_data(as_text=True)
    recent = page[page.index('id="recent-cases"') :]
    answer = r'<span class="case-id">([^<]+)</span>.*?<span class="dx dx-([MB])">[MB]</span>.*?</span> ([^<]+)</td>'
    rows = re.findall(answer, recent, re.S)
    assert rows[:2] == [
        (a["case_id"], a["diagnosis"], html.escape(_probability(a["probability_malignant"]))) for a in answers[::-1]
    ]  # newest first, each with its answer as the case page shows it
    assert "not-mine" not in recent


def test_a_case_is_copied_to_the_form_changed_and_scored_as_a_new_case(app, people, client):
    clinician = people["clinician"]
    browser = sign_in(app, clinician.email, clinician.password)
    first = (
        people["clinician"]
        .client(app)
        .post("/api/v1/jobs?wait=30", json={"cases": [_case(12, "ward-12", radius_mean="13.50")]})
        .get_json()
    )
    case_page = browser.get(f"/jobs/{first['id']}").get_data(as_text=True)
    assert f'href="/?from={first["id"]}"' in case_page and "Change a value and score again" in case_page

    form = browser.get(f"/?from={first['id']}").get_data(as_text=True)
    assert 'id="copied-from"' in form and "The values of case" in form and first["id"][:8] in form
    assert 'name="case_id" value="ward-12"' in form.replace('id="case_id" ', "")
    assert 'value="13.50"' in form  # as it was sent, not as a float prints
    fields = dict(re.findall(r'name="([a-z_ ]+)"\s[^>]*?value="([^"]*)"', form))
    assert {f: fields[f] for f in RF4} == {f: str(_case(12, "x", radius_mean="13.50")[f]) for f in RF4}

    changed = {"csrf_token": csrf(browser, "/"), "model": "wdbc-rf4", "case_id": "ward-12", **fields}
    changed["texture_mean"] = "31.0"
    answered = browser.post("/cases", data={k: changed[k] for k in ("csrf_token", "model", "case_id", *RF4)})
    assert answered.status_code == 303
    second = answered.headers["Location"].rsplit("/", 1)[-1]
    assert second != first["id"]
    sent = wait_for_job(people["clinician"].client(app), second)
    assert sent["status"] == "succeeded"
    (now,) = people["clinician"].client(app).get(f"/api/v1/jobs/{second}/results?format=json").get_json()["results"]
    assert now["input"]["texture_mean"] == "31.0" and now["input"]["radius_mean"] == "13.50"
    (before,) = (
        people["clinician"].client(app).get(f"/api/v1/jobs/{first['id']}/results?format=json").get_json()["results"]
    )
    assert before["input"]["texture_mean"] == str(_case(12, "x")["texture_mean"])  # the first case is as it was

    upload = post_upload(client, b"id," + ",".join(RF4).encode() + b"\nA,14,20,0.1,0.1\n", "one.csv").get_json()
    wait_for_job(client, upload["id"])
    assert people["lab"].client(app).get(f"/?from={upload['id']}").status_code == 404  # a file is not one case


@pytest.fixture(scope="module")
def single_cases(app, worker, people):
    """A single case of the clinician's and one of the lab's, both answered."""
    owned = {}
    for who in ("clinician", "lab"):
        job = people[who].client(app).post("/api/v1/jobs?wait=30", json={"cases": [_case(40, who)]}).get_json()
        assert job["status"] == "succeeded"
        owned[who] = job["id"]
    return owned


@pytest.mark.parametrize("door", ["/jobs/{id}/case", "/jobs/{id}/report.pdf", "/?from={id}"])
@pytest.mark.parametrize("who", [None, "clinician", "lab", "admin"])
@pytest.mark.parametrize("owner", ["clinician", "lab"])
def test_access_matrix_for_the_answer_card_the_report_and_the_copy_to_the_form(
    app, people, single_cases, door, who, owner
):
    client = people[who].client(app) if who else app.test_client()
    response = client.get(door.format(id=single_cases[owner]))
    expected = 302 if who is None else 200 if who in (owner, "admin") else 404  # someone else's: as if missing
    assert response.status_code == expected


def _fields(page: str) -> dict[str, str]:
    return dict(re.findall(r'name="([a-z_ ]+)"\s[^>]*?value="([^"]*)"', page.replace('id="case_id" ', "")))


def test_a_case_pasted_from_a_spreadsheet_fills_the_form_by_column_name(app, people, worker):
    clinician = people["clinician"]
    browser = sign_in(app, clinician.email, clinician.password)
    # As copied from a sheet: tabs, the columns in another order, one by its scikit-learn name, a diagnosis and a
    # column this model does not read.
    pasted = ("diagnosis\tcompactness_mean\tmean radius\tarea_worst\tid\ttexture_mean\tsmoothness_mean\n"
              "M\t0.1040\t14.10\t711.2\tP-77\t19.3\t0.096\n")  # fmt: skip
    filled = browser.post(
        "/cases/paste", data={"pasted": pasted, "model": "wdbc-rf4", "csrf_token": csrf(browser, "/")}
    )
    page = filled.get_data(as_text=True)
    assert filled.status_code == 200
    notice = re.sub(r"\s+", " ", re.search(r'<p id="pasted-into"[^>]*>(.*?)</p>', page, re.S).group(1))
    assert (
        notice
        == "Filled from the paste: 5 values; not read by this model: area_worst. Check them, then score the case."
    )
    assert {k: v for k, v in _fields(page).items() if k in (*RF4, "case_id")} == {
        "case_id": "P-77", "radius_mean": "14.10", "texture_mean": "19.3", "smoothness_mean": "0.096",
        "compactness_mean": "0.1040",
    }  # fmt: skip
    assert 'id="answer-stale"' in page  # the form itself, not yet scored: nothing was sent
    form = {k: v for k, v in _fields(page).items() if k in (*RF4, "case_id")}
    answered = browser.post("/cases", data={"csrf_token": csrf(browser, "/"), "model": "wdbc-rf4", **form})
    job = wait_for_job(clinician.client(app), answered.headers["Location"].rsplit("/", 1)[-1])
    (result,) = clinician.client(app).get(f"/api/v1/jobs/{job['id']}/results?format=json").get_json()["results"]
    assert result["case_id"] == "P-77" and result["input"]["radius_mean"] == "14.10"  # as pasted


@pytest.mark.parametrize(
    ("pasted", "problem"),
    [
        ("14.1\t19.3\t0.096\t0.104\n", "the first row must name the columns"),
        ("radius_mean,texture_mean,smoothness_mean,compactness_mean\n", "exactly one case's row; this paste has 0"),
        (
            "radius_mean,texture_mean,smoothness_mean,compactness_mean\n14,19,0.1,0.1\n15,20,0.1,0.1\n",
            "this paste has 2 rows under the header",
        ),
        ("radius_mean,texture_mean,smoothness_mean,compactness_mean\n14,19,0.1\n", "the case's row has 3 cells"),
        ("radius_mean,mean radius,texture_mean\n14,14,19\n", "two pasted columns mean radius_mean"),
        ("   ", "paste two rows copied from a spreadsheet"),
    ],
)
def test_a_paste_that_is_not_a_header_and_one_row_is_refused_with_the_reason(app, people, pasted, problem):
    browser = sign_in(app, people["clinician"].email, people["clinician"].password)
    refused = browser.post("/cases/paste", data={"pasted": pasted, "model": "wdbc-rf4",
                                                 "csrf_token": csrf(browser, "/")})  # fmt: skip
    page = html.unescape(refused.get_data(as_text=True))
    assert refused.status_code == 422 and problem in page, page[page.find("paste-problems") :][:600]
    assert '<details id="paste" open>' in page and pasted.strip()[:20] in page  # kept, to correct


def test_a_paste_missing_a_measurement_leaves_its_field_empty_and_says_so(app, people):
    browser = sign_in(app, people["clinician"].email, people["clinician"].password)
    filled = browser.post("/cases/paste", data={"pasted": "radius_mean;texture_mean\n14,1;19,3\n", "model": "wdbc-rf4",
                                                "csrf_token": csrf(browser, "/")})  # fmt: skip
    page = filled.get_data(as_text=True)
    assert "not in it, left empty: smoothness_mean, compactness_mean" in re.sub(r"\s+", " ", page)
    fields = _fields(page)
    assert fields["radius_mean"] == "14,1" and fields["smoothness_mean"] == ""  # as written: scoring will check it


def test_a_paste_with_every_measurement_of_a_better_model_offers_it(app, people):
    browser = sign_in(app, people["clinician"].email, people["clinician"].password)
    X, _ = wdbc()
    pasted = "id," + ",".join(FEATURES) + "\nP-30," + ",".join(repr(float(v)) for v in X[7]) + "\n"
    four = browser.post("/cases/paste", data={"pasted": pasted, "model": "wdbc-rf4", "csrf_token": csrf(browser, "/")})
    page = four.get_data(as_text=True)
    offer = re.search(r'<form method="post" action="/cases/paste" id="better-fit".*?</form>', page, re.S).group(0)
    assert "Fill the form for wdbc-rf30 instead" in offer and 'name="model" value="wdbc-rf30"' in offer
    again = dict(re.findall(r'name="(csrf_token|model|pasted)" value="([^"]*)"', offer))
    thirty = browser.post("/cases/paste", data={k: html.unescape(v) for k, v in again.items()})
    fields = _fields(thirty.get_data(as_text=True))
    assert {f: fields[f] for f in FEATURES} == {f: repr(float(X[7, i])) for i, f in enumerate(FEATURES)}
    assert 'id="better-fit"' not in thirty.get_data(as_text=True)  # the best there is
    only_four = "\n".join([",".join(RF4), "14,19,0.1,0.1"])
    plain = browser.post("/cases/paste", data={"pasted": only_four, "model": "wdbc-rf4",
                                               "csrf_token": csrf(browser, "/")})  # fmt: skip
    assert 'id="better-fit"' not in plain.get_data(as_text=True)
