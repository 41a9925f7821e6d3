"""A job's stored input: written in parts, and read back a block at a time, so memory does not grow with the file."""

from __future__ import annotations

import struct
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from types import TracebackType
from typing import Any, BinaryIO

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from shared.schema import JobInputPart

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"  # binary COPY's header, read back by _copy_out
_INSERT_PART = insert(JobInputPart)
# `%b`: the part's bytes go as a binary parameter, not escaped into text.
_PIPELINED_PART = (
    "INSERT INTO job_input_parts (job_id, part, first_row, row_count, content) VALUES (%s, %s, %s, %s, %b)"
)


class PartWriter:
    """Store a job's input part by part as it is read (its JobInput row must be in the session's transaction).

    Each part is its own INSERT, sent in pipeline mode: the server compresses and stores a part
    while the caller checks the next one. `write` does not wait for the answer, only for the socket to take the
    bytes, so the parts on their way stay few however slowly the server stores them. A refused part raises at a
    later `write` or when the block ends; leaving it with an exception, the caller rolls the transaction back.

    Not one COPY … FROM STDIN (FORMAT binary) for all parts, as before: PostgreSQL 15 buffers binary COPY rows
    until a thousand have arrived (its multi-insert buffer counts their size as the text line's, 0), so the
    server held every part in memory and stored them all only after the last byte.
    """

    def __init__(self, session: Session, job_id: uuid.UUID) -> None:
        self._session, self._job_id, self._parts = session, job_id, 0
        self._cursor: Any = None
        self._stack = ExitStack()

    def __enter__(self) -> PartWriter:
        self._session.flush()
        driver: Any = self._session.connection().connection.driver_connection
        self._cursor = self._stack.enter_context(driver.cursor())
        self._stack.enter_context(driver.pipeline())
        return self

    def write(self, first_row: int, row_count: int, blocks: Sequence[bytes]) -> None:
        """Store the next part: `blocks` joined are its bytes, holding rows first_row .. + row_count - 1."""
        number, self._parts = self._parts, self._parts + 1
        content = b"".join(blocks)
        self._cursor.execute(_PIPELINED_PART, (self._job_id, number, first_row, row_count, content))

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stack.__exit__(kind, error, trace)  # the pipeline's end: every result read, the first error raised


def store_whole(session: Session, job_id: uuid.UUID, content: bytes, rows: int) -> None:
    """Store bytes already in memory as the job's one part (at once, in the session's transaction)."""
    values = {"job_id": job_id, "part": 0, "first_row": 1, "row_count": rows, "content": content}
    session.connection().execute(_INSERT_PART, values)


def spool_input(session: Session, job_id: uuid.UUID, out: BinaryIO) -> int:
    """Write the job's whole input to `out`, part after part; return how many bytes. LookupError if it is gone."""
    query = select(JobInputPart.part).where(JobInputPart.job_id == job_id).order_by(JobInputPart.part)
    numbers = list(session.scalars(query))
    if not numbers:
        raise LookupError(f"job {job_id} has no stored input")
    written = sum(spool_part(session, job_id, number, out) for number in numbers)
    out.flush()
    return written


def spool_part(session: Session, job_id: uuid.UUID, part: int, out: BinaryIO) -> int:
    """Write one stored part's bytes to `out`, a block at a time; return how many."""
    return _copy_out(session.connection().connection.driver_connection, job_id, part, out)


def _copy_out(conn: Any, job_id: uuid.UUID, number: int, out: BinaryIO) -> int:
    """COPY … TO STDOUT (FORMAT binary) streams the value in blocks; strip the format's framing."""
    sql = "COPY (SELECT content FROM job_input_parts WHERE job_id = %s AND part = %s) TO STDOUT (FORMAT binary)"
    framing = b""  # what arrived before the value's first byte
    length: int | None = None
    remaining = 0
    with conn.cursor() as cur, cur.copy(sql, (job_id, number)) as copy:
        for block in copy:
            data = bytes(block)
            if length is None:
                framing += data
                start = _value_start(framing)
                if start is None:
                    continue
                length = remaining = struct.unpack_from("!i", framing, start - 4)[0]
                data = framing[start:]
            take = data[:remaining]
            out.write(take)
            remaining -= len(take)
    if length is None:
        raise LookupError(f"job {job_id} has no stored input part {number}")
    if remaining:
        raise OSError(f"job {job_id}: stored input part {number} ended {remaining} bytes early")
    return length


def _value_start(buffer: bytes) -> int | None:
    """Where the first field's bytes begin: signature, flags, extension, field count, length."""
    if len(buffer) < 19:
        return None
    if not buffer.startswith(_SIGNATURE):
        raise OSError("unexpected COPY framing")
    extension = struct.unpack_from("!i", buffer, 15)[0]
    start = 19 + extension + 2 + 4
    if len(buffer) < start:
        return None
    if struct.unpack_from("!h", buffer, 19 + extension)[0] == -1:  # the trailer: no row at all
        raise LookupError("no stored input")
    return int(start)
