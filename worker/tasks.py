"""Tasks are thin: they take a job id and hand it to the worker loop."""

from __future__ import annotations

import logging
import uuid

from shared import jobs
from shared.queue import SCORE_TASK
from worker.celery_app import app
from worker.loop import HANDED_BACK, run
from worker.resources import resources

log = logging.getLogger(__name__)


@app.task(name=SCORE_TASK)  # type: ignore[untyped-decorator]
def score_job(job_id: str) -> str:
    try:
        parsed = uuid.UUID(job_id)
    except (ValueError, TypeError, AttributeError):
        log.error("dropping a message that is not a job id")
        return "invalid"
    res = resources()
    outcome = run(res, app, parsed)
    if outcome == HANDED_BACK:  # straight back on the queue for another worker; else the reconciler sends it
        jobs.send(res.sessions, app, res.settings, parsed)
    return outcome
