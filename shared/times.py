"""Times as people read them, on pages and in the CLI: in the site's time zone (CYTOSCORE_TIME_ZONE), with the
zone's abbreviation. The JSON API, CSV and XLSX keep UTC."""

from __future__ import annotations

from datetime import datetime, tzinfo


def written(moment: datetime, zone: tzinfo, *, seconds: bool = False) -> str:
    """A moment in a zone, to the minute (or the second), e.g. "2026-12-06 16:39 CET"."""
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M" + (":%S" if seconds else "") + " %Z")


def day(moment: datetime, zone: tzinfo) -> str:
    """The day a moment falls on in a zone, e.g. "2026-12-06"."""
    return f"{moment.astimezone(zone):%Y-%m-%d}"
