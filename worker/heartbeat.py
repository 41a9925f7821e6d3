"""A heartbeat thread for the running job: liveness of the process, not the speed of a batch.

A batch that is slow on a loaded machine must not look like a dead worker, so the beat does not wait for
batches. A hung task is not kept alive forever by it: the task time limit kills the pool process, and the
beats stop with it.
"""

from __future__ import annotations

import logging
import threading

from shared import jobs
from worker.resources import Resources

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, res: Resources, attempt: jobs.Attempt) -> None:
        self._res, self._attempt = res, attempt
        self._stop = threading.Event()
        self.lost = threading.Event()  # set when a newer attempt owns the job
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{attempt.job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self._res.settings.heartbeat_interval + 10)

    def _beat(self) -> None:
        while not self._stop.wait(self._res.settings.heartbeat_interval):
            try:
                with self._res.sessions.begin() as session:
                    alive = jobs.heartbeat(session, self._attempt)
            except Exception as exc:  # the database may be restarting; the next beat tries again
                log.warning("job %s: heartbeat failed: %s", self._attempt.job_id, type(exc).__name__)
                continue
            if not alive:
                self.lost.set()
                return
