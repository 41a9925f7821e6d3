"""The peers' virtual environments under var/bench-peers/, made once and reused while their pins are unchanged.

Each gets its peer's pins (bench/peers/requirements-<peer>.txt) plus the product's own scikit-learn, numpy, scipy,
skops and pandas versions, read from requirements/runtime.lock, so every peer runs the same model code.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = ("scikit-learn", "numpy", "scipy", "skops", "pandas")


def runtime_pins(lock: Path) -> list[str]:
    pinned = dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", lock.read_text(encoding="utf-8"), re.MULTILINE))
    pinned = {name.lower(): version for name, version in pinned.items()}
    missing = [name for name in SHARED if name not in pinned]
    if missing:
        raise SystemExit(f"{lock} pins no {missing}")
    return [f"{name}=={pinned[name]}" for name in SHARED]


def ensure_venv(peer: str, venv: Path, pins: list[str], python: str) -> Path:
    """Return the venv's python, installing first if the venv is missing or was made from other pins."""
    requirements = HERE / f"requirements-{peer}.txt"
    digest = hashlib.sha256(requirements.read_bytes() + "\n".join(pins).encode()).hexdigest()[:12]
    stamp, bin_python = venv / f".installed-{digest}", venv / "bin" / "python"
    if stamp.exists():
        return bin_python
    if not bin_python.exists():
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
    log = venv.parent / "logs" / f"pip-{peer}.log"
    print(f"installing {peer} into {venv} (log: {log}) …", flush=True)
    with log.open("wb") as out:
        done = subprocess.run([str(bin_python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                               "-r", str(requirements), *pins], stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    if done.returncode:
        sys.exit(f"pip failed for {peer}; see {log}")
    for old in venv.glob(".installed-*"):
        old.unlink()
    stamp.touch()
    return bin_python


def versions(python: Path, names: list[str]) -> dict[str, str]:
    """The installed versions of names inside another venv."""
    code = "import json, sys, importlib.metadata as m; print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
    out = subprocess.run([str(python), "-c", code, *names], check=True, capture_output=True, text=True).stdout
    versions: dict[str, str] = json.loads(out)
    return versions
