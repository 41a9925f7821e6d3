"""The Celery app both sides share; what goes on it is in `shared.jobs.send`."""

from __future__ import annotations

from typing import Any

from celery import Celery

from shared.settings import Settings

SCORE_TASK = "cytoscore.score_job"


def _transport_options(settings: Settings) -> dict[str, Any]:
    if settings.broker_url.startswith("filesystem"):
        folder = settings.broker_folder
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        return {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
        }
    return {
        # Above the longest job, so Redis never redelivers a task that is still running.
        "visibility_timeout": settings.visibility_timeout,
        "socket_timeout": settings.broker_timeout,
        "socket_connect_timeout": settings.broker_timeout,
        "health_check_interval": settings.broker_health_check_interval,
        "retry_on_timeout": False,
    }


def make_celery(settings: Settings) -> Celery:
    """Build the Celery app from the settings; nothing connects until a task is sent or a worker starts."""
    app = Celery("cytoscore", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_default_queue=settings.queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.task_soft_time_limit,
        task_time_limit=settings.task_time_limit,
        broker_transport_options=_transport_options(settings),
        broker_connection_timeout=settings.broker_timeout,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        broker_pool_limit=4,
    )
    return app
