"""When a whole input looks misread: the counts each batch adds up, and the job-level verdict drawn from them.

Rows outside the training range are scored and flagged one by one; rows with implausible values are rejected. Either
alone is a row's problem. Many of them in one input, or any row whose geometry does not hold, says the input itself
was misread (a decimal comma or a '.' read as a thousands separator, columns swapped, other units). Such a job is
held for review: its results are not shown until a lab user confirms them (docs/plausibility.md).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Held for review when more than this share of the rows is out of the training range or implausible. Real data sit
#: far below: 0.35 % of the 569 bundled rows (wdbc-rf4) and of 200,000 rows jittered by 2 % from them.
REVIEW_SHARE = 0.05
#: The share is judged only from this many rows: a few cases, or a single one, are each flagged beside their answer.
REVIEW_MIN_ROWS = 20
#: A value this many times the training maximum cannot be a unit or a rounding slip: it is a misread decimal mark.
FAR = 100.0


@dataclass(frozen=True)
class Tally:
    """Rows of a batch (or of a whole input, added up) that make the input as a whole suspect."""

    out_of_range: int = 0  # scored, with a value beyond the training range
    implausible: int = 0  # rejected for a value outside its plausibility limit or the geometry
    geometry: int = 0  # of those, rejected because area, perimeter and radius do not fit, or worst < mean
    far: int = 0  # with a value at least FAR times the training maximum

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.out_of_range + other.out_of_range,
            self.implausible + other.implausible,
            self.geometry + other.geometry,
            self.far + other.far,
        )


def verdict(rows: int, tally: Tally) -> str | None:
    """Why the job must be held for review, in one sentence for its page and API; None if it need not be."""
    if rows < 2:
        return None  # a single case is judged on its own: its flags and its reasons are beside its answer
    suspect = tally.out_of_range + tally.implausible
    share = suspect / rows if rows else 0.0
    crowded = rows >= REVIEW_MIN_ROWS and share > REVIEW_SHARE
    if not crowded and not tally.geometry:
        return None
    reasons: list[str] = []
    if tally.far and (crowded or tally.far * 2 >= suspect):
        reasons.append(
            f"{_percent(tally.far, rows)} of rows have values over {FAR:,.0f}× the usual range: check the decimal "
            "separator (a '.' read as a thousands separator turns 0.117 into 117)"
        )
    elif crowded:
        reasons.append(
            f"{_percent(suspect, rows)} of rows have values outside the training range or implausible: check the "
            "columns, their units and the decimal separator"
        )
    if tally.geometry:
        reasons.append(
            f"{tally.geometry:,} {'row breaks' if tally.geometry == 1 else 'rows break'} the geometry of a nucleus "
            "(area and perimeter must fit the radius; worst is never below mean): check the columns and their units"
        )
    return "; ".join(reasons) + ". The results are held until a lab user confirms them; or upload a corrected file."


def _percent(part: int, whole: int) -> str:
    value = 100 * part / whole
    return f"{value:.0f} %" if value >= 1 else f"{value:.1g} %"
