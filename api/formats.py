"""Numbers as people read them on the pages: thousands, percentages, plurals and a probability that a model never
states as certain."""

from __future__ import annotations

from flask import Flask


def thousands(value: int | None) -> str:
    return f"{value or 0:,}"


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "–"


def plural(n: int, word: str, many: str | None = None) -> str:
    """ "1 row", "2 rows", "1,000 cases" (`many` for an irregular plural)."""
    return f"{n:,} {word if n == 1 else many or word + 's'}"


def probability(p: float | None) -> str:
    """P(malignant) as shown to people: never a certain 0.000 or 1.000 from a model."""
    if p is None:
        return "–"
    if p < 0.01:
        return "< 0.01"
    if p > 0.99:
        return "> 0.99"
    return f"{p:.3f}"


def init_app(app: Flask) -> None:
    for shown in (thousands, percent, plural, probability):
        app.add_template_filter(shown)
