"""Tasks are thin: they take a job id and hand it to the runner."""

from __future__ import annotations

import logging
import uuid

from shared.queue import SCORE_TASK
from shared.reconcile import send
from worker.celery_app import app
from worker.fastpath import run_fast
from worker.resources import resources
from worker.runner import run_job
from worker.scoring import HANDED_BACK

log = logging.getLogger(__name__)


@app.task(name=SCORE_TASK)
def score_job(job_id: str) -> str:
    try:
        parsed = uuid.UUID(job_id)
    except (ValueError, TypeError, AttributeError):
        log.error("dropping a message that is not a job id")
        return "invalid"
    res = resources()
    outcome = run_fast(res, parsed) or run_job(res, parsed)  # a few JSON cases: one durable commit
    if outcome == HANDED_BACK:  # straight back on the queue for another worker; else the reconciler sends it
        send(res.sessions, app, parsed)
    return outcome
