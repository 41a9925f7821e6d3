"""Show where a big upload's time goes, with py-spy on the web and on every worker through one job.

Runs bench.upload_throughput's measurement with `py-spy record --subprocesses --format raw` attached to gunicorn's
master and each Celery main process from the POST until `succeeded`. Collapsed stacks go to
bench/results/profile-<process>.txt (speedscope, flamegraph.pl); the summary, printed and written to
bench/results/profile.md, gives per process the seconds sampled busy and the top modules and functions. py-spy
leaves idle threads out, so waiting shows as the gap between a process's CPU seconds and the job's wall time.

Usage: python -m bench.profile_job [--rows 1000000] [--workers 2] [--rate 100]
       python -m bench.profile_job --summarise bench/results/profile-*.txt   (no run)
"""

from __future__ import annotations

import argparse
import contextlib
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from bench.upload_throughput import Services, measure
from shared.settings import ROOT

RESULTS = Path(__file__).resolve().parent / "results"
PY_SPY = Path(sys.executable).parent / "py-spy"
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
OURS = ("api", "worker", "shared", "bench", "tests")
PROCESS_KINDS = {"web": ("gunicorn master", "gunicorn worker"), "worker": ("Celery main process", "pool process")}


@contextlib.contextmanager
def recording(running: Services, rate: int, folder: Path, files: list[Path]) -> Iterator[None]:
    """py-spy on the web's and each worker's process tree for as long as the block runs; `files` gets the outputs."""
    targets = {"web": running.web.proc.pid}
    targets.update({f"worker-{i}": w.proc.pid for i, w in enumerate(running.workers, 1)})
    with contextlib.ExitStack() as logs:
        spies = []
        for name, pid in targets.items():
            out = folder / f"profile-{name}.txt"
            out.unlink(missing_ok=True)
            files.append(out)
            log = logs.enter_context((folder / f"py-spy-{name}.log").open("w"))
            argv = [str(PY_SPY), "record", "--pid", str(pid), "--subprocesses", "--nonblocking", "--rate", str(rate),
                    "--format", "raw", "--output", str(out)]  # fmt: skip
            spies.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))
        time.sleep(2)  # let every py-spy attach before the clock starts
        try:
            yield
        finally:
            for spy in spies:
                spy.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
            for spy in spies:
                spy.wait(120)


def module_of(path: str) -> str:
    """A frame's file as a module group: `shared.intake` for ours, the top-level package for the rest."""
    if path.startswith("<frozen "):  # <frozen importlib._bootstrap>
        return path.removeprefix("<frozen ").split(".")[0].rstrip(">")
    path = path.split("site-packages/")[-1].removeprefix(f"{ROOT}/")
    parts = path.removesuffix(".py").split("/")
    return ".".join(parts[:2]) if parts[0] in OURS else parts[0]


def read_stacks(path: Path) -> dict[str, Counter[tuple[str, ...]]]:
    """Collapsed stacks by process: the root process is `main`, any child is named by its pid."""
    by_process: dict[str, Counter[tuple[str, ...]]] = defaultdict(Counter)
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        processes = [f for f in frames if f.startswith("process ")]
        name = "main" if len(processes) < 2 else "child " + processes[-1].split(":", 1)[0].removeprefix("process ")
        by_process[name][tuple(f for f in frames if not f.startswith("process "))] += int(count)
    return by_process


def _function(frame: str) -> tuple[str, str]:
    match = FRAME.match(frame)
    if not match:
        return frame, "?"
    return f"{match['function']} ({match['file'].split('site-packages/')[-1]})", module_of(match["file"])


def summarise(stacks: Counter[tuple[str, ...]], rate: int, wall: float | None = None, top: int = 8) -> list[str]:
    """CPU seconds, own time by module and by function, and total time of our own functions (api, worker, shared)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    modules: Counter[str] = Counter()
    for frames, count in stacks.items():
        if not frames:
            continue
        leaf, module = _function(frames[-1])
        own[leaf] += count
        modules[module] += count
        for function, mod in {_function(f) for f in frames}:
            if mod.split(".")[0] in OURS:
                total[function] += count
    samples = sum(stacks.values())

    def share(counter: Counter[str]) -> str:
        return ", ".join(f"{name} {n / samples:.0%}" for name, n in counter.most_common(top)) or "—"

    of_wall = f" in {wall:.1f} s of wall time" if wall else ""
    return [
        f"sampled busy (on CPU or waiting for it): {samples / rate:.1f} s{of_wall}",
        f"own time by module: {share(modules)}",
        f"own time by function: {share(own)}",
        f"total time of our functions: {share(total)}",
    ]


def report(files: list[Path], rate: int, figures: dict[str, Any] | None = None) -> str:
    lines = ["# Where a big upload's time goes (py-spy, on-CPU samples)", ""]
    if figures:
        lines.append(
            f"{figures['rows']:,} rows, {figures['workers']} worker process(es), {figures['date']}: end to end "
            f"{figures['end_to_end_s']:.1f} s (POST answered after {figures['post_s']:.1f} s; job queued "
            f"{figures['queued_s'] or 0:.1f} s, running {figures['running_s'] or 0:.1f} s; in-process limit "
            f"{figures['limit_s']:.1f} s), with py-spy attached"
        )
        workers = ", ".join(f"{t:.1f}" for t in figures["worker_cpu_s"])
        database = figures.get("postgres_cpu_s")
        backends = f", PostgreSQL backends {database:.1f} (not seen by py-spy)" if database is not None else ""
        lines.append(
            f"\nCPU seconds during the job (/proc, whole process trees): web {figures['web_cpu_s']:.1f}, "
            f"workers {workers}{backends}"
        )
        lines.append("")
    wall = figures["end_to_end_s"] if figures else None
    everything: Counter[tuple[str, ...]] = Counter()
    for path in files:
        name = path.stem.removeprefix("profile-")
        kinds = PROCESS_KINDS["web" if name == "web" else "worker"]
        for process, stacks in sorted(read_stacks(path).items()):
            everything.update(stacks)
            kind = kinds[0] if process == "main" else f"{kinds[1]} {process.removeprefix('child ')}"
            lines.append(f"## {name}: {kind}")
            lines.extend(f"- {line}" for line in summarise(stacks, rate, wall))
            lines.append("")
    lines.append("## all processes together")
    lines.extend(f"- {line}" for line in summarise(everything, rate, wall, top=12))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--model", default="wdbc-rf4")
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--xlsx", action="store_true", help="upload the rows as an XLSX workbook instead of CSV")
    parser.add_argument("--summarise", type=Path, nargs="+", help="summarise these collapsed-stack files; no run")
    args = parser.parse_args()

    RESULTS.mkdir(parents=True, exist_ok=True)
    figures = None
    files: list[Path] = args.summarise or []
    if not args.summarise:
        if not PY_SPY.exists():
            raise SystemExit(f"{PY_SPY} is missing: `make install` (py-spy is in requirements/dev.in)")
        watch = partial(recording, rate=args.rate, folder=RESULTS, files=files)
        figures = measure(args.rows, args.workers, args.model, watch=watch, workbook=args.xlsx)
    text = report(files, args.rate, figures)
    (RESULTS / "profile.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
