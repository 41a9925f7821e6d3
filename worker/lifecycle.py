"""Worker start-up and shutdown: verify the models before taking work, and run the reconciler (and, beside it, the
webhook deliveries)."""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
from typing import Any

from celery import signals

from shared.jobs import reconcile
from shared.logs import configure_logging
from shared.modelstore import ModelIntegrityError
from shared.queue import make_celery
from shared.webhooks import deliver_due
from worker import shutdown
from worker.resources import resources

log = logging.getLogger(__name__)
_stop = threading.Event()


@signals.setup_logging.connect  # type: ignore[untyped-decorator]
def use_cytoscore_logging(**_: Any) -> None:
    """The same log lines as the web side (JSON outside the embedded mode); Celery's own setup is skipped."""
    configure_logging(resources().settings)


@signals.worker_init.connect  # type: ignore[untyped-decorator]
def verify_models(**_: Any) -> None:
    """Load every model in the parent before the pool forks; refuse to start on any mismatch."""
    try:
        loaded = resources().load_all_models()
    except Exception as exc:  # whatever it is, Celery would swallow it and start taking jobs it cannot score
        message = str(exc) if isinstance(exc, ModelIntegrityError) else repr(exc)
        print(f"cytoscore worker: refusing to start: {message}", file=sys.stderr, flush=True)
        log.critical("refusing to start: %s", message)
        os._exit(3)  # Celery logs and swallows exceptions from signal handlers; a bad model must stop it
    for model in loaded:
        log.info("model %s %s verified (sha256 %s)", model.name, model.version, model.sha256[:12])
    if os.environ.get("CYTOSCORE_WORKER_ROLE") == "files":
        # Files yield the CPU to single cases: the whole process tree, pool included, runs at a lower priority.
        os.nice(10)
    # The models and libraries (about 200,000 objects) live as long as the process. Frozen before the pool forks,
    # they are left out of the collector's full passes, each of which would otherwise walk them all and stall a job
    # for over 100 ms on a 2-core machine; and the children keep sharing their pages.
    gc.freeze()


@signals.worker_ready.connect  # type: ignore[untyped-decorator]
def start_reconciler(**_: Any) -> None:
    _stop.clear()
    threading.Thread(target=_reconcile_forever, name="cytoscore-reconciler", daemon=True).start()


@signals.worker_shutting_down.connect  # type: ignore[untyped-decorator]
def start_grace_period(**_: Any) -> None:
    """Warm shutdown: running jobs get `shutdown_grace` seconds, then are handed back between batches."""
    shutdown.begin(resources().settings.shutdown_grace)


@signals.worker_shutdown.connect  # type: ignore[untyped-decorator]
def stop_reconciler(**_: Any) -> None:
    _stop.set()


def _reconcile_forever() -> None:
    res = resources()
    app = make_celery(res.settings)  # its own broker connections, apart from the consumer's
    while not _stop.wait(res.settings.reconcile_interval):
        try:
            reconcile(res.sessions, app, res.settings)
        except Exception as exc:  # the database or broker may be down; try again next round
            log.warning("reconcile round failed: %s", type(exc).__name__)
        try:
            deliver_due(res.sessions, res.settings)
        except Exception as exc:  # the database may be down; the deliveries stay due for the next round
            log.warning("webhook round failed: %s", type(exc).__name__)
