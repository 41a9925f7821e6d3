"""Big input files for the benchmarks and the slow tests: the bundled cases jittered, generated once, reused."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from shared.features import FEATURES
from shared.settings import ROOT
from testkit.support import wdbc

CACHE = ROOT / "var" / "bench"
BLOCK = 100_000  # rows generated and written at a time


def csv_file(rows: int, seed: int = 11, folder: Path = CACHE) -> Path:
    """The bundled cases, jittered, in the Kaggle layout: `rows` of them, generated once and then reused.

    Values carry four significant digits, as in the published data, so a million rows make about 221 MB.
    """
    path = folder / f"kaggle-{rows}rows-seed{seed}.csv"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        X, y = wdbc()
        rng = np.random.default_rng(seed)
        with partial.open("w", newline="") as out:
            for start in range(0, rows, BLOCK):
                n = min(BLOCK, rows - start)
                pick = rng.integers(0, len(X), n)
                block = pd.DataFrame(X[pick] * rng.normal(1.0, 0.02, (n, X.shape[1])), columns=list(FEATURES))
                block.insert(0, "diagnosis", y[pick])
                block.insert(0, "id", [f"B{i}" for i in range(start + 1, start + n + 1)])
                block.to_csv(out, header=start == 0, index=False, float_format="%.4g", lineterminator="\n")
        partial.replace(path)
    return path


def xlsx_file(rows: int, seed: int = 11, folder: Path = CACHE) -> Path:
    """The same rows as `csv_file`, as a one-sheet workbook written by openpyxl (generated once, then reused)."""
    source = csv_file(rows, seed, folder)
    path = source.with_suffix(".xlsx")
    if not path.exists():
        from openpyxl import Workbook

        frame = pd.read_csv(source, dtype={"id": str, "diagnosis": str})
        book = Workbook(write_only=True)
        sheet = book.create_sheet("cases")
        sheet.append(list(frame.columns))
        for row in frame.itertuples(index=False):
            sheet.append(list(row))
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        book.save(partial)
        partial.replace(path)
    return path
