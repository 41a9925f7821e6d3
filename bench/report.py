"""Run every benchmark and set their figures in one table beside the tutorial, the in-process limit and the goals.

`make bench` runs each part as its own process (`python -m bench.<module> ... --json`), then prints the table and
writes it to bench/results/bench.json; `--docs` also rewrites docs/performance.md between <!-- bench:start -->
and <!-- bench:end -->. Parts: `upload-100k` (bench.upload_throughput, 100,000 rows, 2 workers), `xlsx-100k` (the
same rows as a workbook), `upload-1m` (1,000,000 rows, three runs in turns), `scaling` (bench.scaling, 1M rows with
1 and 2 workers, three runs of each), `single` (bench.single_case), `floor` (bench.single_case_floor), `load`
(bench.load), `clinicians` (bench.clinicians_first). `--quick` skips the 1M-row runs; `--from-json` runs nothing: it
makes the table again from the runs saved in bench.json. Figures, not timed tests: a goal missed is reported,
never an error.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOCS = ROOT / "docs" / "performance.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"

PARTS: dict[str, list[str]] = {
    "upload-100k": ["bench.upload_throughput", "--rows", "100000", "--workers", "2"],
    "xlsx-100k": ["bench.upload_throughput", "--rows", "100000", "--workers", "2", "--xlsx"],
    "upload-1m": ["bench.upload_throughput", "--rows", "1000000", "--workers", "2", "--repeats", "3"],
    "scaling": ["bench.scaling", "--rows", "1000000", "--repeats", "3"],
    "single": ["bench.single_case"],
    "floor": ["bench.single_case_floor"],
    "load": ["bench.load"],
    "clinicians": ["bench.clinicians_first"],
}
QUICK = ("upload-100k", "xlsx-100k", "single", "load")


@dataclass
class Row:
    figure: str
    cytoscore: float | None
    tutorial: float | None
    limit: float | None
    unit: str
    ratio: float | None
    goal: str
    passed: bool | None  # None: informational, or not measured
    baseline: float | None = None  # what the ratio divides by, when it is another cytoscore figure
    baseline_label: str = ""


def run_parts(parts: list[str]) -> dict[str, dict[str, Any]]:
    """Run each part in its own process; a part that fails is reported and left out."""
    found: dict[str, dict[str, Any]] = {}
    for part in parts:
        out = RESULTS / f"{part}.json"
        out.unlink(missing_ok=True)
        module, *args = PARTS[part]
        print(f"\n== {part}: python -m {module} {' '.join(args)}", flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, "-m", module, *args, "--json", str(out)], cwd=ROOT)
        print(f"== {part}: exit {code} after {time.monotonic() - started:.0f} s", flush=True)
        if out.exists():  # bench.load writes its figures even when it then exits 1 for request errors
            found[part] = json.loads(out.read_text())
    return found


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator is not None and denominator else None


def _at_least(value: float | None, goal: float) -> bool | None:
    return None if value is None else value >= goal


def _medians(run: dict[str, Any]) -> str:
    repeats = run.get("repeats", 1)
    return f", medians of {repeats} runs each" if repeats > 1 else ""


def upload_rows(runs: dict[str, dict[str, Any]]) -> list[Row]:
    u100, u1m, scale = (runs.get(k, {}) for k in ("upload-100k", "upload-1m", "scaling"))

    def end_to_end(run: dict[str, Any], figure: str, goal: float | None) -> Row:
        system, limit = run.get("end_to_end_s"), run.get("limit_s")
        ratio = _ratio(limit, system)
        return Row(figure, system, None, limit, "s", ratio, f"≥ {goal:.2f}" if goal else "—",
                   _at_least(ratio, goal) if goal else None)  # fmt: skip

    def flat(role: str) -> Row:
        big, small = u1m.get(f"{role}_peak_rss_mb"), u100.get(f"{role}_peak_rss_mb")
        ratio = _ratio(big, small)
        return Row(f"{role} peak RSS, 1M-row job ÷ 100k-row job", big, None, None, "MB", ratio, "≤ 1.20",
                   None if ratio is None else ratio <= 1.2, small, "100k")  # fmt: skip

    # Medians of several runs with each number of workers, taken in turns (bench/scaling.py).
    times = f"medians of {scale.get('repeats', '?')} runs each"
    scaling = Row(f"scaling: 1M-row upload, 1 worker ÷ 2 workers, {times}", scale.get("median_2_workers_s"), None,
                  None, "s", scale.get("ratio"), "≥ 1.70", _at_least(scale.get("ratio"), 1.7),
                  scale.get("median_1_worker_s"), "1 worker")  # fmt: skip
    # The same runs from the moment the POST answered (the upload received, checked and stored) to succeeded:
    # the part of the job that the workers do, without the upload, which one web process does alike in both.
    after = Row("scaling: the same, from the POST's answer to succeeded", scale.get("median_2_workers_after_post_s"),
                None, None, "s", scale.get("after_post_ratio"), "—", None, scale.get("median_1_worker_after_post_s"),
                "1 worker")  # fmt: skip
    # On two cores the web, the workers and PostgreSQL share the CPU: 2 workers are judged against a run that kept
    # every core busy, the machine's CPU seconds for the job divided by its cores (bench/scaling.py).
    bound, share = scale.get("median_2_workers_cpu_bound_s"), scale.get("median_2_workers_share_of_cpu_bound")
    cpu_bound = Row(f"scaling: 1M-row upload, 2 workers, share of the CPU-bound maximum (machine CPU seconds ÷ "
                    f"{scale.get('cores', '?')} cores), {times}", scale.get("median_2_workers_s"), None, bound, "s",
                    share, "≥ 0.90", _at_least(share, 0.9))  # fmt: skip
    workbook = runs.get("xlsx-100k", {})
    xlsx_s, csv_s = workbook.get("end_to_end_s"), u100.get("end_to_end_s")
    xlsx = Row("100k-row XLSX upload, end to end, 2 workers ÷ the same rows as CSV", xlsx_s, None, None, "s",
               _ratio(xlsx_s, csv_s), "≤ 3.00", None if xlsx_s is None or csv_s is None else xlsx_s <= 3 * csv_s,
               csv_s, "CSV")  # fmt: skip
    return [
        end_to_end(u1m, f"1M-row upload, end to end, 2 workers{_medians(u1m)}", 0.90),
        end_to_end(u100, "100k-row upload, end to end, 2 workers", None),
        xlsx,
        scaling,
        cpu_bound,
        after,
        flat("worker"),
        flat("web"),
    ]


def single_rows(s: dict[str, Any]) -> list[Row]:
    p50, p99, t50 = s.get("single_p50_ms"), s.get("single_p99_ms"), s.get("tutorial_p50_ms")
    rows = [
        Row("single case p50", p50, t50, None, "ms", _ratio(t50, p50), "≥ 1.00 (≤ tutorial p50)",
            _at_least(_ratio(t50, p50), 1.0)),
        Row("single case p99", p99, s.get("tutorial_p99_ms"), None, "ms", _ratio(3 * t50 if t50 else None, p99),
            "≥ 1.00 (≤ 3 × tutorial p50)", _at_least(_ratio(3 * t50 if t50 else None, p99), 1.0)),
    ]  # fmt: skip
    plain = s.get("single_unexplained_p50_ms")
    if plain is not None:
        rows.append(Row("single case p50 with its explanation ÷ without (explain=0)", p50, None, None, "ms",
                        _ratio(p50, plain), "≤ 1.20", None if p50 is None else p50 <= 1.2 * plain, plain,
                        "without"))  # fmt: skip
    for q, mine in (("p50", p50), ("p99", p99)):
        theirs = s.get(f"tutorial500_{q}_ms")
        if theirs is not None:
            rows.append(Row(f"single case {q}, tutorial with 500 trees", mine, theirs, None, "ms",
                            _ratio(theirs, mine), "—", None))  # fmt: skip
    upload, rowwise = s.get("upload_10k_s"), s.get("tutorial_rowwise_10k_s")
    speedup = _ratio(rowwise, upload)
    rows.append(Row("10k rows: one upload vs posting row by row", upload, rowwise, None, "s", speedup, "≥ 200",
                    _at_least(speedup, 200)))  # fmt: skip
    return rows


def floor_rows(f: dict[str, Any]) -> list[Row]:
    """A single case against the shape's own floor with Celery, measured in turns in the same run."""
    p50, p99, floor = f.get("cytoscore_p50_ms"), f.get("cytoscore_p99_ms"), f.get("celery_floor_p50_ms")
    return [
        Row("single case p50 ÷ the Celery floor's p50, in turns (bench/single_case_floor.py)", p50, None, None, "ms",
            _ratio(p50, floor), "≤ 1.50", None if p50 is None or not floor else p50 <= 1.5 * floor, floor,
            "floor"),
        Row("single case p99 ÷ the Celery floor's p50, in turns", p99, None, None, "ms", _ratio(p99, floor), "≤ 3.00",
            None if p99 is None or not floor else p99 <= 3 * floor, floor, "floor"),
    ]  # fmt: skip


def clinician_rows(c: dict[str, Any]) -> list[Row]:
    """A single case while a 1M-row upload and ten 10k-row uploads are scored: against its own idle figure, beside
    the same crowd with nothing else running (the machine's CPU per case bounds the crowd's rate on its own)."""
    idle, p50, p99 = c.get("idle_p50_ms"), c.get("load_p50_ms"), c.get("load_p99_ms")
    alone, cpu = c.get("crowd_alone_p50_ms"), c.get("machine_cpu_ms_per_case")
    clients = c.get("load_clients", 10)
    during = f"single case while the lab's files are scored (1M + 10 x 10k rows, 2 workers, {clients} clients)"
    return [
        Row(f"{during}: p50 ÷ idle p50", p50, None, None, "ms", _ratio(p50, idle), "≤ 2.00",
            None if p50 is None or idle is None else p50 <= 2 * idle, idle, "idle"),
        Row(f"{during}: p99", p99, None, None, "ms", None, "≤ 100 ms", None if p99 is None else p99 <= 100),
        Row(f"single case, {clients} clients with nothing else running: p50 ÷ idle p50", alone, None, None, "ms",
            _ratio(alone, idle), "—", None, idle, "idle"),
        Row("single case: the machine's CPU per case, all processes", cpu, None, None, "ms", None, "—", None),
    ]  # fmt: skip


def load_rows(load: dict[str, Any]) -> list[Row]:
    crowd = "under load"  # the crowd's size is in bench.json's runs["load"]
    return [
        Row(f"{crowd}: jobs per second", load.get("jobs_per_s"), None, None, "jobs/s", None, "—", None),
        Row(f"{crowd}: single case time to result p50", load.get("single_p50_s"), None, None, "s", None, "—", None),
        Row(f"{crowd}: single case time to result p99", load.get("single_p99_s"), None, None, "s", None, "—", None),
        Row(f"{crowd}: request errors", load.get("errors"), None, None, "", None, "—", None),
    ]


def machine() -> dict[str, Any]:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor() or "unknown",
    )  # fmt: skip
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in line)
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gb": round(mem_kb / 1024**2, 1),
            "python": platform.python_version(), "postgresql": _postgres_version()}  # fmt: skip


def _postgres_version() -> str | None:
    try:
        import psycopg

        admin = os.environ.get("CYTOSCORE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
        with psycopg.connect(admin, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]).split()[0] if row else None
    except Exception:
        return None


def _cell(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100 or (unit in ("MB", "") and float(value).is_integer()):
        return f"{value:,.0f}"
    return f"{value:.1f}" if unit == "jobs/s" else f"{value:.2f}"


def markdown(report: dict[str, Any]) -> str:
    lines = ["| figure | cytoscore | tutorial | in-process limit | ratio | goal | pass |", "|" + "---|" * 7]
    for r in report["rows"]:
        figure = f"{r['figure']} ({r['unit']})" if r["unit"] else r["figure"]
        ours = "not run" if r["cytoscore"] is None else _cell(r["cytoscore"], r["unit"])
        if r.get("baseline") is not None:
            ours += f" ({r['baseline_label']}: {_cell(r['baseline'], r['unit'])})"
        verdict = {True: "yes", False: "no", None: "—"}[r["pass"]]
        lines.append(f"| {figure} | {ours} | {_cell(r['tutorial'], r['unit'])} | {_cell(r['limit'], r['unit'])} "
                     f"| {_cell(r['ratio'], '')} | {r['goal']} | {verdict} |")  # fmt: skip
    return "\n".join(lines)


def heading(report: dict[str, Any]) -> str:
    m = report["machine"]
    postgres = f", PostgreSQL {m['postgresql']}" if m.get("postgresql") else ""
    return (
        f"Measured on {report['date']} with `{report['command']}` on {m['cpu']}, {m['cores']} cores, "
        f"{m['ram_gb']:g} GB RAM, Python {m['python']}{postgres}."
    )


def docs_problem(page: Path = DOCS) -> str | None:
    """Why the page's bench block cannot be rewritten, or None: the page is written by hand, never made here."""
    if not page.is_file():
        return f"{page} does not exist: create it with a {START} … {END} block, then run again"
    text = page.read_text()
    if START not in text or END not in text:
        return f"{page} has no {START} … {END} block to rewrite"
    return None


def write_docs(report: dict[str, Any], page: Path = DOCS) -> None:
    if problem := docs_problem(page):
        raise SystemExit(problem)
    text = page.read_text()
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    page.write_text(f"{before}{START}\n{heading(report)}\n\n{markdown(report)}\n{END}{after}")


def build(runs: dict[str, dict[str, Any]], command: str) -> dict[str, Any]:
    rows = [*upload_rows(runs), *single_rows(runs.get("single", {})), *floor_rows(runs.get("floor", {})),
            *clinician_rows(runs.get("clinicians", {})), *load_rows(runs.get("load", {}))]  # fmt: skip
    return {
        "date": time.strftime("%Y-%m-%d"),
        "command": command,
        "machine": machine(),
        "rows": [{**{k: v for k, v in asdict(r).items() if k != "passed"}, "pass": r.passed} for r in rows],
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 1M-row runs")
    parser.add_argument("--only", nargs="+", choices=sorted(PARTS), help="run only these parts")
    parser.add_argument("--from-json", action="store_true", help="reuse bench/results/bench.json; run nothing")
    parser.add_argument("--docs", action="store_true", help=f"rewrite the bench block of {DOCS.relative_to(ROOT)}")
    parser.add_argument("--command", default=None, help="how the figures were made, for the heading line")
    args = parser.parse_args()

    if args.docs and (problem := docs_problem()):
        raise SystemExit(problem)  # before hours of runs, not after
    RESULTS.mkdir(parents=True, exist_ok=True)
    failed: list[str] = []
    if args.from_json:  # the table made again from the saved runs, by this code: the same figures, today's goals
        saved = json.loads((RESULTS / "bench.json").read_text())
        report = {**build(saved["runs"], saved["command"]), "date": saved["date"], "machine": saved["machine"]}
    else:
        parts = args.only or (list(QUICK) if args.quick else list(PARTS))
        command = args.command or " ".join(["python -m bench.report", *sys.argv[1:]]).replace(" --docs", "")
        runs = run_parts(parts)
        report = build(runs, "make bench" if command == "python -m bench.report" else command)
        (RESULTS / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
        failed = [p for p in parts if p not in runs]
    print(f"\n{heading(report)}\n\n{markdown(report)}\n")
    if args.docs:
        write_docs(report)
        print(f"{DOCS.relative_to(ROOT)} updated between {START} and {END}")
    if failed:
        raise SystemExit(f"no figures from: {', '.join(failed)} (see their output above)")


if __name__ == "__main__":
    main()
