"""Large files are read in streaming chunks: the worker spools the stored input to a file and reads it from there."""

from __future__ import annotations

import io
import tempfile
import tracemalloc
import uuid

import numpy as np
import openpyxl
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from shared import jobs
from shared.inputs import spool_input
from shared.intake import iter_batches
from shared.schema import JobKind
from tests.support import wdbc_csv
from tests.test_progress import RF4, jittered_csv


def _xlsx(csv_bytes: bytes) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    for line in csv_bytes.decode().splitlines():
        sheet.append(line.split(","))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_a_file_on_disk_gives_exactly_the_batches_of_the_same_bytes_in_memory(fmt):
    content = wdbc_csv(slice(0, 300)) if fmt == "csv" else _xlsx(wdbc_csv(slice(0, 300)))
    in_memory = list(iter_batches(content, f"x.{fmt}", RF4, 64))
    with tempfile.TemporaryFile() as spooled:
        spooled.write(content)
        on_disk = list(iter_batches(spooled, f"x.{fmt}", RF4, 64))
    assert len(in_memory) == len(on_disk) == 5
    for a, b in zip(in_memory, on_disk, strict=True):
        assert np.array_equal(a.rows, b.rows) and np.array_equal(a.X, b.X) and a.case_ids == b.case_ids


def _peak_while_reading(rows: int) -> int:
    with tempfile.TemporaryFile() as spooled:
        spooled.write(jittered_csv(rows))
        tracemalloc.start()
        try:
            for _ in iter_batches(spooled, "big.csv", RF4, 2000):
                pass
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()


def test_reading_memory_does_not_grow_with_the_file():
    small, large = _peak_while_reading(10_000), _peak_while_reading(100_000)
    file_growth = len(jittered_csv(100_000)) - len(jittered_csv(10_000))
    # Ten times the rows. The one thing kept for the whole file is the duplicate-id index: a 64-bit hash per
    # case (twice that while it is being merged). Everything else is one chunk, whatever the file's size.
    assert large - small <= 32 * 90_000, (small, large)
    assert large - small < file_growth / 2, (small, large, file_growth)


def test_the_stored_input_is_spooled_back_byte_for_byte(pg_url):
    engine = create_engine(pg_url)
    sessions = sessionmaker(engine)
    content = jittered_csv(60_000)  # a few MB: several COPY blocks
    assert len(content) > 2 * 2**20
    model = {"name": "wdbc-rf4", "version": "1.0.0", "sha256": "0" * 64}
    with sessions.begin() as session:
        job_id = jobs.create_job(session, kind=JobKind.UPLOAD, model=model, content=content, media_type="text/csv",
                                 input_format="csv", rows_total=60_000).id  # fmt: skip
    with sessions.begin() as session, tempfile.TemporaryFile() as out:
        assert spool_input(session, job_id, out) == len(content)
        out.seek(0)
        assert out.read() == content
    with sessions.begin() as session, pytest.raises(LookupError):
        spool_input(session, uuid.uuid4(), io.BytesIO())
    engine.dispose()
