"""A single case's report as PDF, made server-side by WeasyPrint from the HTML of its page's template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

STATIC = Path(__file__).resolve().parent / "static"
_BASE_URL = "https://cytoscore.invalid/"  # no request leaves the process: the fetcher below answers them all


def pdf(html: str) -> bytes:
    """Render the report's HTML, its style sheets read from api/static (nothing is fetched over a network)."""
    from weasyprint import HTML  # imported on first use: it loads Pango, which only this needs

    return bytes(HTML(string=html, base_url=_BASE_URL, url_fetcher=_static_fetcher()).write_pdf())


def _static_fetcher() -> Any:
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class StaticOnly(URLFetcher):  # type: ignore[misc]
        """Serve /static/… from the package folder and refuse anything else: a report links nothing outside."""

        def fetch(self, url: str, headers: Any = None) -> Any:
            prefix = _BASE_URL + "static/"
            path = (STATIC / url.removeprefix(prefix).split("?", 1)[0]).resolve()
            if not url.startswith(prefix) or not path.is_relative_to(STATIC) or not path.is_file():
                raise ValueError(f"the report may use only its own static files, not {url}")
            kind = {".css": "text/css", ".svg": "image/svg+xml"}.get(path.suffix, "application/octet-stream")
            return URLFetcherResponse(url, path.read_bytes(), {"Content-Type": kind})

    return StaticOnly(fail_on_errors=True)
