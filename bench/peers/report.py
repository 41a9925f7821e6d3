"""cytoscore's own figures beside the peers': read from bench/results/, compared, printed and written as JSON.

cytoscore's figures come from `make bench`: bench/results/bench.json (a "rows" list of dicts with "figure" and
"cytoscore") first, bench/results/single_case.json (single_p50_ms, single_p99_ms) for single cases it lacks.
A figure found in neither reads "not measured". Every figure here is a time, so lower is better.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

_MILLION = r"(\b1 ?m\b|1,000,000|1 000 000|1000000|million)"
#: figure → (what a bench.json figure says, lower case; unit of the peers' value; key in single_case.json)
FIGURES = {
    "single case p50": (r"single case p50", "ms", "single_p50_ms"),
    "single case p99": (r"single case p99", "ms", "single_p99_ms"),
    "1M rows end to end": (rf"{_MILLION}.*end to end|end to end.*{_MILLION}", "s", None),
}


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _value(row: dict[str, Any], unit: str) -> float | None:
    """The row's cytoscore value in unit: a number (unit from the row's "unit" or its figure), or text like "41 s"."""
    raw = row.get("cytoscore")
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        value, said = float(raw), str(row.get("unit") or row.get("figure", ""))
    elif isinstance(raw, str) and (match := re.search(r"\d[\d,]*\.?\d*", raw)):
        value, said = float(match.group().replace(",", "")), raw
    else:
        return None
    given = "ms" if re.search(r"\bms\b", said) else "s" if re.search(r"(^|[\s(])s\b", said) else unit
    return value * {("s", "ms"): 1e3, ("ms", "s"): 1e-3}.get((given, unit), 1.0)


def cytoscore_figures(results: Path) -> dict[str, dict[str, Any]]:
    """Each figure in FIGURES as {"value": float | None, "unit", "source"}."""
    bench = _read(results / "bench.json")
    rows = bench.get("rows", []) if isinstance(bench, dict) else []
    single = _read(results / "single_case.json") or {}
    found: dict[str, dict[str, Any]] = {}
    for figure, (pattern, unit, single_key) in FIGURES.items():
        entry: dict[str, Any] = {"value": None, "unit": unit, "source": "not measured"}
        for row in rows:
            name = str(row.get("figure", "")).lower().replace("-", " ") if isinstance(row, dict) else ""
            if re.search(pattern, name) and (value := _value(row, unit)) is not None:
                entry = {"value": value, "unit": unit, "source": f"bench.json: {row['figure']}"}
                break
        else:
            if single_key and isinstance(single, dict) and isinstance(single.get(single_key), int | float):
                entry = {"value": float(single[single_key]), "unit": unit, "source": f"single_case.json: {single_key}"}
        found[figure] = entry
    return found


def compare(peer_value: float, ours: float | None) -> str:
    if ours is None:
        return "not measured"
    ratio = peer_value / ours
    return f"ahead ×{ratio:.2f}" if ratio >= 1 else f"behind ×{1 / ratio:.2f}"


def table(peers: dict[str, dict[str, Any]], ours: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per peer figure; cytoscore's value is None where it has no figure of that name."""
    rows = []
    for peer, measured in peers.items():
        for fig in measured["figures"]:
            mine = ours.get(fig["figure"], {}).get("value")
            rows.append({"peer": peer, "figure": f"{fig['figure']} ({fig['unit']})", "peer_value": fig["value"],
                         "cytoscore": mine, "cytoscore_vs_peer": compare(fig["value"], mine)})  # fmt: skip
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| peer | figure | peer value | cytoscore value | cytoscore ahead/behind by (ratio) |",
             "|---|---|---|---|---|"]  # fmt: skip
    for row in rows:
        ours = "not measured" if row["cytoscore"] is None else f"{row['cytoscore']:.2f}"
        lines.append(f"| {row['peer']} | {row['figure']} | {row['peer_value']:.2f} | {ours} | "
                     f"{row['cytoscore_vs_peer']} |")  # fmt: skip
    return "\n".join(lines)
