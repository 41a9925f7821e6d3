"""Time MLflow and BentoML on cytoscore's model and files and set them beside cytoscore's own figures.

Each peer runs in its own venv under var/bench-peers/ (envs.py) with the product's scikit-learn, numpy, scipy,
skops and pandas, and the pipeline from models/<name>.skops (export_model.py, run there by file path). Measured:
- single cases: `--cases` sequential one-case POSTs after 20 warm-up ones, p50 and p99. MLflow: `mlflow models
  serve -w 2`, POST /invocations; BentoML: `bentoml serve` of service.py (2 workers), POST /predict.
- the big file: `--rows` Kaggle-layout rows. MLflow: `mlflow models predict -t csv`, start to exit; BentoML: one
  multipart POST of the file to /predict_csv, submit → full answer.
Every answer is compared with the product's own pipeline.

Usage: python -m bench.peers.run [--cases 200] [--rows 1000000] [--only mlflow] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.peers import envs, report
from bench.peers.inputs import Inputs, prepare
from bench.peers.procs import Server, free_port
from bench.stack import file_upload
from shared.modelstore import LoadedModel, load_model
from shared.settings import ROOT

HERE = ROOT / "bench" / "peers"
SCRATCH = ROOT / "var" / "bench-peers"
WARMUP = 20


def peer_env(venv_python: Path) -> dict[str, str]:
    """The environment of a peer's processes: its venv first on PATH, the product out of reach, writes in SCRATCH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, "PATH": f"{venv_python.parent}{os.pathsep}{env.get('PATH', '')}", "TMPDIR": str(SCRATCH / "tmp"),
            "BENTOML_HOME": str(SCRATCH / "bentoml-home"), "BENTOML_DO_NOT_TRACK": "true", "DO_NOT_TRACK": "true",
            "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONDONTWRITEBYTECODE": "1"}  # fmt: skip


def post(url: str, body: bytes) -> bytes:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        answer: bytes = response.read()
    return answer


def single_cases(url: str, bodies: list[bytes], label: Callable[[bytes], int]) -> tuple[list[float], list[int]]:
    """Warm up on the first WARMUP bodies, then time every body, one request after the other."""
    for body in bodies[:WARMUP]:
        post(url, body)
    times, labels = [], []
    for body in bodies:
        start = time.perf_counter()
        answer = post(url, body)
        times.append(time.perf_counter() - start)
        labels.append(label(answer))
    return times, labels


def post_file(url: str, path: Path) -> tuple[float, bytes]:
    """POST the file as multipart/form-data field `file`, streamed from disk; return (seconds, answer)."""
    start = time.perf_counter()
    with urllib.request.urlopen(file_upload(url, path), timeout=1800) as response:
        answer = response.read()
    return time.perf_counter() - start, answer


def figures(times: list[float], big: float, rows: int, how: dict[str, str]) -> list[dict[str, Any]]:
    big_name = "1M rows end to end" if rows == 1_000_000 else f"{rows:,} rows end to end"
    p50, p99 = (float(np.percentile(times, q)) * 1e3 for q in (50, 99))
    return [
        {"figure": "single case p50", "unit": "ms", "value": p50, "how": how["single"]},
        {"figure": "single case p99", "unit": "ms", "value": p99, "how": how["single"]},
        {"figure": big_name, "unit": "s", "value": big, "how": how["big"]},
    ]


def checks(inputs: Inputs, case_labels: list[int], row_labels: list[int]) -> dict[str, int]:
    """Count the answers and how many equal the product pipeline's; a missing answer stops the run."""
    if len(row_labels) != len(inputs.csv_labels) or len(case_labels) != len(inputs.case_labels):
        raise SystemExit(f"answers missing: {len(case_labels)} single, {len(row_labels):,} rows")
    return {
        "single_answers": len(case_labels),
        "single_agree": int((np.array(case_labels) == inputs.case_labels).sum()),
        "rows_answered": len(row_labels),
        "rows_agree": int((np.array(row_labels) == inputs.csv_labels).sum()),
    }


def measure_mlflow(python: Path, model: LoadedModel, inputs: Inputs) -> dict[str, Any]:
    env, bin_dir, logs = peer_env(python), python.parent, SCRATCH / "logs"
    saved = SCRATCH / f"mlflow-model-{model.sha256[:12]}"
    if not (saved / "MLmodel").is_file():
        shutil.rmtree(saved, ignore_errors=True)
        subprocess.run([str(python), str(HERE / "export_model.py"), "mlflow", "--models-dir", str(ROOT / "models"),
                        "--name", model.name, "--out", str(saved)], env=env, cwd=SCRATCH, check=True)  # fmt: skip
    port = free_port()
    serve = [str(bin_dir / "mlflow"), "models", "serve", "-m", str(saved), "--env-manager", "local", "-w", "2",
             "-h", "127.0.0.1", "-p", str(port)]  # fmt: skip
    bodies = [json.dumps({"dataframe_split": {"columns": list(model.features), "data": [list(case.values())]}}).encode()
              for case in inputs.cases]  # fmt: skip
    with Server("mlflow models serve", serve, env=env, cwd=SCRATCH, log=logs / "mlflow-serve.log",
                ready_url=f"http://127.0.0.1:{port}/ping"):  # fmt: skip
        times, labels = single_cases(f"http://127.0.0.1:{port}/invocations", bodies,
                                     lambda answer: int(json.loads(answer)["predictions"][0]))  # fmt: skip
    out = SCRATCH / "mlflow-predictions.json"
    out.unlink(missing_ok=True)
    predict = [str(bin_dir / "mlflow"), "models", "predict", "-m", str(saved), "--env-manager", "local", "-t", "csv",
               "-i", str(inputs.csv), "-o", str(out)]  # fmt: skip
    with (logs / "mlflow-predict.log").open("wb") as log:
        start = time.perf_counter()
        done = subprocess.run(predict, env=env, cwd=SCRATCH, stdout=log, stderr=subprocess.STDOUT)
        big = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"mlflow models predict failed; see {logs / 'mlflow-predict.log'}")
    rows = json.loads(out.read_text())["predictions"]
    how = {"single": "mlflow models serve -w 2, POST /invocations (dataframe_split)",
           "big": "mlflow models predict -t csv, command start → exit"}  # fmt: skip
    return {"figures": figures(times, big, len(rows), how), "checks": checks(inputs, labels, rows)}


def measure_bentoml(python: Path, model: LoadedModel, inputs: Inputs) -> dict[str, Any]:
    tag = f"{model.name}:{model.sha256[:12]}"
    env, logs = {**peer_env(python), "PEERS_MODEL_TAG": tag}, SCRATCH / "logs"
    subprocess.run([str(python), str(HERE / "export_model.py"), "bentoml", "--models-dir", str(ROOT / "models"),
                    "--name", model.name, "--tag", tag], env=env, cwd=SCRATCH, check=True)  # fmt: skip
    port = free_port()
    serve = [str(python.parent / "bentoml"), "serve", "service:WdbcPeer", "--working-dir", str(HERE),
             "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    bodies = [json.dumps({"cases": [case]}).encode() for case in inputs.cases]
    base = f"http://127.0.0.1:{port}"
    with Server("bentoml serve", serve, env=env, cwd=SCRATCH, log=logs / "bentoml-serve.log",
                ready_url=f"{base}/readyz"):  # fmt: skip
        times, labels = single_cases(f"{base}/predict", bodies, lambda answer: int(json.loads(answer)[0]))
        big, answer = post_file(f"{base}/predict_csv", inputs.csv)
    rows = json.loads(answer)
    how = {"single": "bentoml serve (2 workers), POST /predict",
           "big": "one multipart POST of the file to /predict_csv, submit → full answer"}  # fmt: skip
    return {"figures": figures(times, big, len(rows), how), "checks": checks(inputs, labels, rows)}


PEERS = {"mlflow": ("MLflow", measure_mlflow), "bentoml": ("BentoML", measure_bentoml)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--model", default="wdbc-rf4")
    parser.add_argument("--only", choices=sorted(PEERS), action="append", help="measure only this peer (repeatable)")
    parser.add_argument("--python", default="python3.11", help="the interpreter the peers' venvs are made from")
    parser.add_argument("--json", type=Path, default=None, help="also write everything here")
    args = parser.parse_args()

    for folder in ("logs", "tmp"):
        (SCRATCH / folder).mkdir(parents=True, exist_ok=True)
    model = load_model(args.model, ROOT / "models")
    inputs = prepare(SCRATCH, args.rows, args.cases, model)
    pins = envs.runtime_pins(ROOT / "requirements" / "runtime.lock")
    peers: dict[str, dict[str, Any]] = {}
    for key in args.only or PEERS:
        name, measure = PEERS[key]
        python = envs.ensure_venv(key, SCRATCH / f"venv-{key}", pins, args.python)
        print(f"measuring {name} …", flush=True)
        peers[name] = {"versions": envs.versions(python, [key, *envs.SHARED]), **measure(python, model, inputs)}
    shutil.rmtree(SCRATCH / "tmp", ignore_errors=True)  # uploads the peers spooled

    ours = report.cytoscore_figures(ROOT / "bench" / "results")
    rows = report.table(peers, ours)
    size = inputs.csv.stat().st_size
    print(f"\n{args.cases} sequential single cases after {WARMUP} warm-up; a {args.rows:,}-row file ({size / 1e6:.0f} "
          f"MB); model {model.name}; {os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}\n")  # fmt: skip
    print(report.markdown(rows))
    print("\ncytoscore's figures: " + "; ".join(f"{k}: {v['source']}" for k, v in ours.items()))
    for name, measured in peers.items():
        c = measured["checks"]
        print(f"{name}: {c['single_agree']}/{c['single_answers']} single answers and {c['rows_agree']:,}/"
              f"{c['rows_answered']:,} file answers equal cytoscore's pipeline; {measured['versions']}")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        summary = {"date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(), "model": model.name,
                   "model_sha256": model.sha256, "cases": args.cases, "warmup": WARMUP, "rows": args.rows,
                   "file_bytes": size, "peers": peers, "cytoscore": ours, "table": rows}  # fmt: skip
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
