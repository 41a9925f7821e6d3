"""An upload on disk, checked and stored in one pass, cut into parts that several workers can score at once.

The common case — a comma- or tab-delimited UTF-8 file without quotes, blank lines or lone CRs, every line as wide
as the header — is checked with byte operations a block at a time, and each part goes to the database as soon as
it is cut, so PostgreSQL stores while the next block is checked; neither time nor memory follow the csv module's
per-field cost. Anything else raises `NotPlain` before a transaction could commit: the caller rolls back and uses
`check_whole` (the full, record-by-record check with every message) and stores the file as one part. Either way a
file is accepted exactly when `inspect_upload` accepts it, with the same summary.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from .batch import UploadSummary
from .columns import check_features, match_header
from .csvfile import detect_delimiter
from .errors import FileRejected, Limits
from .source import head, size
from .upload import DEFAULT_LIMITS, TOO_MANY_ROWS, inspect_upload, sniff_format

BLOCK = 8 << 20
_LF, _CR = 10, 13

#: Receives each part: its first row number, its row count, and its bytes (the blocks, joined).
Emit = Callable[[int, int, Sequence[bytes]], None]


@dataclass(frozen=True)
class Scanned:
    summary: UploadSummary
    sha256: str
    parts: int
    header: bytes | None  # the header line, which parts after the first are read with (None: one part)


class NotPlain(Exception):
    """Not the common case: the caller checks the file record by record instead (`check_whole`)."""


def check_size(upload: BinaryIO, limits: Limits) -> int:
    total = size(upload)
    if total > limits.max_bytes:
        raise FileRejected(f"the file is {total} bytes; the limit is {limits.max_bytes} bytes")
    return total


def check_whole(
    upload: BinaryIO, filename: str | None, features: Sequence[str], limits: Limits = DEFAULT_LIMITS
) -> tuple[UploadSummary, bytes]:
    """The record-by-record check of the whole file (in memory); FileRejected lists every problem."""
    check_size(upload, limits)
    upload.seek(0)
    content = upload.read()
    return inspect_upload(content, filename, features, limits), content


def scan_plain(
    upload: BinaryIO,
    filename: str | None,
    features: Sequence[str],
    emit: Emit,
    limits: Limits = DEFAULT_LIMITS,
    *,
    part_bytes: int = 4 << 20,
    split_min_bytes: int = 16 << 20,
) -> Scanned:
    """Check a plainly written CSV and hand its parts to `emit` as they are cut; NotPlain for anything else.

    A file of at least `split_min_bytes` is cut at the first line end after every `part_bytes`; a smaller one is
    one part. FileRejected for a file too large, empty or not text (the same messages as `inspect_upload`).
    """
    features = check_features(features)
    total = check_size(upload, limits)
    first = head(upload)
    if sniff_format(upload, filename) != "csv" or first[:1] in (b"\r", b"\n", b""):
        raise NotPlain
    delimiter = detect_delimiter(first)
    if delimiter == ";" or b"\n" not in first:  # decimal commas need the full check; so does a header-only file
        raise NotPlain
    header_line = first[: first.index(b"\n") + 1]
    if b'"' in header_line or b"\x00" in header_line or header_line.count(b"\r") != header_line.count(b"\r\n"):
        raise NotPlain
    header = _text(header_line).removeprefix("\ufeff").rstrip("\n").removesuffix("\r").split(delimiter)
    if len(header) > limits.max_columns:
        raise NotPlain
    cmap, problems = match_header(header, features)
    if problems or (cmap.unnamed and cmap.unnamed != (cmap.width - 1,)):
        raise NotPlain
    lines = _Lines(delimiter.encode(), cmap.width - 1, bool(cmap.unnamed))
    cutter = _Cutter(emit, part_bytes if total >= split_min_bytes else total + 1)
    digest = hashlib.sha256()
    carry = b""
    upload.seek(0)
    while block := upload.read(BLOCK):
        digest.update(block)
        data = carry + block
        end = data.rfind(b"\n") + 1
        carry, data = data[end:], data[:end]
        if data:
            lines.check(data[len(header_line) :] if cutter.at_start else data)
            if lines.rows > limits.max_rows:
                raise FileRejected(TOO_MANY_ROWS.format(limits.max_rows))  # what inspect_upload says of it
            cutter.add(data)
    if carry:  # a last line without a line end
        lines.check(carry + b"\n")
        cutter.add(carry, last_line=True)
    if lines.rows > limits.max_rows:
        raise FileRejected(TOO_MANY_ROWS.format(limits.max_rows))
    if lines.rows == 0:
        raise NotPlain
    cutter.finish()
    summary = UploadSummary(
        format="csv",
        delimiter=delimiter,
        rows_total=lines.rows,
        columns=header[: cmap.kept],
        has_diagnosis=cmap.diagnosis_index is not None,
        sheet=None,
    )
    return Scanned(summary, digest.hexdigest(), cutter.parts, header_line if cutter.parts > 1 else None)


class _Lines:
    """Checks whole lines (each ending in LF) and counts them as rows."""

    def __init__(self, sep: bytes, separators: int, trailing_empty: bool) -> None:
        # Blank lines are not records: the full check numbers rows around them. A blank line has no separator, so
        # the count in `check` refuses it, as long as every row must have one (an id and a feature at least).
        if separators < 1:
            raise NotPlain
        self.sep, self.separators, self.trailing_empty = sep[0], separators, trailing_empty
        self.rows = 0

    def check(self, data: bytes) -> None:
        if not data:
            return
        if b'"' in data or b"\x00" in data or (b"\r" in data and data.count(b"\r") != data.count(b"\r\n")):
            raise NotPlain
        _text(data)
        text = np.frombuffer(data, dtype=np.uint8)
        ends = np.flatnonzero(text == _LF)
        marks = np.flatnonzero(text == self.sep)
        if not (np.diff(np.searchsorted(marks, ends), prepend=0) == self.separators).all():
            raise NotPlain
        if self.trailing_empty:
            last = ends - 1
            last[text[last] == _CR] -= 1
            if not (text[last] == self.sep).all():
                raise NotPlain
        self.rows += int(ends.size)


class _Cutter:
    """Collects whole lines into parts of about `part_bytes` and emits each with its row numbers."""

    def __init__(self, emit: Emit, part_bytes: int) -> None:
        self._emit, self._part_bytes = emit, part_bytes
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._next_row = 1
        self._header_pending = True  # part 0 starts with the header line, which is not a row
        self._last_line = False
        self.parts = 0

    @property
    def at_start(self) -> bool:
        return self._header_pending and not self._pending

    def add(self, data: bytes, *, last_line: bool = False) -> None:
        while self._pending_bytes + len(data) > self._part_bytes:
            at = data.find(b"\n", max(self._part_bytes - self._pending_bytes - 1, 0)) + 1
            if at == 0:
                break
            self._pending.append(data[:at])
            self._flush()
            data = data[at:]
        if data:
            self._pending.append(data)
            self._pending_bytes += len(data)
            self._last_line = last_line

    def finish(self) -> None:
        if self._pending or not self.parts:
            self._flush()

    def _flush(self) -> None:
        rows = sum(piece.count(b"\n") for piece in self._pending) + self._last_line - self._header_pending
        self._emit(self._next_row, rows, self._pending)
        self._next_row += rows
        self._header_pending = self._last_line = False
        self._pending, self._pending_bytes = [], 0
        self.parts += 1


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise NotPlain from None
