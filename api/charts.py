"""The histogram of malignancy probabilities, laid out on the server; `_histogram.html` draws it as SVG.

Only geometry and words are computed here; the template writes the SVG with presentation attributes and classes,
never a style attribute, so the page works under `style-src 'self'`.
"""

from __future__ import annotations

from dataclasses import dataclass

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 16, 40  # room for the axes' labels


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    count: int
    low: float
    high: float
    malignant_side: bool  # at or above the 0.5 decision threshold

    @property
    def label(self) -> str:
        cases = "case" if self.count == 1 else "cases"
        return f"{self.low:.2f}–{self.high:.2f}: {self.count} {cases}"


@dataclass(frozen=True)
class Tick:
    x: float
    y: float
    text: str


@dataclass(frozen=True)
class Histogram:
    width: int
    height: int
    bars: list[Bar]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    baseline: float  # y of the x axis
    left: float  # x of the y axis
    right: float
    threshold_x: float
    total: int
    summary: str  # one sentence for people who cannot see the chart


def _nice_top(peak: int) -> int:
    """The y axis' top: the peak rounded up to 1, 2 or 5 times a power of ten."""
    if peak <= 5:
        return max(peak, 1)
    magnitude: int = 10 ** (len(str(peak)) - 1)
    for step in (1, 2, 5, 10):
        if peak <= step * magnitude:
            return step * magnitude
    return peak  # not reached


# About the widest a digit or comma of the ticks' font is, in the chart's units; the y axis moves right to make
# room for its widest label ("100,000" needs 7 of them, more than LEFT leaves).
TICK_CHAR = 8


def histogram(counts: list[int]) -> Histogram:
    n = len(counts)
    top = _nice_top(max(counts, default=0))
    left = max(LEFT, 6 + 4 + TICK_CHAR * len(f"{top:,}"))
    plot_w = WIDTH - left - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    slot = plot_w / n
    bars = []
    for i, count in enumerate(counts):
        h = plot_h * count / top
        bars.append(
            Bar(
                x=round(left + i * slot + 1, 2),
                y=round(TOP + plot_h - h, 2),
                width=round(slot - 2, 2),
                height=round(h, 2),
                count=count,
                low=i / n,
                high=(i + 1) / n,
                malignant_side=i / n >= 0.5,
            )
        )
    baseline = TOP + plot_h
    x_ticks = [Tick(round(left + plot_w * v, 2), baseline + 18, f"{v:g}") for v in (0, 0.25, 0.5, 0.75, 1)]
    y_ticks = [Tick(left - 6, round(TOP + plot_h * (1 - v / top), 2), f"{v:,}") for v in (0, top // 2, top)]
    total = sum(counts)
    above = sum(b.count for b in bars if b.malignant_side)
    summary = (
        f"{total:,} scored {'case' if total == 1 else 'cases'}: {above:,} with a probability of malignancy of 0.5 or "
        f"more, {total - above:,} below 0.5."
    )
    return Histogram(
        width=WIDTH,
        height=HEIGHT,
        bars=bars,
        x_ticks=x_ticks,
        y_ticks=sorted(set(y_ticks), key=lambda t: -t.y),
        baseline=baseline,
        left=left,
        right=WIDTH - RIGHT,
        threshold_x=round(left + plot_w * 0.5, 2),
        total=total,
        summary=summary,
    )


# The bars' width, one row per measurement, the least room for the labels on the left; on the right, half the
# widest tick label ("+0.42").
CONTRIB_PLOT, CONTRIB_ROW, CONTRIB_LABEL = 274, 28, 150
CONTRIB_TOP, CONTRIB_BOTTOM, CONTRIB_RIGHT = 26, 34, 24
# About the widest a letter of the labels' font is on average, in the chart's units (13 px system-ui: "Fractal
# dimension (standard error)" is 223 units in DejaVu Sans, 6.6 a letter): the label column widens to the longest.
LABEL_CHAR = 7.2


@dataclass(frozen=True)
class Push:
    """One measurement's bar: to the right it pushed the answer toward M, to the left toward B."""

    label: str
    value: float
    x: float
    y: float
    width: float
    height: float
    label_y: float
    toward_m: bool

    @property
    def words(self) -> str:
        direction = "toward malignant" if self.toward_m else "toward benign"
        return f"{self.label}: {self.value:+.3f} ({direction})"


@dataclass(frozen=True)
class Contributions:
    width: int
    height: int
    pushes: list[Push]
    zero_x: float
    top: float
    baseline: float
    left: float
    right: float
    x_ticks: list[Tick]
    base: float
    total: float
    summary: str


def contributions(labels: dict[str, str], base: float, values: dict[str, float], probability: float) -> Contributions:
    """Horizontal bars from a zero line, largest push first; `labels` names each feature for people."""
    ordered = sorted(values.items(), key=lambda item: (-abs(item[1]), item[0]))
    span = max((abs(v) for _, v in ordered), default=0.0) or 1.0
    height = CONTRIB_TOP + CONTRIB_ROW * len(ordered) + CONTRIB_BOTTOM
    longest = max((len(labels.get(name, name)) for name, _ in ordered), default=0)
    left = max(CONTRIB_LABEL, 8 + round(LABEL_CHAR * longest))
    right = left + CONTRIB_PLOT
    zero = (left + right) / 2
    half = (right - left) / 2
    pushes = []
    for i, (name, value) in enumerate(ordered):
        y = CONTRIB_TOP + i * CONTRIB_ROW
        length = half * abs(value) / span
        pushes.append(
            Push(
                label=labels.get(name, name),
                value=value,
                x=round(zero if value >= 0 else zero - length, 2),
                y=round(y + 5, 2),
                width=round(max(length, 0.5), 2),
                height=CONTRIB_ROW - 10,
                label_y=round(y + CONTRIB_ROW / 2, 2),
                toward_m=value > 0,
            )
        )
    baseline = CONTRIB_TOP + CONTRIB_ROW * len(ordered)
    ticks = [Tick(round(zero + half * f, 2), baseline + 16, f"{f * span:+.2f}" if f else "0") for f in (-1, 0, 1)]
    toward_m = [p.label for p in pushes if p.toward_m][:2]
    toward_b = [p.label for p in pushes if not p.toward_m][:2]
    summary = (
        f"The model's average answer is {base:.3f}; the measurements bring it to {probability:.3f}. "
        + (f"Pushed most toward malignant: {', '.join(toward_m)}. " if toward_m else "")
        + (f"Pushed most toward benign: {', '.join(toward_b)}." if toward_b else "")
    ).strip()
    return Contributions(
        width=right + CONTRIB_RIGHT,
        height=height,
        pushes=pushes,
        zero_x=round(zero, 2),
        top=CONTRIB_TOP - 8,
        baseline=baseline,
        left=left,
        right=right,
        x_ticks=ticks,
        base=base,
        total=probability,
        summary=summary,
    )


RELIABILITY_SIZE, RELIABILITY_PAD = 320, 44


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    predicted: float
    observed: float
    count: int
    radius: float

    @property
    def label(self) -> str:
        cases = "case" if self.count == 1 else "cases"
        return f"predicted {self.predicted:.2f}, observed {self.observed:.2f} ({self.count} {cases})"


@dataclass(frozen=True)
class Reliability:
    size: int
    low: float  # the plot's corner in SVG units: (low, high) is 0 predicted, 0 observed
    high: float
    points: list[Point]
    path: str  # the polyline through the points
    ticks: list[Tick]
    summary: str


def reliability(bins: list[dict[str, float]], brier: float) -> Reliability:
    """A reliability diagram: each bin's mean predicted probability against the share that was malignant."""
    low, high = RELIABILITY_PAD, RELIABILITY_SIZE - 12
    span = high - low
    most = max((b["count"] for b in bins), default=1)
    points = [
        Point(
            x=round(low + span * b["predicted"], 2),
            y=round(high - span * b["observed"], 2),
            predicted=b["predicted"],
            observed=b["observed"],
            count=int(b["count"]),
            radius=round(3 + 5 * (b["count"] / most) ** 0.5, 2),
        )
        for b in bins
    ]
    path = " ".join(f"{p.x},{p.y}" for p in points)
    ticks = [Tick(round(low + span * v, 2), round(high - span * v, 2), f"{v:g}") for v in (0, 0.5, 1)]
    worst = max(points, key=lambda p: abs(p.predicted - p.observed), default=None)
    summary = f"Brier score {brier:.3f} on the held-out cases (0 is perfect; always answering 0.5 scores 0.25)." + (
        f" The furthest bin from the diagonal: {worst.label}." if worst else ""
    )
    return Reliability(RELIABILITY_SIZE, low, high, points, path, ticks, summary)


@dataclass(frozen=True)
class RocCurve:
    size: int
    low: float  # as the reliability diagram: (low, high) is the corner (0, 0)
    high: float
    path: str  # the polyline from (0, 0) to (1, 1) through every threshold
    ticks: list[Tick]
    summary: str


def roc(
    points: list[tuple[float, float]], auc: float, low_ci: float, high_ci: float, rows: int, reference: str
) -> RocCurve:
    """The ROC curve: true-positive rate (sensitivity) against false-positive rate (1 - specificity), of `rows`
    with a `reference` ("supplied", "confirmed" or "confirmed or supplied") diagnosis."""
    low, high = RELIABILITY_PAD, RELIABILITY_SIZE - 12
    span = high - low
    path = " ".join(f"{round(low + span * x, 2)},{round(high - span * y, 2)}" for x, y in points)
    ticks = [Tick(round(low + span * v, 2), round(high - span * v, 2), f"{v:g}") for v in (0, 0.5, 1)]
    summary = (
        f"ROC curve of {rows:,} rows with a {reference} diagnosis: area under it {auc:.3f} "
        f"(95 % interval {low_ci:.3f}–{high_ci:.3f}); the diagonal is a model that guesses."
    )
    return RocCurve(RELIABILITY_SIZE, low, high, path, ticks, summary)
