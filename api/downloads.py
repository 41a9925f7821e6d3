"""Results as files people open in spreadsheets: CSV, XLSX and JSON, plus the error report.

Each export keeps the case id and every input column the user sent (prefixed `input:`), beside the diagnosis,
the probability, what produced it, the out-of-range flag and the error. Input text that could run as a
formula is neutralised; input text that is a number stays a number.
"""

from __future__ import annotations

import functools
import io
import itertools
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import closing
from typing import Any, BinaryIO, TypeVar

from flask import current_app
from sqlalchemy.orm import Session, object_session

from api import results
from api.job_views import SHOWS
from shared import jobs
from shared.features import ALIASES, canonical
from shared.intake import Batch, read_batches, read_rows
from shared.intake.numbers import DECIMAL_COMMA, NUMBER
from shared.schema import Job, JobInput
from shared.spreadsheets import csv_writer, neutralise, utf8_safe, write_xlsx

T = TypeVar("T")
INPUT_PREFIX = "input:"
PROBLEM_FIELDS = ("row", "case_id", "column", "value", "reason")
_BATCH_ROWS = 20_000


def _content(source: JobInput) -> BinaryIO:
    """The stored input, spooled from its parts to a temporary file (memory does not follow the file's size)."""
    session = object_session(source)
    assert session is not None
    spooled = tempfile.TemporaryFile()  # noqa: SIM115 - closed with the last reference (the rows iterator)
    jobs.spool_input(session, source.job_id, spooled)
    spooled.seek(0)
    return spooled


def _source(job: Job, source: JobInput) -> tuple[list[str], _Closing[list[str]]]:
    """The input's own columns and rows, as text, in input order."""
    spooled = _content(source)
    try:
        header, rows = read_rows(spooled, source.layout, job.input_filename)
    except BaseException:
        spooled.close()
        raise
    return header, _Closing(spooled, rows)


class _Closing(Iterator[T]):
    """What is read from a spooled file, which is closed when the items run out or are closed, and also when they
    are dropped unread: a filter that keeps no row never asks for one (a generator would then never enter its
    `with`, and the file would be left to the garbage collector, open)."""

    def __init__(self, spooled: BinaryIO, items: Iterator[T]) -> None:
        self._spooled, self._items = spooled, items

    def __next__(self) -> T:
        try:
            return next(self._items)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self._spooled.close()

    def __del__(self) -> None:
        self.close()


def _feature_columns(header: Sequence[str]) -> set[int]:
    return {i for i, name in enumerate(header) if canonical(name) in ALIASES}


def _input_cell(text: str, is_feature: bool, typed: bool, decimal_comma: bool) -> Any:
    """A measurement that is a number stays a number (as written, or as a float for XLSX, a decimal comma read as
    the reader read it); other text is neutralised — case ids included, so `000123` stays text and `-1` cannot
    become a formula."""
    if is_feature:
        written = text.strip(" ")
        if NUMBER.fullmatch(written):
            return float(written) if typed else text
        if decimal_comma and DECIMAL_COMMA.fullmatch(written):
            return float(written.replace(",", ".")) if typed else text
    return neutralise(utf8_safe(text))


def _result_cell(value: Any) -> Any:
    return neutralise(utf8_safe(value)) if isinstance(value, str) else value


def _value_cell(text: str) -> str:
    """A rejected value in the error report: a number (a negative size, say) is shown as written."""
    written = text.strip(" ")
    return text if NUMBER.fullmatch(written) or DECIMAL_COMMA.fullmatch(written) else _result_cell(text)


def _paired(
    records: Iterator[dict[str, Any]], input_rows: Iterator[list[str]]
) -> Iterator[tuple[dict[str, Any], list[str]]]:
    """Each record with its input row (row n is the input's n-th): the input is read once, in order, and the rows
    a filter left out are passed over."""
    at = 0
    for record in records:
        cells = next(itertools.islice(input_rows, record["row"] - at - 1, None), None)
        if cells is None:
            raise LookupError(f"the stored input ends before row {record['row']}")
        at = record["row"]
        yield record, cells


def json_records(session: Session, job: Job, source: JobInput, show: str = "all") -> Iterator[dict[str, Any]]:
    """The result records (those `show` keeps: see job_views.SHOWS), each with its input row as sent. The input
    is read at once, while the request's session holds it; the records come as they are read."""
    input_header, input_rows = _source(job, source)

    def records() -> Iterator[dict[str, Any]]:
        with closing(input_rows):
            for record, cells in _paired(results.records(session, job, where=SHOWS[show]), input_rows):
                yield {**record, "input": dict(zip(input_header, cells, strict=True))}

    return records()


def table(
    session: Session, job: Job, source: JobInput, *, typed: bool, show: str = "all"
) -> tuple[list[str], Iterator[list[Any]]]:
    """The export's header and its rows (those `show` keeps): result fields, the notice, then the input columns.

    `typed` makes numeric measurements floats (for XLSX); otherwise they keep the text the user sent.
    """
    input_header, input_rows = _source(job, source)
    header = [*results.FIELDS, "notice", *(INPUT_PREFIX + name for name in input_header)]
    features = _feature_columns(input_header)
    decimal_comma = job.input_delimiter == ";"  # only a semicolon file may use a decimal comma

    def rows() -> Iterator[list[Any]]:
        with closing(input_rows):
            for record, cells in _paired(results.records(session, job, where=SHOWS[show]), input_rows):
                yield [
                    *(_result_cell(record[f]) for f in results.FIELDS),
                    results.NOTICE,
                    *(_input_cell(cell, i in features, typed, decimal_comma) for i, cell in enumerate(cells)),
                ]

    return header, rows()


def csv_stream(header: Sequence[str], rows: Iterator[Sequence[Any]], every: int = 5000) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv_writer(buffer)
    writer.writerow([neutralise(name) for name in header])
    for i, row in enumerate(rows, 1):
        writer.writerow(row)
        if i % every == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def json_stream(head: dict[str, Any], key: str, items: Iterator[Any], every: int = 1000) -> Iterator[str]:
    """`head`'s members and then `key`, an array of the items, as one JSON object written while the items come
    (in pieces of `every`), so a million records are never in memory at once."""
    dumps = functools.partial(current_app.json.dumps, separators=(",", ":"))  # compact, as jsonify answers
    opening = dumps(head)[:-1]
    yield opening + ("," if head else "") + dumps(key) + ":["
    separator = ""
    while piece := list(itertools.islice(items, every)):
        yield separator + ",".join(dumps(item) for item in piece)
        separator = ","
    yield "]}"


def xlsx_pieces(header: Sequence[str], rows: Iterator[Sequence[Any]]) -> tuple[int, Iterator[bytes]]:
    """The workbook's size and its bytes, a megabyte at a time. A zip's directory comes last, so the workbook is
    written whole first, to a temporary file rather than to memory, which is closed once sent (or dropped)."""
    out = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the _Closing that sends it
    try:
        write_xlsx(out, header, rows)
        size = out.tell()
        out.seek(0)
    except BaseException:
        out.close()
        raise
    return size, _Closing(out, iter(functools.partial(out.read, 1 << 20), b""))


def problems(job: Job, source: JobInput, model: dict[str, Any]) -> Iterator[list[Any]]:
    """Every rejected value, one line each: row, case id, column, value and reason (re-read from the stored input).

    The input is spooled now, inside the request; the lines are made as they are streamed.
    """
    spooled = _content(source)
    batches = read_batches(spooled, source.layout, model["features"], _BATCH_ROWS, filename=job.input_filename)
    return _problem_lines(_Closing(spooled, batches))


def _problem_lines(batches: Iterator[Batch]) -> Iterator[list[Any]]:
    for batch in batches:
        ids = dict(zip(batch.rows.tolist(), batch.case_ids, strict=True))
        for p in batch.problems:
            yield [p.row, _result_cell(ids.get(p.row)), p.column, _value_cell(p.value), _result_cell(p.reason)]
