"""A job's stored input: written and read in parts, a block at a time, so memory does not grow with the file."""

from __future__ import annotations

import struct
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from types import TracebackType
from typing import Any, BinaryIO

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from shared.schema import JobInputPart

BLOCK = 1 << 20
_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_COPY_IN = "COPY job_input_parts (job_id, part, first_row, row_count, content) FROM STDIN (FORMAT binary)"
_INSERT_PART = insert(JobInputPart)


class PartWriter:
    """Store a job's input part by part as it is read (its JobInput row must be in the session's transaction).

    On PostgreSQL one COPY … FROM STDIN (FORMAT binary) carries every part; leaving the block with an exception
    abandons the COPY, and the caller rolls the transaction back.
    """

    def __init__(self, session: Session, job_id: uuid.UUID) -> None:
        self._session, self._job_id, self._parts = session, job_id, 0
        self._copy: Any = None
        self._stack = ExitStack()

    def __enter__(self) -> PartWriter:
        self._session.flush()
        connection = self._session.connection()
        if connection.dialect.name == "postgresql":
            cursor = self._stack.enter_context(connection.connection.driver_connection.cursor())  # type: ignore[union-attr]
            self._copy = self._stack.enter_context(cursor.copy(_COPY_IN))
            self._copy.write(_SIGNATURE + struct.pack("!ii", 0, 0))
        return self

    def write(self, first_row: int, row_count: int, blocks: Sequence[bytes]) -> None:
        """Store the next part: `blocks` joined are its bytes, holding rows first_row .. + row_count - 1."""
        number, self._parts = self._parts, self._parts + 1
        if self._copy is None:
            values = {"job_id": self._job_id, "part": number, "first_row": first_row, "row_count": row_count}
            self._session.execute(insert(JobInputPart).values(**values, content=b"".join(blocks)))
            return
        self._copy.write(struct.pack("!hi16s", 5, 16, self._job_id.bytes))
        length = sum(map(len, blocks))
        self._copy.write(struct.pack("!iiiiiii", 4, number, 4, first_row, 4, row_count, length))
        for block in blocks:
            self._copy.write(block)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._copy is not None and kind is None:
            self._copy.write(struct.pack("!h", -1))
        self._stack.__exit__(kind, error, trace)


def store_whole(session: Session, job_id: uuid.UUID, content: bytes, rows: int) -> None:
    """Store bytes already in memory as the job's one part (at once, in the session's transaction)."""
    values = {"job_id": job_id, "part": 0, "first_row": 1, "row_count": rows, "content": content}
    session.connection().execute(_INSERT_PART, values)


def part_numbers(session: Session, job_id: uuid.UUID) -> list[int]:
    query = select(JobInputPart.part).where(JobInputPart.job_id == job_id).order_by(JobInputPart.part)
    return list(session.scalars(query))


def read_part(session: Session, job_id: uuid.UUID, part: int) -> JobInputPart:
    found = session.get(JobInputPart, (job_id, part))
    if found is None:
        raise LookupError(f"job {job_id} has no stored input part {part}")
    return found


def spool_input(session: Session, job_id: uuid.UUID, out: BinaryIO) -> int:
    """Write the job's input bytes to `out`, part after part; return how many. LookupError if the input is gone."""
    numbers = part_numbers(session, job_id)
    if not numbers:
        raise LookupError(f"job {job_id} has no stored input")
    connection = session.connection()
    written = 0
    for number in numbers:
        if connection.dialect.name == "postgresql":
            written += _copy_out(connection.connection.driver_connection, job_id, number, out)
        else:
            written += _slices(session, job_id, number, out)
    out.flush()
    return written


def _slices(session: Session, job_id: uuid.UUID, number: int, out: BinaryIO) -> int:
    where = (JobInputPart.job_id == job_id) & (JobInputPart.part == number)
    length = int(session.scalar(select(func.length(JobInputPart.content)).where(where)) or 0)
    for offset in range(0, length, BLOCK):
        out.write(session.scalar(select(func.substr(JobInputPart.content, offset + 1, BLOCK)).where(where)) or b"")
    return length


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
