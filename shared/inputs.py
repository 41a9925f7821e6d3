"""Read a job's stored input a block at a time, so a worker's memory does not grow with the file."""

from __future__ import annotations

import struct
import uuid
from typing import Any, BinaryIO

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.schema import JobInput

BLOCK = 1 << 20
_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"


def spool_input(session: Session, job_id: uuid.UUID, out: BinaryIO) -> int:
    """Write the job's input bytes to `out`; return how many. Raises LookupError if the input is gone."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        written = _copy_out(connection.connection.driver_connection, job_id, out)
    else:
        written = _slices(session, job_id, out)
    out.flush()
    return written


def _slices(session: Session, job_id: uuid.UUID, out: BinaryIO) -> int:
    length = session.scalar(select(func.length(JobInput.content)).where(JobInput.job_id == job_id))
    if length is None:
        raise LookupError(f"job {job_id} has no stored input")
    for offset in range(0, length, BLOCK):
        part = select(func.substr(JobInput.content, offset + 1, BLOCK)).where(JobInput.job_id == job_id)
        out.write(session.scalar(part) or b"")
    return int(length)


def _copy_out(conn: Any, job_id: uuid.UUID, out: BinaryIO) -> int:
    """COPY … TO STDOUT (FORMAT binary) streams the value in blocks; strip the format's framing."""
    sql = "COPY (SELECT content FROM job_inputs WHERE job_id = %s) TO STDOUT (FORMAT binary)"
    framing = b""  # what arrived before the value's first byte
    length: int | None = None
    remaining = 0
    with conn.cursor() as cur, cur.copy(sql, (job_id,)) as copy:
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
        raise LookupError(f"job {job_id} has no stored input")
    if remaining:
        raise OSError(f"job {job_id}: the stored input ended {remaining} bytes early")
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
