"""House rules the import contracts (`make lint`) cannot see: only shared.jobs writes job state; one database."""

from __future__ import annotations

import re
from pathlib import Path

from shared.settings import ROOT

JOB_TABLES = ("jobs", "job_inputs", "job_input_parts", "part_claims", "results")
JOB_MODELS = ("Job", "JobInput", "JobInputPart", "PartClaim", "Result")
WRITES = {
    "a SQLAlchemy write": re.compile(rf"\b(?:insert|update|delete)\(\s*(?:{'|'.join(JOB_MODELS)})\b"),
    "a SQL write": re.compile(
        rf"\b(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM|TRUNCATE|COPY)\s+(?:{'|'.join(JOB_TABLES)})\b", re.IGNORECASE
    ),
    "a change to a loaded job": re.compile(r"\bjob\.\w+\s*=(?!=)"),
}


def _sources(*folders: str) -> dict[Path, str]:
    return {path: path.read_text() for folder in folders for path in sorted((ROOT / folder).rglob("*.py"))}


def test_only_the_jobs_package_writes_jobs_inputs_parts_claims_or_results() -> None:
    jobs_package = ROOT / "shared" / "jobs"
    outside = {p: text for p, text in _sources("api", "worker", "shared").items() if jobs_package not in p.parents}
    found = [
        f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 1}: {what}: {match.group(0)!r}"
        for path, text in outside.items()
        for what, pattern in WRITES.items()
        for match in pattern.finditer(text)
    ]
    assert not found, "job state written outside shared/jobs:\n" + "\n".join(found)
    inside = "\n".join(_sources("shared/jobs").values())
    assert all(WRITES[what].search(inside) for what in ("a SQLAlchemy write", "a SQL write"))  # the rule can bite


def test_postgresql_is_the_only_database() -> None:
    mentions = [
        str(path.relative_to(ROOT))
        for path, text in _sources("api", "worker", "shared", "migrations").items()
        if "sqlite" in text.lower()
    ]
    assert mentions == []
