"""Times on the pages, in the site's time zone (`shared.times`), and the day filters' bounds in that zone."""

from __future__ import annotations

from datetime import date, datetime, time, tzinfo

from flask import Flask, current_app

from shared.times import written


def zone() -> tzinfo:
    return current_app.config["CYTOSCORE"].zone  # type: ignore[no-any-return]


def when(moment: datetime | None, seconds: bool = False) -> str:
    """A moment in the site's zone, e.g. "2026-12-06 16:39 CET"; a dash for never."""
    if moment is None:
        return "–"
    return written(moment, zone(), seconds=seconds)


def midnight(day: date) -> datetime:
    """The start of a day in the site's zone (a day filter's bound)."""
    return datetime.combine(day, time(), tzinfo=zone())


def init_app(app: Flask) -> None:
    app.add_template_filter(when)
