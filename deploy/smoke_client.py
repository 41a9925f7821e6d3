"""Score a small file through cytoscore's HTTP API: POST /api/v1/jobs, poll the job until it succeeds.

Run with the app's interpreter (.venv/bin/python), which has scikit-learn, pandas and openpyxl:

    .venv/bin/python deploy/smoke_client.py http://127.0.0.1:8000 --rows 40 --format xlsx
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid

# The 4-feature model's inputs, under their published (Kaggle/UCI) names, from scikit-learn's names.
COLUMNS = {
    "mean radius": "radius_mean",
    "mean texture": "texture_mean",
    "mean smoothness": "smoothness_mean",
    "mean compactness": "compactness_mean",
}


def build_file(rows: int, fmt: str) -> tuple[str, bytes, str]:
    """Return (filename, content, media type) for the first `rows` cases of the Wisconsin data."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    table = frame[list(COLUMNS)].rename(columns=COLUMNS).head(rows)
    table.insert(0, "id", [f"smoke-{i:04d}" for i in range(len(table))])
    if fmt == "csv":
        return "smoke.csv", table.to_csv(index=False).encode(), "text/csv"
    buffer = io.BytesIO()
    table.to_excel(buffer, index=False, engine="openpyxl")
    media = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return "smoke.xlsx", buffer.getvalue(), media


def multipart(field: str, filename: str, content: bytes, media: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        f"Content-Type: {media}\r\n\r\n"
    ).encode()
    return head + content + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


TOKEN = os.environ.get("SMOKE_TOKEN", "")  # a lab or admin API token (`cytoscore tokens add EMAIL`)


def request(url: str, data: bytes | None = None, content_type: str | None = None) -> tuple[int, dict]:
    if not url.startswith(("http://", "https://")):
        raise SystemExit(f"not an http(s) URL: {url}")
    req = urllib.request.Request(url, data=data, headers={"Accept": "application/json"})  # noqa: S310 - checked above
    if TOKEN:
        req.add_header("Authorization", f"Bearer {TOKEN}")
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - http(s) only, checked above
            status, body = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, body = err.code, err.read()
    try:
        return status, json.loads(body or b"{}")
    except json.JSONDecodeError:
        return status, {"_raw": body[:500].decode(errors="replace")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_url")
    parser.add_argument("--rows", type=int, default=40)
    parser.add_argument("--format", choices=["csv", "xlsx"], default="csv")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    base = args.base_url.rstrip("/")

    filename, content, media = build_file(args.rows, args.format)
    body, content_type = multipart("file", filename, content, media)
    status, job = request(f"{base}/api/v1/jobs", body, content_type)
    print(f"POST /api/v1/jobs ({filename}, {args.rows} rows, {len(content)} bytes) -> {status} {job}")
    job_id = job.get("id") or job.get("job_id")
    if status not in (200, 201, 202) or not job_id:
        print("FAIL: the upload was not accepted", file=sys.stderr)
        return 1

    deadline = time.monotonic() + args.timeout
    while True:
        status, job = request(f"{base}/api/v1/jobs/{job_id}")
        state = job.get("status")
        if status == 200 and state in ("succeeded", "failed"):
            break
        if time.monotonic() > deadline:
            print(f"FAIL: job {job_id} still {state!r} (HTTP {status}) after {args.timeout:.0f} s", file=sys.stderr)
            return 1
        time.sleep(1.0)
    print(f"GET /api/v1/jobs/{job_id} -> {status} {job}")
    if state != "succeeded":
        print(f"FAIL: job {job_id} ended {state!r}: {job.get('error')}", file=sys.stderr)
        return 1
    if job.get("rows_scored") != args.rows:
        print(f"FAIL: rows_scored={job.get('rows_scored')!r}, expected {args.rows}", file=sys.stderr)
        return 1
    print(f"ok: job {job_id} succeeded, rows_scored={args.rows}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
