"""Turn rows of cells into a Batch: every bad value named by row, column, value and reason."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter

import numpy as np
import numpy.typing as npt

from shared.features import CASE_ID, NONZERO

from .batch import Batch, Problem
from .ids import parse_diagnosis, parse_ids
from .numbers import DecimalMarks, parse_matrix, value_text
from .plausible import broken_geometry, out_of_limits
from .review import FAR, Tally

Ranges = Mapping[str, tuple[float, float]]
_PLAIN_DIAGNOSIS = {"M": "M", "B": "B"}
RANGE_MARGIN = 0.10  # flag values beyond the training range by more than 10 % of its span


class BatchBuilder:
    """Validate successive batches of one input; its decimal marks are tracked across them.

    Repeated case ids are found across the whole job when its last batch is written (`shared.jobs.units`).
    """

    def __init__(
        self,
        features: Sequence[str],
        feature_index: Sequence[int],
        id_index: int | None,
        diagnosis_index: int | None,
        *,
        ranges: Ranges | None = None,
        all_text: bool = True,
        decimal_comma: bool = False,
        id_required: bool = True,
    ) -> None:
        self.features = tuple(features)
        self.feature_index = tuple(feature_index)
        self.id_index, self.diagnosis_index = id_index, diagnosis_index
        self.ranges = {f: ranges[f] for f in self.features if ranges and f in ranges}
        self.all_text, self.id_required = all_text, id_required
        self.marks = DecimalMarks() if decimal_comma else None

    def build(self, row0: int, rows: Sequence[Sequence[object]]) -> Batch:
        first, *more = self.feature_index
        cells = list(map(itemgetter(first, *more), rows)) if more else [(r[first],) for r in rows]
        X, bad = parse_matrix(cells, self.features, all_text=self.all_text, marks=self.marks, row0=row0)
        implausible, geometry = self.implausible(X)
        id_values: Sequence[object] = [None] * len(rows) if self.id_index is None else [r[self.id_index] for r in rows]
        given = None if self.diagnosis_index is None else [r[self.diagnosis_index] for r in rows]
        return self._batch(row0, X, bad, lambda i, j: cells[i][j], id_values, given, implausible, geometry)

    def build_parsed(
        self,
        row0: int,
        X: npt.NDArray[np.float64],
        ids: Sequence[object],
        given: Sequence[object] | None,
        cell_text: Callable[[int, int], str],
    ) -> Batch:
        """A batch whose measurements were all read as numbers already; those that cannot be measurements are
        refused as in `build` (see `implausible`), each shown by `cell_text(row, feature)` as it was written."""
        implausible, geometry = self.implausible(X)
        return self._batch(row0, X, {}, cell_text, ids, given, implausible, geometry)

    def implausible(self, X: npt.NDArray[np.float64]) -> tuple[dict[tuple[int, int], str], set[int]]:
        """Numbers that are read fine but cannot be measurements, and the rows among them that break the geometry.

        Negative ones, zero sizes, values beyond a plausibility limit, and areas, perimeters or worst values that
        do not fit the rest of the row (`plausible`).
        """
        bad: dict[tuple[int, int], str] = {}
        with np.errstate(invalid="ignore"):
            for j, name in enumerate(self.features):
                for at in np.flatnonzero(X[:, j] < 0):
                    bad[(int(at), j)] = "is negative"
                if name in NONZERO:
                    for at in np.flatnonzero(X[:, j] == 0):
                        bad[(int(at), j)] = "must be greater than zero"
        out_of_limits(X, self.features, bad)
        return bad, broken_geometry(X, self.features, bad)

    def _batch(
        self,
        row0: int,
        X: npt.NDArray[np.float64],
        bad: dict[tuple[int, int], str],
        value_at: Callable[[int, int], object],
        id_values: Sequence[object],
        given: Sequence[object] | None,
        implausible: dict[tuple[int, int], str],
        geometry: set[int],
    ) -> Batch:
        n = len(X)
        numbers = np.arange(row0, row0 + n, dtype=np.int64)
        far = self._far(X)
        bad = implausible | bad  # a value that could not be read keeps that reason
        found = [
            (i, j, Problem(row0 + i, self.features[j], value_text(value_at(i, j)), why)) for (i, j), why in bad.items()
        ]
        case_ids, bad_ids = parse_ids(id_values, self.id_required)
        k = len(self.features)
        found += [(i, k, Problem(row0 + i, CASE_ID, value_text(id_values[i]), why)) for i, why in bad_ids.items()]
        found.sort(key=lambda item: (item[0], item[1]))
        by_row: dict[int, list[Problem]] = {}
        for i, _, problem in found:
            by_row.setdefault(i, []).append(problem)
        ok = np.ones(n, dtype=bool)
        ok[list(by_row)] = False
        X[~ok] = np.nan
        notes: dict[int, list[str]] = {}
        diagnoses = self._diagnoses(n, given, notes)
        out_of_range = self._out_of_range(X, ok)
        tally = Tally(
            out_of_range=sum(note is not None for note in out_of_range),
            implausible=len({i for i, _ in implausible}),
            geometry=len(geometry),
            far=far,
        )
        return Batch(
            rows=numbers,
            case_ids=case_ids,
            X=X,
            ok=ok,
            errors=_per_row(n, {i: list(map(str, found)) for i, found in by_row.items()}),
            problems=[p for _, _, p in found],
            supplied_diagnosis=diagnoses,
            out_of_range=out_of_range,
            warnings=_per_row(n, notes),
            tally=tally,
        )

    def _diagnoses(self, n: int, given: Sequence[object] | None, notes: dict[int, list[str]]) -> list[str | None]:
        if given is None:
            return [None] * n
        labels: list[str | None] = [_PLAIN_DIAGNOSIS.get(v) if type(v) is str else None for v in given]
        for i, value in enumerate(given):
            if labels[i] is None:
                labels[i], warning = parse_diagnosis(value)
                if warning:
                    notes.setdefault(i, []).append(warning)
        return labels

    def _far(self, X: npt.NDArray[np.float64]) -> int:
        """Rows with a value at least FAR times its training maximum: the mark of a misread decimal separator."""
        far = np.zeros(len(X), dtype=bool)
        with np.errstate(invalid="ignore"):
            for j, name in enumerate(self.features):
                if name in self.ranges and self.ranges[name][1] > 0:
                    far |= X[:, j] >= FAR * self.ranges[name][1]
        return int(far.sum())

    def _out_of_range(self, X: npt.NDArray[np.float64], ok: npt.NDArray[np.bool_]) -> list[str | None]:
        notes: dict[int, list[str]] = {}
        for j, name in enumerate(self.features):
            if name not in self.ranges:
                continue
            lo, hi = self.ranges[name]
            margin = RANGE_MARGIN * (hi - lo)
            column = X[:, j]
            with np.errstate(invalid="ignore"):
                outside = ok & ((column < lo - margin) | (column > hi + margin))
            for at in np.flatnonzero(outside):
                side = "below" if column[at] < lo else "above"
                notes.setdefault(int(at), []).append(f"{name} {column[at]:g} {side} training range {lo:g}–{hi:g}")
        return _per_row(len(ok), notes)


def _per_row(n: int, notes: dict[int, list[str]]) -> list[str | None]:
    joined: list[str | None] = [None] * n
    for i, texts in notes.items():
        joined[i] = "; ".join(texts)
    return joined
