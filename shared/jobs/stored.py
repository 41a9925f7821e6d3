"""A job's stored input: written in parts, and read back a block at a time, so memory does not grow with the file."""

from __future__ import annotations

import struct
import uuid
from contextlib import ExitStack
from types import TracebackType
from typing import Any, BinaryIO

from psycopg.pq import TransactionStatus
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from shared.schema import JobInputPart

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"  # binary COPY's header, read back by _copy_out
_INSERT_PART = insert(JobInputPart)
# `%b`: the part's bytes go as a binary parameter, not escaped into text. The job's `receiving_at` says when.
_RECEIVED_PART = (
    "WITH stored AS (INSERT INTO job_input_parts (job_id, part, first_row, row_count, content) "
    "VALUES (%s, %s, %s, %s, %b) RETURNING job_id) "
    "UPDATE jobs SET receiving_at = now() FROM stored WHERE jobs.id = stored.job_id"
)


class PartWriter:
    """Store a received job's input part by part as it is checked, on a connection in autocommit mode: each part
    is committed as it is stored, so workers can score it while the caller checks the next.

    Each part is its own transaction, sent in pipeline mode: the server compresses and stores a part while the
    caller checks the next one. Its COMMIT goes with it: in pipeline mode, the statements before a Sync (which waits
    for the server) would otherwise share one transaction. `write` does not wait for the answer, only for the socket
    to take the bytes, so the parts on their way stay few however slowly the server stores them. A refused part
    raises at a later `write` or when the block ends, and leaves the connection usable.

    Not one COPY … FROM STDIN (FORMAT binary) for all parts, as before: PostgreSQL 15 buffers binary COPY rows
    until a thousand have arrived (its multi-insert buffer counts their size as the text line's, 0), so the
    server held every part in memory and stored them all only after the last byte.
    """

    def __init__(self, connection: Any, job_id: uuid.UUID) -> None:
        self._connection, self._job_id, self.parts = connection, job_id, 0
        self._cursor: Any = None
        self._stack = ExitStack()

    def __enter__(self) -> PartWriter:
        self._cursor = self._stack.enter_context(self._connection.cursor())
        self._stack.enter_context(self._connection.pipeline())
        return self

    def write(self, first_row: int, row_count: int, content: bytes) -> None:
        """Store the next part, holding rows first_row .. + row_count - 1."""
        number, self.parts = self.parts, self.parts + 1
        self._cursor.execute("BEGIN")
        # Not waiting for the disk: the upload's last, durable commit flushes every part before it (until then, a
        # crash leaves a job still being received, which the reconciler deletes).
        self._cursor.execute("SET LOCAL synchronous_commit TO OFF")
        self._cursor.execute(_RECEIVED_PART, (self._job_id, number, first_row, row_count, content))
        self._cursor.execute("COMMIT")

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        try:
            self._stack.__exit__(kind, error, trace)  # the pipeline's end: every result read, the first error raised
        finally:
            if self._connection.info.transaction_status == TransactionStatus.INERROR:
                self._connection.execute("ROLLBACK")  # the refused part's transaction, aborted


def store_whole(session: Session, job_id: uuid.UUID, content: bytes, rows: int) -> None:
    """Store bytes already in memory as the job's one part (at once, in the session's transaction)."""
    store_part(session, job_id, 0, 1, rows, content)


def store_part(session: Session, job_id: uuid.UUID, part: int, first_row: int, rows: int, content: bytes) -> None:
    """Store one part of the job's input in the session's transaction."""
    values = {"job_id": job_id, "part": part, "first_row": first_row, "row_count": rows, "content": content}
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
