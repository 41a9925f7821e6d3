"""Where the client finds the server and the token: the environment, then a config file; never the command line,
so a token never lands in a shell's history or in `ps`."""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path

TOKEN_VARIABLE = "CYTOSCORE_TOKEN"  # noqa: S105 (the name of the variable, not a token)
URL_VARIABLE = "CYTOSCORE_URL"
CONFIG_VARIABLE = "CYTOSCORE_CONFIG"


class ConfigError(Exception):
    """The client cannot tell where to go or who it is; the message says what to set."""


@dataclass(frozen=True)
class Target:
    url: str
    token: str


def config_path() -> Path:
    """`$CYTOSCORE_CONFIG`, else `$XDG_CONFIG_HOME/cytoscore/client.toml` (`~/.config/…` by default)."""
    if os.environ.get(CONFIG_VARIABLE):
        return Path(os.environ[CONFIG_VARIABLE])
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "cytoscore" / "client.toml"


def _read_file(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path} holds a token and others may read it: chmod 600 {path}")
    try:
        found = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not TOML: {exc}") from exc
    return {k: v for k, v in found.items() if k in ("url", "token") and isinstance(v, str)}


def target(url: str | None) -> Target:
    """The server (`--url`, else `$CYTOSCORE_URL`, else the file's `url`) and the token (`$CYTOSCORE_TOKEN`, else
    the file's `token`)."""
    path = config_path()
    file = _read_file(path)
    url = url or os.environ.get(URL_VARIABLE) or file.get("url")
    token = os.environ.get(TOKEN_VARIABLE) or file.get("token")
    if not url:
        raise ConfigError(f'no server: give --url, set {URL_VARIABLE}, or write url = "…" in {path}')
    if not token:
        raise ConfigError(
            f'no token: set {TOKEN_VARIABLE}, or write token = "…" in {path} (mode 600); an admin makes one '
            "with `cytoscore tokens add EMAIL`"
        )
    return Target(url.rstrip("/"), token.strip())
