"""Check that the Dockerfiles and docker-compose.yml fit the code they deploy.

    .venv-deploy/bin/python deploy/check_deploy.py --compose-bin PATH [--env-file .env.example]

Checks, each printed as `ok` or `FAIL`:
  dockerfile  every COPY source exists and survives .dockerignore; the final stage holds every file the
              contract names, runs as a non-root user and has a HEALTHCHECK; the builder installs with
              --require-hashes.
  commands    the executable of each app service's command and health check is installed by
              requirements/runtime.lock (or is the project's own console script, or the base image's).
  targets     every gunicorn/celery target (api.wsgi:app, worker.celery_app, ...) imports in .venv.
  environment every variable the app requires (Settings fields without a default, os.environ["X"],
              DATABASE_URL, BROKER_URL, SECRET_KEY) is set, non-empty, for every app service; every
              CYTOSCORE_* variable given to a service is a Settings field (a typo would be ignored).
  compose     the shape issue 8 asks for: health checks, depends_on conditions, volumes, published ports.
Exit status 1 if any check failed.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP_PYTHON = ROOT / ".venv" / "bin" / "python"
DOCKERFILES = ("Dockerfile.api", "Dockerfile.worker")
#: What an image needs, from the deployment contract.
IMAGE_FILES = ("api", "worker", "shared", "client", "models", "migrations", "alembic.ini")
#: Fixed by the contract, whatever the code says.
CONTRACT_TARGETS = ("gunicorn api.wsgi:app", "celery worker.celery_app")
CONTRACT_REQUIRED_ENV = ("DATABASE_URL", "BROKER_URL", "SECRET_KEY")
#: Executables the base image (python:3.11-slim) provides.
BASE_IMAGE_EXECUTABLES = {"python", "python3", "sh", "bash"}
#: Executable -> the distribution that installs it, for those whose names differ or that .venv may lack.
KNOWN_EXECUTABLES = {"celery": "celery", "gunicorn": "gunicorn", "flower": "flower", "alembic": "alembic"}


@dataclass
class Report:
    failures: int = 0
    section: str = ""
    lines: list[str] = field(default_factory=list)

    def start(self, section: str) -> None:
        self.section = section
        print(f"\n== {section}")

    def ok(self, message: str) -> None:
        print(f"  ok    {message}")

    def fail(self, message: str) -> None:
        self.failures += 1
        print(f"  FAIL  {message}")

    def note(self, message: str) -> None:
        print(f"  note  {message}")

    def check(self, condition: bool, message: str, why: str = "") -> bool:
        if condition:
            self.ok(message)
        else:
            self.fail(f"{message}{': ' + why if why else ''}")
        return condition


# --- Dockerfiles ----------------------------------------------------------------------------------------


@dataclass
class Instruction:
    line: int
    keyword: str
    args: str


def dockerfile_instructions(path: Path) -> list[Instruction]:
    """Join continuation lines, drop comments, and split into (keyword, arguments)."""
    out: list[Instruction] = []
    buffer, start = "", 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        buffer += stripped
        keyword, _, args = buffer.partition(" ")
        out.append(Instruction(start, keyword.upper(), args.strip()))
        buffer = ""
    return out


def split_args(args: str) -> list[str]:
    if args.startswith("["):
        return [str(word) for word in json.loads(args)]
    return shlex.split(args)


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    path = ROOT / ".dockerignore"
    patterns = []
    if not path.exists():
        return patterns
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        line = line.lstrip("!").strip().strip("/")
        regex, i = "", 0
        while i < len(line):
            if line.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif line.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif line[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif line[i] == "?":
                regex, i = regex + "[^/]", i + 1
            else:
                regex, i = regex + re.escape(line[i]), i + 1
        patterns.append((negated, re.compile(regex + r"\Z")))
    return patterns


def excluded_from_context(relpath: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides."""
    parts = relpath.strip("/").split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negated, pattern in patterns:
        if any(pattern.match(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def check_dockerfiles(report: Report) -> dict[str, dict[str, str]]:
    """Check the Dockerfiles; return each one's final-stage ENV, CMD and HEALTHCHECK for later checks."""
    report.start("dockerfile: COPY sources, final stage, builder")
    patterns = dockerignore_patterns()
    report.check(bool(patterns), ".dockerignore exists and has patterns")
    finals: dict[str, dict[str, str]] = {}
    for name in DOCKERFILES:
        path = ROOT / name
        if not report.check(path.exists(), f"{name} exists"):
            continue
        all_stages = stages(dockerfile_instructions(path))
        for stage in all_stages:
            base = stage[0].args.split()[0]
            report.check(base == "python:3.11-slim", f"{name}:{stage[0].line} FROM {base}", "want python:3.11-slim")
            for ins in stage:
                if ins.keyword not in ("COPY", "ADD"):
                    continue
                words = split_args(ins.args)
                if any(w.startswith("--from=") for w in words):
                    continue
                sources = [w for w in words if not w.startswith("--")][:-1]
                for source in sources:
                    exists = (ROOT / source).exists()
                    ignored = excluded_from_context(source, patterns)
                    report.check(
                        exists and not ignored,
                        f"{name}:{ins.line} COPY {source}",
                        "missing from the repository" if not exists else "excluded by .dockerignore",
                    )
        builder = "\n".join(i.args for s in all_stages[:-1] for i in s if i.keyword == "RUN")
        report.check(
            "--require-hashes" in builder and "requirements/runtime.lock" in builder,
            f"{name}: builder installs requirements/runtime.lock with --require-hashes",
        )
        report.check("--no-deps" in builder, f"{name}: builder installs the project with --no-deps")
        final = all_stages[-1]
        copied = set()
        for ins in final:
            if ins.keyword == "COPY" and not any(w.startswith("--from=") for w in split_args(ins.args)):
                copied.update(w.strip("/") for w in split_args(ins.args)[:-1] if not w.startswith("--"))
        missing = [f for f in IMAGE_FILES if f not in copied]
        report.check(not missing, f"{name}: final stage copies {', '.join(IMAGE_FILES)}", f"missing {missing}")
        users = [i.args for i in final if i.keyword == "USER"]
        report.check(
            bool(users) and users[-1].split(":")[0] not in ("root", "0"),
            f"{name}: final stage runs as a non-root user ({users[-1] if users else 'no USER'})",
        )
        healthchecks = [i.args for i in final if i.keyword == "HEALTHCHECK"]
        report.check(bool(healthchecks), f"{name}: final stage has a HEALTHCHECK")
        runs = [i.args for i in final if i.keyword == "RUN"]
        build_tools = [a for a in runs if re.search(r"pip install|\b(gcc|g\+\+|make|build-essential|\S+-dev)\b", a)]
        caches = [a for a in runs if "apt-get install" in a and "rm -rf /var/lib/apt/lists/*" not in a]
        report.check(
            not build_tools and not caches,
            f"{name}: final stage installs no build tools and leaves no caches (runtime libraries only)",
        )
        env: dict[str, str] = {}
        for ins in final:
            if ins.keyword == "ENV":
                for word in shlex.split(ins.args):
                    key, sep, value = word.partition("=")
                    if sep:
                        env[key] = value
        cmd = [i.args for i in final if i.keyword == "CMD"]
        finals[name] = {
            "env": json.dumps(env),
            "cmd": cmd[-1] if cmd else "",
            "healthcheck": healthchecks[-1] if healthchecks else "",
        }
    return finals


# --- compose ----------------------------------------------------------------------------------------------


def resolved_compose(compose_bin: str, env_file: Path) -> dict:
    out = subprocess.run(
        [
            compose_bin,
            "-f",
            str(ROOT / "docker-compose.yml"),
            "--env-file",
            str(env_file),
            "--profile",
            "*",
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"FAIL: docker compose config: {out.stderr.strip()}")
    return json.loads(out.stdout)


def app_services(config: dict) -> dict[str, str]:
    """Service name -> the Dockerfile its image is built from, for services running our images."""
    by_image: dict[str, str] = {}
    for svc in config["services"].values():
        dockerfile = (svc.get("build") or {}).get("dockerfile")
        if dockerfile in DOCKERFILES and svc.get("image"):
            by_image[svc["image"]] = dockerfile
    result = {}
    for name, svc in config["services"].items():
        dockerfile = (svc.get("build") or {}).get("dockerfile") or by_image.get(svc.get("image", ""))
        if dockerfile in DOCKERFILES:
            result[name] = dockerfile
    return result


def words_of(command: object) -> list[str]:
    if command is None:
        return []
    if isinstance(command, str):
        return shlex.split(command)
    return [str(word) for word in command]  # type: ignore[union-attr]


def healthcheck_words(test: list[str] | None) -> list[str]:
    if not test or test[0] == "NONE":
        return []
    if test[0] == "CMD-SHELL":
        return shlex.split(test[1].replace("$$", "$"))
    return test[1:] if test[0] == "CMD" else test


def lock_packages() -> set[str]:
    text = (ROOT / "requirements" / "runtime.lock").read_text(encoding="utf-8")
    return {normalize(m.group(1)) for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==", text, re.MULTILINE)}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def project_scripts() -> dict[str, str]:
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return dict(data.get("project", {}).get("scripts", {}))


def run_app_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run code in the app's venv, from the project root, with an environment that holds no secrets."""
    with tempfile.TemporaryDirectory() as var_dir:
        env = {
            # sbin too: the embedded PostgreSQL, started as root on a new machine, adds its user with useradd.
            "PATH": f"{APP_PYTHON.parent}:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": os.environ.get("HOME", "/root"),
            "CYTOSCORE_VAR_DIR": var_dir,
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        return subprocess.run(
            [str(APP_PYTHON), "-c", code, *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=120,
            check=False,
        )


VENV_SCRIPTS = """
import json
from importlib.metadata import distributions
out = {}
for dist in distributions():
    for ep in dist.entry_points:
        if ep.group == "console_scripts":
            out[ep.name] = dist.metadata["Name"]
print(json.dumps(out))
"""


def check_commands(report: Report, config: dict, apps: dict[str, str], finals: dict) -> None:
    report.start("commands: every executable is installed by runtime.lock")
    locked = lock_packages()
    scripts = project_scripts()
    venv_scripts: dict[str, str] = {}
    if APP_PYTHON.exists():
        out = run_app_python(VENV_SCRIPTS)
        if out.returncode == 0:
            venv_scripts = json.loads(out.stdout)
    for name, svc in config["services"].items():
        if name not in apps:
            image = svc.get("image", "?")
            report.note(f"{name}: third-party image {image}; its command is that image's business")
            continue
        dockerfile = apps[name]
        command = words_of(svc.get("command")) or split_args(finals.get(dockerfile, {}).get("cmd", "[]") or "[]")
        probes = [("command", command)]
        probes.append(("healthcheck", healthcheck_words((svc.get("healthcheck") or {}).get("test"))))
        hc = finals.get(dockerfile, {}).get("healthcheck", "")
        if (svc.get("healthcheck") or {}).get("disable"):
            report.note(f"{name}: health check disabled in compose")
        elif " CMD " in f" {hc}":
            hc_words = split_args(f" {hc}".split(" CMD ", 1)[1].strip())
            if hc_words[:2] == ["sh", "-c"]:
                hc_words = shlex.split(hc_words[2].removeprefix("exec "))
            probes.append((f"{dockerfile} HEALTHCHECK", hc_words))
        for label, words in probes:
            if not words:
                continue
            exe = words[0]
            if exe in ("sh", "bash") and len(words) > 2 and words[1] == "-c":
                exe = shlex.split(words[2].removeprefix("exec "))[0]
            if exe in scripts:
                report.ok(f"{name} {label}: `{exe}` is the project's console script ({scripts[exe]})")
            elif exe in BASE_IMAGE_EXECUTABLES:
                report.ok(f"{name} {label}: `{exe}` comes with the base image")
            else:
                dist = venv_scripts.get(exe) or KNOWN_EXECUTABLES.get(exe)
                report.check(
                    dist is not None and normalize(dist) in locked,
                    f"{name} {label}: `{exe}` is installed by {dist or '?'}, pinned in runtime.lock",
                    f"{dist or 'no known package'} is not in requirements/runtime.lock",
                )


# --- import targets ---------------------------------------------------------------------------------------


IMPORT_TARGET = """
import importlib, sys
kind, target = sys.argv[1], sys.argv[2]
module_name, _, attr = target.partition(":")
module = importlib.import_module(module_name)
if kind == "gunicorn":
    obj = getattr(module, attr or "application")
    assert callable(obj), f"{target} is not a WSGI callable"
    print(f"{type(obj).__module__}.{type(obj).__name__}")
else:
    from celery import Celery
    if attr:
        obj = getattr(module, attr)
    else:
        found = [getattr(module, n) for n in ("app", "celery") if isinstance(getattr(module, n, None), Celery)]
        found = found or [v for v in vars(module).values() if isinstance(v, Celery)]
        assert found, f"no Celery app in {module_name}"
        obj = found[0]
    assert isinstance(obj, Celery), f"{target} is not a Celery app"
    print(f"Celery app {obj.main!r}")
"""


def discover_targets(config: dict, apps: dict[str, str]) -> set[tuple[str, str]]:
    targets = {tuple(t.split()) for t in CONTRACT_TARGETS}
    texts = []
    for name in apps:
        svc = config["services"][name]
        texts.append(" ".join(words_of(svc.get("command"))))
        texts.append(" ".join((svc.get("healthcheck") or {}).get("test") or []))
    cli = ROOT / "shared" / "cli.py"
    for text in texts:
        for match in re.finditer(r"celery\s+(?:-A|--app)[ =](\S+)", text):
            targets.add(("celery", match.group(1)))
        for match in re.finditer(r"gunicorn\s.*?([a-z_][\w.]*:[a-z_]\w*)", text):
            targets.add(("gunicorn", match.group(1)))
    if cli.exists():
        for node in ast.walk(ast.parse(cli.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if re.fullmatch(r"api(\.\w+)+:\w+", node.value):
                    targets.add(("gunicorn", node.value))
                elif re.fullmatch(r"worker(\.\w+)+", node.value):
                    targets.add(("celery", node.value))
    return targets


def check_targets(report: Report, config: dict, apps: dict[str, str]) -> None:
    report.start("targets: gunicorn and celery targets import in .venv")
    if not report.check(APP_PYTHON.exists(), f"app venv {APP_PYTHON.relative_to(ROOT)} exists"):
        return
    for kind, target in sorted(discover_targets(config, apps)):
        out = run_app_python(IMPORT_TARGET, kind, target)
        last = (out.stderr.strip().splitlines() or [""])[-1]
        report.check(out.returncode == 0, f"{kind} {target} imports ({out.stdout.strip() or last})", last)


# --- environment ------------------------------------------------------------------------------------------


SETTINGS_FIELDS = """
import json
from shared.settings import Settings
prefix = Settings.model_config.get("env_prefix", "")
fields = {}
for name, info in Settings.model_fields.items():
    alias = info.validation_alias if isinstance(info.validation_alias, str) else None
    env = alias or (prefix + name).upper()
    fields[env] = info.is_required()
print(json.dumps(fields))
"""

ENV_READ = re.compile(
    r"""os\.environ\[\s*["'](?P<req>[A-Z][A-Z0-9_]*)["']\s*\]"""
    r"""|(?:os\.environ\.get|os\.getenv|environ\.get)\(\s*["'](?P<opt>[A-Z][A-Z0-9_]*)["']"""
)


def python_sources() -> Iterator[Path]:
    for folder in ("api", "worker", "shared", "migrations"):
        yield from sorted((ROOT / folder).rglob("*.py"))


def check_environment(report: Report, config: dict, apps: dict[str, str], finals: dict) -> None:
    report.start("environment: what the app reads is set for every app service")
    required: dict[str, str] = {name: "the deployment contract" for name in CONTRACT_REQUIRED_ENV}
    optional: set[str] = set()
    settings_vars: set[str] = set()
    out = run_app_python(SETTINGS_FIELDS) if APP_PYTHON.exists() else None
    if out is not None and out.returncode == 0:
        for env_name, is_required in json.loads(out.stdout).items():
            settings_vars.add(env_name)
            if is_required:
                required.setdefault(env_name, "a Settings field without a default")
            else:
                optional.add(env_name)
        report.ok(f"shared.settings.Settings: {len(settings_vars)} fields read from the environment")
    else:
        why = (out.stderr.strip().splitlines() or ["no .venv"])[-1] if out else "no .venv"
        report.fail(f"shared.settings.Settings could not be read: {why}")
    for path in python_sources():
        for match in ENV_READ.finditer(path.read_text(encoding="utf-8")):
            where = path.relative_to(ROOT)
            if match.group("req"):
                required.setdefault(match.group("req"), f"os.environ[...] in {where}")
            else:
                optional.add(match.group("opt"))
    report.note(f"required: {', '.join(f'{k} ({v})' for k, v in sorted(required.items()))}")
    report.note(f"optional (defaults apply): {', '.join(sorted(optional - set(required))) or '-'}")
    for name, dockerfile in sorted(apps.items()):
        svc_env = {k: v for k, v in (config["services"][name].get("environment") or {}).items()}
        image_env = json.loads(finals.get(dockerfile, {}).get("env", "{}"))
        missing = [var for var in sorted(required) if not (svc_env.get(var) or image_env.get(var))]
        report.check(not missing, f"{name}: sets {', '.join(sorted(required))}", f"missing or empty: {missing}")
        if settings_vars:
            unknown = sorted(v for v in svc_env if v.startswith("CYTOSCORE_") and v not in settings_vars)
            report.check(
                not unknown,
                f"{name}: every CYTOSCORE_* variable it sets is a Settings field",
                f"unknown (silently ignored by the app): {unknown}",
            )
            read = settings_vars | optional | set(required) - set(CONTRACT_REQUIRED_ENV)
            unread = sorted(v for v in svc_env if v not in read)
            if unread:
                report.note(f"{name}: sets {', '.join(unread)}, which the code does not read (yet)")


# --- compose shape ----------------------------------------------------------------------------------------


def check_compose_shape(report: Report, config: dict, apps: dict[str, str]) -> None:
    report.start("compose: the shape issue 8 asks for")
    services = config["services"]
    expected = {"postgres", "redis", "migrate", "api", "worker", "flower"}
    report.check(
        expected <= set(services),
        f"services {', '.join(sorted(expected))} exist",
        f"missing {sorted(expected - set(services))}",
    )
    for name in ("postgres", "redis", "api", "worker"):
        svc = services.get(name, {})
        test = " ".join((svc.get("healthcheck") or {}).get("test") or [])
        report.check(bool(test) and not test.startswith("NONE"), f"{name}: has a health check ({test[:70]})")
    for name, volume_target in (("postgres", "/var/lib/postgresql/data"), ("redis", "/data")):
        volumes = services.get(name, {}).get("volumes") or []
        report.check(
            any(v.get("type") == "volume" and v.get("target") == volume_target for v in volumes),
            f"{name}: named volume on {volume_target}",
        )
    redis_cmd = " ".join(words_of(services.get("redis", {}).get("command")))
    report.check(
        "--requirepass" in redis_cmd and "--appendonly yes" in redis_cmd, "redis: --requirepass and --appendonly yes"
    )
    wanted = {
        "migrate": {"postgres": "service_healthy"},
        "api": {"migrate": "service_completed_successfully", "redis": "service_healthy"},
        "worker": {"migrate": "service_completed_successfully", "redis": "service_healthy"},
    }
    for name, deps in wanted.items():
        actual = services.get(name, {}).get("depends_on") or {}
        for dep, condition in deps.items():
            got = (actual.get(dep) or {}).get("condition")
            report.check(got == condition, f"{name}: depends_on {dep} {condition}", f"got {got}")
    published = sorted(n for n, s in services.items() if s.get("ports") and not s.get("profiles"))
    report.check(published == ["api"], "only api publishes a port (outside profiles)", f"published: {published}")
    worker = services.get("worker", {})
    report.check(
        not worker.get("container_name") and not worker.get("ports"), "worker: scalable (no container_name, no ports)"
    )
    report.check(services.get("flower", {}).get("profiles") == ["flower"], "flower: behind the `flower` profile")
    report.check(set(apps) >= {"migrate", "api", "worker"}, f"app services on our images: {', '.join(sorted(apps))}")


def main() -> int:
    parser = argparse.ArgumentParser(description="Check the Dockerfiles and compose file against the code.")
    parser.add_argument("--compose-bin", required=True, help="the Docker Compose v2 binary (not its wrapper)")
    parser.add_argument("--env-file", default=str(ROOT / ".env.example"))
    args = parser.parse_args()

    report = Report()
    finals = check_dockerfiles(report)
    config = resolved_compose(args.compose_bin, Path(args.env_file))
    apps = app_services(config)
    check_compose_shape(report, config, apps)
    check_commands(report, config, apps, finals)
    check_targets(report, config, apps)
    check_environment(report, config, apps, finals)
    print(f"\ncheck_deploy: {'FAILED, ' + str(report.failures) + ' failure(s)' if report.failures else 'all ok'}")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
