"""The docs against the code: README.md's configuration table lists every setting with its real default, and every
relative link in README.md and docs/*.md leads to a file. Needs no services."""

from __future__ import annotations

import ast
import re

from shared.settings import ROOT, Settings

README = ROOT / "README.md"
PATH_DEFAULTS = {"./var": ROOT / "var", "./models": ROOT / "models"}  # defaults that are paths under the project


def env_name(field: str) -> str:
    alias = Settings.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else f"CYTOSCORE_{field.upper()}"


def config_rows() -> list[tuple[str, str]]:
    """(variable, default as written) for each row of the table under README.md's "## Configuration"."""
    section = README.read_text(encoding="utf-8").split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        variable = re.fullmatch(r"`([A-Z_]+)`", cells[0]) if line.startswith("|") else None
        if variable:
            default = re.match(r"`([^`]*)`", cells[1])
            assert default, f"{variable[1]}: the default is not in backticks: {cells[1]!r}"
            rows.append((variable[1], default[1]))
    return rows


def parse_default(text: str) -> object:
    return PATH_DEFAULTS[text] if text in PATH_DEFAULTS else ast.literal_eval(text)


def test_configuration_table_matches_settings() -> None:
    rows = config_rows()
    documented = [variable for variable, _ in rows]
    by_env = {env_name(field): field for field in Settings.model_fields}
    assert len(set(documented)) == len(documented), "a variable appears more than once"
    assert set(documented) == set(by_env), "the table and Settings name different variables"
    for variable, written in rows:
        expected = Settings.model_fields[by_env[variable]].default
        actual = parse_default(written)
        assert (type(actual), actual) == (type(expected), expected), f"{variable}: README says {written}"


LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_relative_links_lead_to_files() -> None:
    broken = []
    for page in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"[a-z][a-z0-9+.-]*:|#", target):  # http:, mailto:, an anchor on the same page
                continue
            if not (page.parent / target.split("#", 1)[0]).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, "links to missing files:\n" + "\n".join(broken)
