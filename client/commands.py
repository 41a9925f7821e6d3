"""`cytoscore submit FILE`, `cytoscore status ID`, `cytoscore results ID`: the JSON API from a shell or a script.

What goes to stdout is for programs (a job id, a status line, results); progress and messages go to stderr.
Exit codes: 0 done; 1 the server could not be reached or refused the request; 3 the file was refused (nothing was
created; every problem printed); 4 the job did not succeed: it failed (its error printed), was cancelled, or is held
for review; 2 a usage error (click's).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from client.http import Api

FORMATS = {".csv": "csv", ".xlsx": "xlsx", ".json": "json"}
REFUSED, FAILED = 3, 4
POLL_SECONDS = 0.5
UNFINISHED = ("queued", "running")


class Stop(click.ClickException):
    """An end with a message, and the server's reasons, on stderr (exit 1)."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []

    def show(self, file: Any = None) -> None:
        click.echo(f"cytoscore: {self.message}", err=True)
        for problem in self.problems:
            click.echo(f"  - {problem}", err=True)


class Refused(Stop):
    exit_code = REFUSED


class Failed(Stop):
    exit_code = FAILED


url_option = click.option("--url", help="The cytoscore server, e.g. https://cytoscore.example.org "
                          "(default: $CYTOSCORE_URL, else `url` in the config file).")  # fmt: skip


def _api(url: str | None) -> Api:
    from client.config import ConfigError, target
    from client.http import Api

    try:
        return Api(target(url))
    except ConfigError as exc:
        raise Stop(str(exc)) from exc


def _calling(call: Callable[[], Any]) -> Any:
    """The call's answer; an ApiError becomes a Stop with the server's reasons (exit 3 for a refused file)."""
    from client.http import ApiError

    try:
        return call()
    except ApiError as exc:
        raise (Refused if exc.status == 422 else Stop)(str(exc), exc.problems) from exc


def _summary(job: dict[str, Any]) -> str:
    model = job["model"]
    line = (
        f"{job['id']} {job['status']}: {job['rows_total']} rows, {job['rows_scored']} scored, "
        f"{job['rows_rejected']} rejected; model {model['name']} {model['version']} (sha256 {model['sha256']})"
    )
    if job["status"] == "cancelled":
        return f"{line}; cancelled by {job['cancelled_by']}"
    if job["status"] == "needs_review":
        return f"{line}; held for review: {job['review']}"
    return f"{line}; error: {job['error']}" if job.get("error") else line


def _unsucceeded(job: dict[str, Any]) -> str:
    """Why a finished job has no results to download."""
    job_id = job["id"]
    if job["status"] == "cancelled":
        return f"job {job_id} was cancelled by {job['cancelled_by']}"
    if job["status"] == "needs_review":
        return f"job {job_id} is held for review ({job['review']}): a lab user must confirm it on its page"
    return f"job {job_id} failed: {job['error']}"


def _format_of(out: Path) -> str:
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise click.BadParameter(f"name a .csv, .xlsx or .json file, not {out.name!r}", param_hint="--out")
    return fmt


def _wait(api: Api, job_id: str) -> dict[str, Any]:
    """Poll the job until it finishes, with a bar of rows done on stderr; the finished job."""
    job: dict[str, Any] = _calling(lambda: api.job(job_id))
    with click.progressbar(length=max(job["rows_total"], 1), label="scoring", file=sys.stderr) as bar:
        shown = 0
        while True:
            done = job["rows_scored"] + job["rows_rejected"]
            if job["rows_total"] and bar.length != job["rows_total"]:
                bar.length = job["rows_total"]  # an XLSX's rows are counted by the worker
            if done > shown:
                bar.update(done - shown)
                shown = done
            if job["status"] not in UNFINISHED:
                return job
            time.sleep(POLL_SECONDS)
            job = _calling(lambda: api.job(job_id))


def _download(api: Api, job_id: str, out: Path | None, fmt: str) -> None:
    """The results into `out` (written whole, then renamed, so a failed download leaves no half file) or stdout."""
    chunks = api.results(job_id, fmt)
    if out is None:
        stream = sys.stdout.buffer
        _calling(lambda: [stream.write(chunk) for chunk in chunks])
        stream.flush()
        return
    partial = out.with_name(f".{out.name}.part")
    try:
        with partial.open("wb") as file:
            _calling(lambda: [file.write(chunk) for chunk in chunks])
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    click.echo(f"results written to {out}", err=True)


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@url_option
@click.option("--model", help="The model to score with (default: the server's default; see GET /api/v1/models).")
@click.option("--wait", is_flag=True, help="Wait until the job finishes, with a progress bar; exit 4 if it fails.")
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the results when the job has succeeded (.csv, .xlsx or .json); implies --wait.")  # fmt: skip
def submit(file: Path, url: str | None, model: str | None, wait: bool, out: Path | None) -> None:
    """Upload a CSV or XLSX FILE to score; print the job's id on stdout.

    The token comes from $CYTOSCORE_TOKEN or the config file, never from the command line. A refused file exits
    with 3 and every problem the server found; nothing is created.
    """
    fmt = _format_of(out) if out else None
    with _api(url) as api:
        with click.progressbar(length=file.stat().st_size, label="uploading", file=sys.stderr) as bar:
            accepted = _calling(lambda: api.submit(file, model, bar.update))
        job_id = accepted["id"]
        click.echo(job_id)
        click.echo(f"job {job_id} {accepted['status']}: {api.url}/jobs/{job_id}", err=True)
        if not (wait or out):
            return
        job = _wait(api, job_id)
        click.echo(_summary(job), err=True)
        if job["status"] != "succeeded":
            raise Failed(_unsucceeded(job))
        if out and fmt:
            _download(api, job_id, out, fmt)


@click.command()
@click.argument("job_id")
@url_option
@click.option("--json", "as_json", is_flag=True, help="Print the job as the API gives it.")
@click.option("--wait", is_flag=True, help="Wait until the job finishes, with a progress bar.")
def status(job_id: str, url: str | None, as_json: bool, wait: bool) -> None:
    """Print a job's status: rows, scored, rejected, the model's name, version and sha256; exit 4 if it failed or
    was cancelled."""
    import json

    with _api(url) as api:
        job = _wait(api, job_id) if wait else _calling(lambda: api.job(job_id))
    click.echo(json.dumps(job, indent=2) if as_json else _summary(job))
    if job["status"] in ("failed", "cancelled"):
        sys.exit(FAILED)


@click.command()
@click.argument("job_id")
@url_option
def cancel(job_id: str, url: str | None) -> None:
    """Stop a job that is queued or running; print its status. Its stored file can be scored again from its page.
    Exits 1 with the reason if the job has already finished."""
    with _api(url) as api:
        job = _calling(lambda: api.cancel(job_id))
    click.echo(_summary(job))


@click.command()
@click.argument("job_id")
@url_option
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the results here (.csv, .xlsx or .json, by its name); default: CSV on stdout.")  # fmt: skip
def results(job_id: str, url: str | None, out: Path | None) -> None:
    """Download a succeeded job's results: one row per input row, with the model's name, version and sha256."""
    fmt = _format_of(out) if out else "csv"
    with _api(url) as api:
        _download(api, job_id, out, fmt)


COMMANDS = [submit, status, results, cancel]
