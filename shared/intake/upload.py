"""Uploaded files (CSV or XLSX, told apart by their bytes): inspect once, then stream batches."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

from .batch import Batch, UploadSummary
from .cells import cell_text, is_blank
from .columns import ColumnMap, check_features, match_header
from .csvfile import detect_delimiter, line_of, records, text_problems
from .errors import FileRejected, Limits, listing
from .numbers import DecimalMarks, parse_matrix
from .source import Content, head, size, stream, whole
from .validate import BatchBuilder
from .xlsxfile import OLE2_MAGIC, Workbook, first_row, zip_problems

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_CHECK_BATCH = 10_000
DEFAULT_LIMITS = Limits()
TOO_MANY_ROWS = "the file has more than {} data rows (the limit)"


def sniff_format(content: Content, filename: str | None) -> str:
    """ "xlsx" or "csv" from the bytes alone (the name is never trusted); FileRejected otherwise."""
    first = head(content)
    if not first.strip() and size(content) <= len(first):
        raise FileRejected("the file is empty")
    if first.startswith(OLE2_MAGIC):
        raise FileRejected("the file is an encrypted workbook or a legacy .xls file; save it as .xlsx or CSV UTF-8")
    if first.startswith(ZIP_MAGIC):
        problems = zip_problems(content)
        if problems:
            raise FileRejected(problems)
        return "xlsx"
    # A spooled file already passed inspect_upload's full scan; bytes are scanned here.
    nul = content.find(b"\x00") if isinstance(content, bytes) else first.find(b"\x00")
    if nul >= 0:
        raise FileRejected(
            f"the file contains binary data (a NUL byte on line {line_of(whole(content), nul)}); upload CSV or XLSX"
        )
    return "csv"


@dataclass
class _Source:
    format: str
    delimiter: str | None
    sheet: str | None
    header: list[str]
    rows: Iterator[tuple[int, list[object]]]

    def where(self, position: int) -> str:
        return f"line {position}" if self.format == "csv" else f"sheet row {position}"


def _open(content: Content, filename: str | None) -> _Source:
    fmt = sniff_format(content, filename)
    if fmt == "xlsx":
        book = Workbook(content)
        rows: Iterator[tuple[int, list[object]]] = book.rows()
        delimiter, sheet = None, book.sheet
    else:
        delimiter, sheet = detect_delimiter(head(content)), None
        rows = records(content, delimiter)  # type: ignore[assignment]
    first = next(rows, None)
    if first is None:
        raise FileRejected("the file is empty (no header line)")
    header = [cell_text(cell) for cell in first[1]]
    if fmt == "xlsx":
        rows = _padded(rows, len(header))
    return _Source(fmt, delimiter, sheet, header, rows)


def _padded(rows: Iterator[tuple[int, list[object]]], width: int) -> Iterator[tuple[int, list[object]]]:
    """Sheet rows stop at their last filled cell: pad them to the header's width."""
    for position, cells in rows:
        yield position, cells + [None] * (width - len(cells)) if len(cells) < width else cells


def inspect_upload(
    content: Content, filename: str | None, features: Sequence[str], limits: Limits = DEFAULT_LIMITS
) -> UploadSummary:
    """One full structural pass; FileRejected lists every whole-file problem found."""
    features = check_features(features)
    total = size(content)
    if total > limits.max_bytes:
        raise FileRejected(f"the file is {total} bytes; the limit is {limits.max_bytes} bytes")
    if sniff_format(content, filename) == "csv":
        bad_text = text_problems(whole(content))
        if bad_text:
            raise FileRejected(bad_text)
    return _inspect(_open(content, filename), features, limits)


def _inspect(source: _Source, features: tuple[str, ...], limits: Limits) -> UploadSummary:
    if len(source.header) > limits.max_columns:
        raise FileRejected(f"the header has {len(source.header)} columns; the limit is {limits.max_columns}")
    cmap, problems = match_header(source.header, features)
    count, ragged, filled = 0, [], dict[int, int]()
    marks = DecimalMarks() if source.delimiter == ";" and not problems else None
    pending: list[list[object]] = []
    try:
        for position, cells in source.rows:
            count += 1
            if count > limits.max_rows:
                problems.append(TOO_MANY_ROWS.format(limits.max_rows))
                break
            if len(cells) != cmap.width:
                ragged.append(f"{source.where(position)} ({len(cells)})")
                continue
            for u in cmap.unnamed:
                if u not in filled and not is_blank(cells[u]):
                    filled[u] = position
            if marks is not None:
                pending.append([cells[i] for i in cmap.feature_index])
                if len(pending) == _CHECK_BATCH:
                    parse_matrix(pending, features, all_text=True, marks=marks, row0=count - len(pending) + 1)
                    pending = []
        if marks is not None and pending:
            parse_matrix(pending, features, all_text=True, marks=marks, row0=count - len(pending) + 1)
    except FileRejected as exc:
        problems += exc.problems
    if ragged:
        problems.append(f"rows with a different number of fields than the header ({cmap.width}): {listing(ragged)}")
    problems += [f"column {u + 1} has no name but holds values (first on {source.where(p)})" for u, p in filled.items()]
    if count == 0:
        problems.append("the file has a header but no data rows")
    if problems:
        raise FileRejected(problems)
    return UploadSummary(
        format=source.format,
        delimiter=source.delimiter,
        rows_total=count,
        columns=source.header[: cmap.kept],
        has_diagnosis=cmap.diagnosis_index is not None,
        sheet=source.sheet,
    )


def check_size(upload: Content, limits: Limits) -> int:
    total = size(upload)
    if total > limits.max_bytes:
        raise FileRejected(f"the file is {total} bytes; the limit is {limits.max_bytes} bytes")
    return total


def _checked_batches(source: _Source, cmap: ColumnMap, size: int) -> Iterator[list[list[object]]]:
    """Batches of rows of the header's width whose unnamed columns are empty (inspect_upload refuses others)."""
    batch: list[list[object]] = []
    for position, cells in source.rows:
        if len(cells) != cmap.width:
            raise FileRejected(f"{source.where(position)} has {len(cells)} fields; the header has {cmap.width}")
        batch.append(cells)
        if len(batch) == size:
            _check_unnamed(source, cmap, batch)
            yield batch
            batch = []
    if batch:
        _check_unnamed(source, cmap, batch)
        yield batch


def _check_unnamed(source: _Source, cmap: ColumnMap, batch: list[list[object]]) -> None:
    for u in cmap.unnamed:
        column = [cells[u] for cells in batch]
        if source.format == "csv" and not "".join(column).strip():  # type: ignore[arg-type]
            continue
        if any(not is_blank(v) for v in column):
            raise FileRejected(f"column {u + 1} has no name but holds values")


def iter_batches(
    content: Content,
    filename: str | None,
    features: Sequence[str],
    batch_rows: int,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    *,
    limits: Limits = DEFAULT_LIMITS,
    on_count: Callable[[int], None] | None = None,
) -> Iterator[Batch]:
    """Validate a CSV (that passed inspect_upload) or an XLSX file in batches of `batch_rows` rows, in order.

    A workbook is checked here, not when it arrives: the web stores it as sent, since reading a sheet costs seconds
    a request should not wait for. It is read once, then checked whole as `inspect_upload` does (FileRejected lists
    every problem), and `on_count` is told how many rows it has before the first batch.
    """
    features = check_features(features)
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    source = _open(content, filename)
    if source.format == "xlsx":
        kept = list(source.rows)
        summary = _inspect(replace(source, rows=iter(kept)), features, limits)
        if on_count is not None:
            on_count(summary.rows_total)
        source = replace(source, rows=iter(kept))
    cmap, problems = match_header(source.header, features)
    if problems:
        raise FileRejected(problems)
    builder = BatchBuilder(
        features,
        cmap.feature_index,
        cmap.id_index,
        cmap.diagnosis_index,
        ranges=ranges,
        all_text=source.format == "csv",
        decimal_comma=source.delimiter == ";",
    )
    row0 = 1
    for rows in _checked_batches(source, cmap, batch_rows):
        yield builder.build(row0, rows)
        row0 += len(rows)


def read_header(content: Content, filename: str | None) -> list[str]:
    """The header as given: a CSV's first record, or a workbook's first row (only the start of its sheet is
    parsed: the web may read a workbook's header in a request, never its rows)."""
    if sniff_format(content, filename) == "xlsx":
        header = [cell_text(cell) for cell in first_row(content)]
    else:
        header = _open(content, filename).header
    stream(content)  # back to the start, for whoever reads the file next
    return header


def read_source_rows(content: Content, filename: str | None) -> tuple[list[str], Iterator[list[str]]]:
    """The header as given and every row's cells as text, in order (an empty unnamed last column dropped)."""
    source = _open(content, filename)
    cmap, _ = match_header(source.header, ())
    batches = _checked_batches(source, cmap, _CHECK_BATCH)
    rows = ([cell_text(c) for c in cells[: cmap.kept]] for batch in batches for cells in batch)
    return source.header[: cmap.kept], rows
