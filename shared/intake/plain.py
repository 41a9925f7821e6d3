"""Plain CSV: comma- or tab-delimited UTF-8 without quotes, blank lines or lone CRs, every line as wide as the header.

Most lab files are written so (the Kaggle file is). The web checks one with byte operations a block at a time, as
the body arrives (`scan`), and stores it in parts as it goes, so PostgreSQL stores one part while the next is
checked; anything else raises `NotPlain`, holding what it read, and is checked by `upload.inspect_upload` and
stored whole.
Either way a file is accepted exactly when `inspect_upload` accepts it, with the same summary.

The worker reads a plain part `batch_rows` lines at a time (`read_batches`): pandas' C parser reads the measurements
of a batch when every one is a plain, finite number (the few that cannot be measurements are then refused from the
numbers, and named as written); otherwise the batch's lines are split on the delimiter and every cell goes through
the validator, which names each bad value. The batches are the same either way, and the same as the csv module's
reader gives (tests/test_parts.py).
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO

import numpy as np
import pandas as pd

from .batch import Batch, UploadSummary
from .columns import ColumnMap, check_features, match_header
from .csvfile import detect_delimiter
from .errors import FileRejected, Limits
from .source import HEAD, Content, Incoming, stream
from .upload import DEFAULT_LIMITS, TOO_MANY_ROWS, ZIP_MAGIC, check_size, sniff_format
from .validate import BatchBuilder, Ranges

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
    """Not a plain CSV: the caller checks the file record by record instead (`upload.inspect_upload`).

    `read` holds what the scan read of the upload and had not handed to `emit`: the parts handed on, `read`, then
    the rest of the upload, are the whole file (the upload may be a body read once, as it arrives).
    """

    def __init__(self, read: bytes = b"") -> None:
        super().__init__()
        self.read = read


def scan(
    upload: IO[bytes] | Incoming,
    filename: str | None,
    features: Sequence[str],
    emit: Emit,
    limits: Limits = DEFAULT_LIMITS,
    *,
    part_bytes: int = 4 << 20,
    split_min_bytes: int = 16 << 20,
    size_hint: int | None = None,
) -> Scanned:
    """Check a plainly written CSV and hand its parts to `emit` as they are cut; NotPlain for anything else.

    `upload` is read once, from where it stands, a block at a time: a file, or a request's body as it arrives. A
    file of at least `split_min_bytes` is cut at the first line end after every `part_bytes`; a smaller one is one
    part. The size of a body as it arrives (`Incoming`) is not known before its end: `size_hint` (the request's
    length) decides, and without it the file is cut. FileRejected for a file too large, empty or not text (the same
    messages as `inspect_upload`).
    """
    features = check_features(features)
    total = size_hint if isinstance(upload, Incoming) else check_size(upload, limits)  # a file: from its start
    largest = total if total is not None else limits.max_bytes
    block = upload.read(BLOCK)
    first = block[:HEAD]
    try:
        if not first.strip() or first.startswith(ZIP_MAGIC) or sniff_format(first, filename) != "csv":
            raise NotPlain  # all blanks at the start (the full check tells empty from not), or a workbook
        if first[:1] in (b"\r", b"\n"):
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
    except NotPlain:
        raise NotPlain(block) from None
    cutter = _Cutter(emit, part_bytes if largest >= split_min_bytes else largest + 1)
    digest = hashlib.sha256()
    carry = b""
    read = 0
    while block:
        read += len(block)
        if read > limits.max_bytes:
            raise FileRejected(f"the file is more than {limits.max_bytes} bytes; the limit is {limits.max_bytes} bytes")
        digest.update(block)
        data = carry + block
        end = data.rfind(b"\n") + 1
        carry, data = data[end:], data[:end]
        if data:
            try:
                lines.check(data[len(header_line) :] if cutter.at_start else data)
            except NotPlain:
                raise NotPlain(cutter.pending + data + carry) from None
            if lines.rows > limits.max_rows:
                raise FileRejected(TOO_MANY_ROWS.format(limits.max_rows))  # what inspect_upload says of it
            cutter.add(data)
        block = upload.read(BLOCK)
    if carry:  # a last line without a line end
        try:
            lines.check(carry + b"\n")
        except NotPlain:
            raise NotPlain(cutter.pending + carry) from None
        cutter.add(carry, last_line=True)
    if lines.rows > limits.max_rows:
        raise FileRejected(TOO_MANY_ROWS.format(limits.max_rows))
    if lines.rows == 0:
        raise NotPlain(cutter.pending)
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

    @property
    def pending(self) -> bytes:
        """What was added and not yet emitted."""
        return b"".join(self._pending)

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


_OTHER_SPACE = (b"\x0b", b"\x0c")


def read_batches(
    content: Content,
    features: Sequence[str],
    batch_rows: int,
    ranges: Ranges | None = None,
    *,
    first_row: int = 1,
    header: bytes | None = None,
) -> Iterator[Batch]:
    """Validate a plain CSV, or one stored part of one, in batches of `batch_rows` lines, in order.

    A part after the first holds rows only: `header` is the file's header line, and `first_row` its first row's
    number. Repeated case ids are left to the caller, which sees every part.
    """
    features = check_features(features)
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    lines = stream(content)
    header_line = _text(header if header is not None else lines.readline())
    names = header_line.removeprefix("\ufeff").rstrip("\n").removesuffix("\r")
    delimiter = "," if "," in names else "\t"
    cmap, problems = match_header(names.split(delimiter), features)
    if problems:
        raise FileRejected(problems)
    builder = BatchBuilder(
        features, cmap.feature_index, cmap.id_index, cmap.diagnosis_index, ranges=ranges, all_text=True
    )
    row0 = first_row
    for block in _line_blocks(lines, batch_rows):
        batch = _by_columns(block, delimiter, cmap, builder, row0) or _by_cells(block, delimiter, builder, row0)
        yield batch
        row0 += len(batch.rows)


def _line_blocks(lines: IO[bytes], count: int) -> Iterator[bytes]:
    """The bytes of `count` whole lines at a time (fewer at the end), read a block at a time."""
    pending: list[bytes] = []
    held = 0  # lines in `pending`
    carry = b""
    while block := lines.read(BLOCK):
        data = carry + block
        ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == _LF)
        start, used = 0, 0
        while held + ends.size - used >= count:
            end = int(ends[used + count - held - 1]) + 1
            pending.append(data[start:end])
            yield b"".join(pending)
            pending, start, used, held = [], end, used + count - held, 0
        last = int(ends[-1]) + 1 if ends.size else 0
        if last > start:
            pending.append(data[start:last])
            held += ends.size - used
        carry = data[max(last, start) :]
    if carry:  # a last line without a line end
        pending.append(carry)
        held += 1
    if held:
        yield b"".join(pending)


def _by_columns(block: bytes, delimiter: str, cmap: ColumnMap, builder: BatchBuilder, row0: int) -> Batch | None:
    """The batch with its measurements read by pandas' C parser, or None unless every one is a plain, finite number.

    pandas (as pinned) converts every measurement with one converter, which agrees bit for bit with `float()`
    wherever both accept a spelling; what it accepts beyond the number grammar (`inf`, overflowing exponents,
    whitespace other than spaces) is caught here, so such a batch goes cell by cell, and says why.
    """
    if any(mark in block for mark in _OTHER_SPACE) or (delimiter == "," and b"\t" in block) or cmap.id_index is None:
        return None
    text_columns = [c for c in (cmap.id_index, cmap.diagnosis_index) if c is not None]
    dtypes: dict[int, object] = {c: np.float64 for c in cmap.feature_index} | {c: object for c in text_columns}
    try:
        frame = pd.read_csv(
            io.BytesIO(block),
            sep=delimiter,
            header=None,
            usecols=sorted(dtypes),
            dtype=dtypes,
            na_filter=False,
            quoting=csv.QUOTE_NONE,
            engine="c",
            encoding="utf-8",
        )
    except (ValueError, pd.errors.ParserError):
        return None
    X = frame[list(cmap.feature_index)].to_numpy(dtype=np.float64, copy=True)
    if not np.isfinite(X).all():
        return None
    ids = frame[cmap.id_index].tolist()
    given = None if cmap.diagnosis_index is None else frame[cmap.diagnosis_index].tolist()
    if not all(type(v) is str for v in ids) or (given is not None and not all(type(v) is str for v in given)):
        return None
    lines: list[str] = []

    def cell_text(i: int, j: int) -> str:
        """A refused measurement as written (split only if the batch has one: most have none)."""
        if not lines:
            lines.extend(_text(block).removesuffix("\n").split("\n"))
        return lines[i].removesuffix("\r").split(delimiter)[cmap.feature_index[j]]

    return builder.build_parsed(row0, X, ids, given, cell_text)


def _by_cells(block: bytes, delimiter: str, builder: BatchBuilder, row0: int) -> Batch:
    """The batch with every cell checked by the validator: each line split on the delimiter (no quotes to mind)."""
    rows = [line.removesuffix("\r").split(delimiter) for line in _text(block).removesuffix("\n").split("\n")]
    return builder.build(row0, rows)


def read_rows(content: Content) -> tuple[list[str], Iterator[list[str]]]:
    """The header and every row's cells, as text, in order (an empty unnamed last column dropped)."""
    lines = stream(content)
    header = _text(lines.readline()).removeprefix("\ufeff").rstrip("\n").removesuffix("\r")
    delimiter = "," if "," in header else "\t"
    names = header.split(delimiter)
    kept = len(names) - 1 if len(names) > 1 and not names[-1].strip() else len(names)

    def rows() -> Iterator[list[str]]:
        for block in _line_blocks(lines, 10_000):
            for line in _text(block).removesuffix("\n").split("\n"):
                yield line.removesuffix("\r").split(delimiter)[:kept]

    return names[:kept], rows()
