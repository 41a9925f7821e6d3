"""A new job and its input, in the caller's transaction: stored whole as one part, or in parts as it is checked
(a large upload's first parts committed as they are stored, so that workers score them meanwhile)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, insert, text
from sqlalchemy.orm import Session, make_transient_to_detached

from shared.intake.plain import Emit, NotPlain, Scanned
from shared.intake.readers import Layout
from shared.jobs.stored import PartWriter, spool_input, store_part, store_whole
from shared.schema import Job, JobInput, JobKind, JobStatus, utcnow

# Built once: statements made per call cost more Python time than their round trip to the database.
_INSERT_JOB, _INSERT_INPUT = insert(Job), insert(JobInput)
_JOB_COLUMNS = tuple(column.key for column in Job.__table__.columns)
_DELETE_JOB = delete(Job).where(Job.id == bindparam("job_id"))
log = logging.getLogger(__name__)


def create_job(
    session: Session,
    *,
    kind: JobKind,
    model: dict[str, Any],
    content: bytes,
    media_type: str,
    layout: Layout,
    input_format: str,
    rows_total: int,
    filename: str | None = None,
    delimiter: str | None = None,
    owner_id: int | None = None,
    explain: bool = False,
    source: tuple[uuid.UUID, int] | None = None,
) -> Job:
    """Add a queued job and its input, stored as one part (in the session's transaction; the caller commits).

    `source` names the job and row a single case was opened from.

    The rows are written at once on the session's connection, with statements built once: for a single case the
    ORM's flush cost more than the database. The Job returned is in the session as if it had been read back.
    """
    sha256 = hashlib.sha256(content).hexdigest()
    job = _new_job(kind, model, filename, input_format, delimiter, rows_total, sha256, owner_id, explain)
    job.source_job_id, job.source_row = source or (None, None)
    connection = session.connection()
    connection.execute(_INSERT_JOB, {column: getattr(job, column) for column in _JOB_COLUMNS})
    connection.execute(
        _INSERT_INPUT, {"job_id": job.id, "media_type": media_type, "layout": layout.value, "header": None}
    )
    store_whole(session, job.id, content, rows_total)
    make_transient_to_detached(job)  # every column was given, so nothing is left to load
    session.add(job)
    return job


def create_upload(
    session: Session,
    *,
    model: dict[str, Any],
    filename: str | None,
    scan: Callable[[Emit], Scanned],
    owner_id: int | None = None,
    explain: Callable[[int], bool] = lambda rows: False,
    received: Callable[[uuid.UUID], object] = lambda job_id: None,
) -> Job:
    """Add a queued job for a plain CSV whose input is checked and stored in one pass: `scan` hands each part over
    as it is cut; `explain` decides from the row count whether rows get their contributions.

    A file cut into one part is stored in the session's transaction. A file of several parts is received: once its
    second part is cut, the job is committed with `receiving_at` set and `received` is told its id (the web puts
    it on the queue), and each part but the last is committed as it is stored, so workers score the first parts
    while the rest is checked. The last part is stored in the session's transaction with the job's totals, which
    ends the receiving: the job cannot finish before the caller commits.

    If `scan` or `explain` raises, the caller rolls the transaction back and nothing of the job remains: a received
    job is deleted before the exception goes on (if the web process dies first, the reconciler deletes it). A
    NotPlain goes on holding every byte the scan read (the parts it cut, the stored ones read back first), since
    the upload may be a body that cannot be read again.
    """
    job = _new_job(JobKind.UPLOAD, model, filename, "csv", None, 0, "", owner_id, explain=False)
    receiver = _Receiver(session, job, received)
    try:
        scanned = scan(receiver.emit)
        first_row, rows, content = receiver.finish()
        job.rows_total, job.input_sha256 = scanned.summary.rows_total, scanned.sha256
        job.input_delimiter = scanned.summary.delimiter
        job.explain = explain(job.rows_total)
        if receiver.parts and job.explain:  # a defect of the caller's: received parts are scored unexplained
            raise ValueError("rows to be explained must come in one part")
    except NotPlain as exc:
        exc.read = receiver.take_back() + exc.read
        receiver.abandon()
        raise
    except BaseException:
        receiver.abandon()
        raise
    finally:
        receiver.close()
    if receiver.parts:  # its input row, with the header line, was committed when the receiving began
        job.receiving_at = None  # with the last part, in the caller's transaction
    else:
        session.add(job)
        session.add(JobInput(job_id=job.id, media_type="text/csv", layout=Layout.PLAIN.value, header=scanned.header))
        session.flush()
    store_part(session, job.id, receiver.parts, first_row, rows, content)
    return job


class _Receiver:
    """The parts `scan` cuts, each held until the next comes: all but the last are stored and committed at once on a
    connection of their own, the last is left for the caller's transaction."""

    def __init__(self, session: Session, job: Job, received: Callable[[uuid.UUID], object]) -> None:
        self._session, self._job, self._received = session, job, received
        self._held: tuple[int, int, bytes] | None = None
        self._connection: Connection | None = None
        self._writer: PartWriter | None = None

    @property
    def parts(self) -> int:
        """How many parts are stored and committed: 0 until the second part is cut."""
        return self._writer.parts if self._writer is not None else 0

    def emit(self, first_row: int, rows: int, blocks: Sequence[bytes]) -> None:
        if self._held is not None:
            if self._writer is None:
                self._writer = self._receive(self._held[2])
            self._writer.write(*self._held)
        self._held = (first_row, rows, b"".join(blocks))

    def _receive(self, first_part: bytes) -> PartWriter:
        """Commit the job and its input's header line (the first part's first line), then say so; a writer."""
        job = self._job
        job.receiving_at = utcnow()
        bind = self._session.get_bind()
        engine = bind if isinstance(bind, Engine) else bind.engine
        self._connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self._connection.execute(_INSERT_JOB, {column: getattr(job, column) for column in _JOB_COLUMNS})
        header = first_part[: first_part.index(b"\n") + 1]
        self._connection.execute(
            _INSERT_INPUT, {"job_id": job.id, "media_type": "text/csv", "layout": Layout.PLAIN.value, "header": header}
        )
        make_transient_to_detached(job)  # its row is committed: the caller's session updates it
        self._session.add(job)
        self._received(job.id)
        return PartWriter(self._connection.connection.driver_connection, job.id).__enter__()

    def finish(self) -> tuple[int, int, bytes]:
        """Wait until every part sent is stored (raising what the database refused); the last part, held."""
        if self._writer is not None:
            self._writer.__exit__(None, None, None)
        if self._held is None:
            raise ValueError("scan cut no part")  # scan raises NotPlain for a file without rows
        return self._held

    def take_back(self) -> bytes:
        """The bytes of every part cut so far, in order: those stored, read back once all are, then the one held."""
        stored = io.BytesIO()
        if self._writer is not None and self._connection is not None:
            self._writer.__exit__(None, None, None)
            with Session(self._connection) as session:
                spool_input(session, self._job.id, stored)
        return stored.getvalue() + (self._held[2] if self._held is not None else b"")

    def abandon(self) -> None:
        """Delete a received job (its parts and any results scored from them go with it)."""
        if self._connection is None:
            return
        try:
            if self._writer is not None:
                with contextlib.suppress(Exception):
                    self._writer.__exit__(None, None, None)
            self._connection.execute(_DELETE_JOB, {"job_id": self._job.id})
        except Exception as exc:  # the database went away: the reconciler deletes the job once it is back
            log.warning("job %s: the upload failed and the job could not be deleted (%s)", self._job.id,
                        type(exc).__name__)  # fmt: skip

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


_COPY_INPUT = text(
    "INSERT INTO job_inputs (job_id, media_type, layout, header) "
    "SELECT :new, media_type, layout, header FROM job_inputs WHERE job_id = :old"
)
_COPY_PARTS = text(
    "INSERT INTO job_input_parts (job_id, part, first_row, row_count, content) "
    "SELECT :new, part, first_row, row_count, content FROM job_input_parts WHERE job_id = :old"
)


def create_rescore(session: Session, source: Job, *, model: dict[str, Any], owner_id: int | None) -> Job:
    """Add a queued job that scores `source`'s stored input again with another model: its input and parts are
    copied inside PostgreSQL, so nothing is sent again. LookupError if the input has been purged."""
    job = _new_job(JobKind(source.kind), model, source.input_filename, source.input_format, source.input_delimiter,
                   source.rows_total, source.input_sha256, owner_id, explain=False)  # fmt: skip
    connection = session.connection()
    connection.execute(_INSERT_JOB, {column: getattr(job, column) for column in _JOB_COLUMNS})
    if connection.execute(_COPY_INPUT, {"new": job.id, "old": source.id}).rowcount != 1:
        raise LookupError(f"job {source.id} has no stored input")
    connection.execute(_COPY_PARTS, {"new": job.id, "old": source.id})
    make_transient_to_detached(job)
    session.add(job)
    return job


def _new_job(
    kind: JobKind,
    model: dict[str, Any],
    filename: str | None,
    input_format: str,
    delimiter: str | None,
    rows_total: int,
    sha256: str,
    owner_id: int | None,
    explain: bool,
) -> Job:
    now = utcnow()
    return Job(
        id=uuid.uuid4(),
        kind=kind.value,
        status=JobStatus.QUEUED.value,
        model_name=model["name"],
        model_version=model["version"],
        model_sha256=model["sha256"],
        input_filename=filename,
        input_sha256=sha256,
        input_format=input_format,
        input_delimiter=delimiter,
        rows_total=rows_total,
        rows_scored=0,
        rows_rejected=0,
        rows_out_of_range=0,
        attempts=0,
        owner_id=owner_id,
        created_at=now,
        enqueued_at=now,  # about to be sent; `mark_unsent` clears it if the broker refuses
        started_at=None,
        finished_at=None,
        heartbeat_at=None,
        error=None,
        purged_at=None,
        explain=explain,
        receiving_at=None,
        source_job_id=None,
        source_row=None,
    )
