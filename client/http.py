"""The JSON API's calls the client makes, with httpx: create a job from a file, read a job, download its results."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx

from client.config import Target

# A long upload is one request: no read timeout while it streams, but a server that does not answer is noticed.
TIMEOUT = httpx.Timeout(60.0, connect=10.0, write=None)


class ApiError(Exception):
    """The server said no, or could not be reached; `problems` lists every reason it gave."""

    def __init__(self, message: str, problems: list[str] | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []
        self.status = status


class Counted:
    """A binary file that reports every block read from it (the upload's progress)."""

    def __init__(self, file: IO[bytes], on_read: Callable[[int], None]) -> None:
        self._file, self._on_read = file, on_read

    def read(self, size: int = -1) -> bytes:
        block = self._file.read(size)
        self._on_read(len(block))
        return block

    def fileno(self) -> int:  # so httpx sends a Content-Length, not a chunked body
        return self._file.fileno()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()


def _problem(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    message = body.get("error") if isinstance(body, dict) else None
    problems = body.get("problems") if isinstance(body, dict) else None
    text = message or f"{response.status_code} {response.reason_phrase}"
    return ApiError(f"{text} (HTTP {response.status_code})", problems if isinstance(problems, list) else [],
                    response.status_code)  # fmt: skip


class Api:
    def __init__(self, target: Target) -> None:
        self.url = target.url
        self._http = httpx.Client(
            base_url=target.url,
            headers={"Authorization": f"Bearer {target.token}", "Accept": "application/json"},
            timeout=TIMEOUT,
            follow_redirects=False,
        )

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(f"could not reach {self.url}: {exc}") from exc
        if response.is_error or response.is_redirect:
            raise _problem(response)
        return response

    def submit(self, path: Path, model: str | None, on_read: Callable[[int], None]) -> dict[str, Any]:
        """POST the file as a new job; the 202's body (`id`, `status`, `url`). ApiError with every problem if the
        file is refused."""
        with path.open("rb") as file:
            data = {"model": model} if model else {}
            files = {"file": (path.name, Counted(file, on_read))}
            body: dict[str, Any] = self._send("POST", "/api/v1/jobs", files=files, data=data).json()
        return body

    def job(self, job_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self._send("GET", f"/api/v1/jobs/{job_id}").json()
        return body

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Stop a queued or running job; the job as it now stands. ApiError (409) if it had already finished."""
        body: dict[str, Any] = self._send("POST", f"/api/v1/jobs/{job_id}/cancel").json()
        return body

    def results(self, job_id: str, fmt: str) -> Iterator[bytes]:
        """The job's results in `fmt` (csv, xlsx or json), as they arrive."""
        request = self._http.build_request("GET", f"/api/v1/jobs/{job_id}/results", params={"format": fmt})
        try:
            response = self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise ApiError(f"could not reach {self.url}: {exc}") from exc
        try:
            if response.is_error or response.is_redirect:
                response.read()
                raise _problem(response)
            yield from response.iter_bytes()
        finally:
            response.close()
