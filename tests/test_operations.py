"""What an operator watches: readiness, Prometheus metrics, JSON logs that carry ids and no measurements."""

from __future__ import annotations

import json
import re

from testkit.support import run_cli, wdbc, wdbc_csv
from tests.support import post_upload


def test_readyz_checks_database_broker_and_models(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"database": True, "broker": True, "models": True}


def test_metrics_count_jobs_rows_durations_and_queue_depth(client, finished):
    job_id = post_upload(client, wdbc_csv(slice(0, 20))).get_json()["id"]
    finished(job_id)
    text = client.get("/metrics").get_data(as_text=True)
    succeeded = float(re.search(r'^cytoscore_jobs\{status="succeeded"\} (\S+)$', text, re.M).group(1))
    assert succeeded >= 1
    assert float(re.search(r"^cytoscore_rows_scored_total (\S+)$", text, re.M).group(1)) >= 20
    assert re.search(r"^cytoscore_scoring_seconds_count [1-9]", text, re.M)
    assert re.search(r"^cytoscore_time_to_result_seconds_bucket\{le=\"\+Inf\"\} [1-9]", text, re.M)
    assert re.search(r"^cytoscore_queue_depth [0-9]", text, re.M)
    assert job_id not in text


def test_worker_logs_are_json_lines_with_job_ids_and_no_measurements(client, finished, worker):
    job_id = post_upload(client, wdbc_csv(slice(0, 20))).get_json()["id"]
    finished(job_id)
    records = []
    for line in worker.output().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    mine = [r for r in records if job_id in r["message"]]
    assert mine and all({"time", "level", "logger", "pid"} <= set(r) for r in mine)
    X, _ = wdbc()
    # Values precise enough not to collide with timings or counts in Celery's own lines ("0.4s", "13").
    distinctive = [text for text in map(repr, X[:20].ravel().tolist()) if len(text.replace(".", "")) >= 5]
    # Whole numbers only: Celery's "succeeded in 0.11843s" must not count as the measurement 0.1184.
    found = [t for t in distinctive if re.search(rf"(?<![\d.]){re.escape(t)}(?![\d])", worker.output())]
    assert distinctive and not found, found


def test_the_worker_health_check_finds_both_of_its_nodes(worker, service_env):
    """`cytoscore worker --ping` (the container's health check) needs this host's cases and files nodes."""
    answer = run_cli(["worker", "--ping"], service_env, timeout=60)
    nodes = answer.stdout.split()
    assert any(re.fullmatch(r"cases-\d+@\S+:", n) for n in nodes), answer.stdout
    assert any(re.fullmatch(r"files-\d+@\S+:", n) for n in nodes), answer.stdout
