"""What validation hands back: per-row problems, a batch of rows ready to score, and an upload summary."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from .review import Tally


@dataclass(frozen=True)
class Problem:
    row: int  # 1-based data row number (first case = row 1; the header is not a row)
    column: str  # published feature name, or "id"
    value: str  # the value as given (text, very long ones shortened)
    reason: str

    def __str__(self) -> str:
        return f"{self.column} {self.value!r}: {self.reason}" if self.value else f"{self.column}: {self.reason}"


@dataclass
class Batch:
    """One batch of rows, validated together, in input order; rejected rows hold NaN in X and say why in `errors`."""

    rows: npt.NDArray[np.int64]
    case_ids: list[str | None]
    X: npt.NDArray[np.float64]
    ok: npt.NDArray[np.bool_]
    errors: list[str | None]
    problems: list[Problem]
    supplied_diagnosis: list[str | None]
    out_of_range: list[str | None]
    warnings: list[str | None]
    tally: Tally = field(default_factory=Tally)  # what makes the input as a whole suspect (`review`)


@dataclass(frozen=True)
class UploadSummary:
    format: str  # "csv" | "xlsx"
    delimiter: str | None  # for CSV: ",", ";" or "\t"; None for xlsx
    rows_total: int
    columns: list[str]  # the header as given (a dropped empty trailing column left out)
    has_diagnosis: bool
    sheet: str | None
