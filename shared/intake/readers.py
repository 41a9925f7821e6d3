"""One reader per layout of a stored input; each hands the validator's batches on, the same for the same rows."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from enum import StrEnum

from . import cases, plain, upload
from .batch import Batch
from .errors import Limits
from .source import Content
from .upload import DEFAULT_LIMITS
from .validate import Ranges


class Layout(StrEnum):
    """How a stored input is written, which says which reader reads it."""

    PLAIN = "plain"  # a CSV the web checked with byte operations (`plain.scan`); may be stored in several parts
    CSV = "csv"  # any other CSV, read record by record with the csv module
    XLSX = "xlsx"
    JSON = "json"  # cases sent without a file (the form or the JSON API)


def read_batches(
    content: Content,
    layout: str,
    features: Sequence[str],
    batch_rows: int,
    ranges: Ranges | None = None,
    *,
    filename: str | None = None,
    first_row: int = 1,
    header: bytes | None = None,
    limits: Limits = DEFAULT_LIMITS,
    on_count: Callable[[int], None] | None = None,
) -> Iterator[Batch]:
    """Validate a stored input, or one part of it (`first_row`, and the header line for a plain part after the
    first), in batches of at most `batch_rows` rows, in order. A workbook, stored unchecked, is checked as it is read
    (within `limits`), and `on_count` learns its number of rows before the first batch."""
    if layout == Layout.JSON:
        return cases.read_batches(content, features, batch_rows, ranges)
    if layout == Layout.PLAIN:
        return plain.read_batches(content, features, batch_rows, ranges, first_row=first_row, header=header)
    return upload.iter_batches(content, filename, features, batch_rows, ranges, limits=limits, on_count=on_count)


def read_rows(content: Content, layout: str, filename: str | None = None) -> tuple[list[str], Iterator[list[str]]]:
    """A whole stored input's own columns and every row's cells as text, in order (for exports)."""
    if layout == Layout.JSON:
        return cases.read_rows(content)
    if layout == Layout.PLAIN:
        return plain.read_rows(content)
    return upload.read_source_rows(content, filename)
