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


def histogram(counts: list[int]) -> Histogram:
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    n = len(counts)
    top = _nice_top(max(counts, default=0))
    slot = plot_w / n
    bars = []
    for i, count in enumerate(counts):
        h = plot_h * count / top
        bars.append(
            Bar(
                x=round(LEFT + i * slot + 1, 2),
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
    x_ticks = [Tick(round(LEFT + plot_w * v, 2), baseline + 18, f"{v:g}") for v in (0, 0.25, 0.5, 0.75, 1)]
    y_ticks = [Tick(LEFT - 6, round(TOP + plot_h * (1 - v / top), 2), f"{v:,}") for v in (0, top // 2, top)]
    total = sum(counts)
    above = sum(b.count for b in bars if b.malignant_side)
    summary = (
        f"{total:,} scored cases: {above:,} with a probability of malignancy of 0.5 or more, "
        f"{total - above:,} below 0.5."
    )
    return Histogram(
        width=WIDTH,
        height=HEIGHT,
        bars=bars,
        x_ticks=x_ticks,
        y_ticks=sorted(set(y_ticks), key=lambda t: -t.y),
        baseline=baseline,
        left=LEFT,
        right=WIDTH - RIGHT,
        threshold_x=round(LEFT + plot_w * 0.5, 2),
        total=total,
        summary=summary,
    )
