"""When to hand a running job back: the worker is shutting down, or this pool process was told to stop.

The main process learns of a warm shutdown (SIGTERM) from Celery; the pool processes that run the jobs do not.
So the main process writes a deadline into memory shared with its forked pool processes, and the runner reads
it between batches. A pool process that gets SIGTERM itself (its whole process group was signalled, or Celery
cancels its task after losing the broker) hands its job back at the next batch instead of dying mid-batch.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

# Created at import, in the main process, before the pool forks: every pool process shares this one value.
_deadline = multiprocessing.RawValue("d", 0.0)
_told_to_stop = False


def begin(grace: float) -> None:
    """Main process: running jobs may go on for `grace` seconds, then hand back between batches."""
    if not _deadline.value:
        _deadline.value = time.time() + grace


def should_hand_back() -> bool:
    return _told_to_stop or 0 < _deadline.value <= time.time()


@contextmanager
def running_job() -> Iterator[None]:
    """While a job runs here, a SIGTERM asks it to hand back between batches instead of killing the process.

    Installed per job, not at process start: billiard sets its own SIGTERM handler after Celery's process
    initialiser, and that handler is put back as soon as the job ends (an idle pool process exits as usual).
    """
    global _told_to_stop
    if threading.current_thread() is not threading.main_thread():  # signals can only be caught there
        yield
        return
    _told_to_stop = False
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _told_to_stop = False


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    global _told_to_stop
    _told_to_stop = True
