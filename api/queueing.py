"""The web side's handle on the broker: it only ever sends job ids."""

from __future__ import annotations

from celery import Celery
from flask import Flask, current_app

from shared.queue import make_celery
from shared.settings import Settings


def init_app(app: Flask, settings: Settings) -> None:
    app.extensions["cytoscore.celery"] = make_celery(settings)


def celery() -> Celery:
    celery_app: Celery = current_app.extensions["cytoscore.celery"]
    return celery_app
