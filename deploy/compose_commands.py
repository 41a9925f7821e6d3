"""Print a service's `command:` from docker-compose.yml as one shell-quoted line.

    python deploy/compose_commands.py docker-compose.yml api   ->   cytoscore web

Compose's `$$` (a literal dollar) becomes `$`; a string command is split the way compose splits it.
"""

from __future__ import annotations

import shlex
import sys

import yaml


def service_command(compose_file: str, service: str) -> list[str]:
    with open(compose_file, encoding="utf-8") as handle:
        services = yaml.safe_load(handle)["services"]
    command = services[service].get("command")
    if command is None:
        raise SystemExit(f"{compose_file}: service {service!r} has no command:")
    words = shlex.split(command) if isinstance(command, str) else [str(word) for word in command]
    return [word.replace("$$", "$") for word in words]


if __name__ == "__main__":
    print(shlex.join(service_command(sys.argv[1], sys.argv[2])))
