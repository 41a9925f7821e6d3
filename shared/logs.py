"""Logging for both sides: one JSON object per line in production, plain text in the embedded mode.

Messages carry job ids, never patient measurements.
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from shared.settings import Settings

_HANDLER = "cytoscore"
_TEXT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_json if settings.log_json is not None else not settings.embedded:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter(_TEXT))
    handler.set_name(_HANDLER)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER]:
        root.removeHandler(old)  # configuring twice (tests, reloads) replaces ours and leaves others alone
    root.addHandler(handler)
    root.setLevel(logging.INFO)
