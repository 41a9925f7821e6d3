"""The API keeps its contract: schemathesis fuzzes every /api/v1 operation from the OpenAPI document the app
serves, stateful links on, against the real web app, worker, PostgreSQL and Redis, as a lab user and as a
clinician. Any server error, or any answer its document does not describe, fails the test."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api import schemas
from api.results import FIELDS

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Bounded so both roles' runs, stateless and stateful, take well under 3 minutes here.
EXAMPLES, SCENARIOS, STEPS = 100, 50, 10
FUZZ = settings(
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)
CALLS: Counter[str] = Counter()
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture(scope="module")
def fuzz_app(settings_for_fuzz):  # type: ignore[no-untyped-def]
    from api import create_app

    app = create_app(settings_for_fuzz)
    app.config.update(TESTING=True)
    yield app
    app.extensions["cytoscore.engine"].dispose()


@pytest.fixture(scope="module")
def settings_for_fuzz(settings):  # type: ignore[no-untyped-def]
    """The session's settings with room for the fuzzer's jobs (the caps have tests of their own)."""
    return settings.model_copy(update={"jobs_rate_limit": "100000 per minute", "max_jobs_in_flight": 100_000})


@pytest.fixture(scope="module")
def api_schema(fuzz_app, worker):  # type: ignore[no-untyped-def]
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", fuzz_app)


def _count(case: Any, response: Any) -> None:
    CALLS[f"{case.method} {case.path} {response.status_code}"] += 1


@pytest.mark.parametrize("who", ["lab", "clinician"])
def test_every_operation_answers_as_documented(api_schema, people, who):
    headers = {"Authorization": f"Bearer {people[who].token}"}
    started = time.monotonic()
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @settings(FUZZ, max_examples=EXAMPLES)
        @schemathesis_given(operation)
        def call(case: Any) -> None:
            response = case.call(headers=headers)
            _count(case, response)
            case.validate_response(response, checks=CHECKS)

        call()
    print(f"\n{who} stateless: {_summary()} in {time.monotonic() - started:.0f} s")


@pytest.mark.parametrize("who", ["lab", "clinician"])
def test_linked_calls_answer_as_documented(api_schema, people, who):
    headers = {"Authorization": f"Bearer {people[who].token}"}
    started = time.monotonic()

    class Workflow(api_schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": headers}

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
            _count(case, response)
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs or None)

    Workflow.run(settings=settings(FUZZ, max_examples=SCENARIOS, stateful_step_count=STEPS))
    print(f"\n{who} stateful: {_summary()} in {time.monotonic() - started:.0f} s")


def schemathesis_given(operation: Any) -> Any:
    from hypothesis import given

    return given(case=operation.as_strategy())


def _summary() -> str:
    total = sum(CALLS.values())
    errors = sum(n for key, n in CALLS.items() if key.endswith((" 500", " 502", " 503", " 504")))
    codes = Counter(key.rsplit(" ", 1)[1] for key in CALLS.elements())
    CALLS.clear()
    return f"{total} calls, {errors} server errors, by status {dict(sorted(codes.items()))}"


def test_the_document_is_openapi_3_1_and_describes_every_api_operation(app):
    anyone = app.test_client()  # no sign-in: the document tells nothing about anyone's jobs
    document = anyone.get("/api/v1/openapi.json").get_json()
    assert document["openapi"] == "3.1.0" and document["security"] == [{"bearer": []}]
    served = {
        (re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method.lower())  # <int:hook_id> is {hook_id}
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/") and rule.endpoint not in ("api_v1.openapi", "api_v1.docs")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    described = {(path, method) for path, operations in document["paths"].items() for method in operations}
    assert served == described
    for path, operations in document["paths"].items():
        for operation in operations.values():
            assert {"401", "429"} <= set(operation["responses"]), path
            assert operation["description"] or operation["summary"], path
    created = document["paths"]["/api/v1/jobs"]["post"]
    assert set(created["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
    assert {p["name"] for p in created["parameters"]} == {"wait", "explain"}
    assert created["responses"]["202"]["links"]["get_results"]["parameters"] == {"job_id": "$response.body#/id"}
    results = document["paths"]["/api/v1/jobs/{job_id}/results"]["get"]["responses"]["200"]["content"]
    assert set(results) == {"application/json", "text/csv", XLSX}


def test_every_reference_in_the_document_resolves_however_often_it_is_asked_for(app):
    # spectree moved each model's nested schemas out of its models as it made the document, so from the second
    # request on (in any process that had served it once) 17 references pointed at nothing.
    anyone = app.test_client()
    for _ in range(3):
        document = anyone.get("/api/v1/openapi.json").get_json()
        named = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(document)))
        assert named and named <= set(document["components"]["schemas"]), named - set(document["components"]["schemas"])
        assert "Waited.Result" in named and not any("$defs" in s for s in document["components"]["schemas"].values())


def test_every_field_a_result_is_sent_with_is_described():
    # An undescribed field would pass the fuzzing unnoticed: a property the document lacks still conforms.
    assert set(schemas.Result.model_fields) == {*FIELDS, "explanation"}
    assert set(schemas.ResultWithInput.model_fields) == {*FIELDS, "explanation", "input"}


def test_the_reference_page_is_served_from_here_without_a_cdn(app):
    anyone = app.test_client()
    page = anyone.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    scripts = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', html)
    assert scripts and all(s.startswith("/static/") for s in scripts)
    for url in scripts:
        with anyone.get(url) as served:
            assert served.status_code == 200
    assert "/api/v1/openapi.json" in html
