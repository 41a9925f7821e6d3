"""How a job's answers compare with the known diagnoses: the 2x2 table, four proportions with Wilson intervals,
ROC AUC with a bootstrap interval and the ROC curve, for all rows and for those the model was not trained on.
Malignant (M) is the positive class throughout.

A row's known diagnosis is the one confirmed after scoring (api.confirmed) where there is one, else the one its file
supplied. The figures come from the stored results (the answer, P(malignant) and whether the row's values were a
training row) and the confirmations, and are kept per finished job in a small cache, recomputed when the job's
confirmations change: its results never do.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import binomtest
from sklearn.metrics import roc_auc_score, roc_curve
from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from shared.schema import ConfirmedDiagnosis, Job, Result

LEVEL = 0.95
BOOTSTRAP_SEED = 20261203
BOOTSTRAP_RESAMPLES = 1000
#: Each resample is a pass over every row: past 20,000 rows there are fewer (200 at 100,000 rows, at least 100),
#: so a page's first view of a large job stays within seconds (1M rows: 9 s on a busy two-core machine).
BOOTSTRAP_ROW_PASSES = 20_000_000
BOOTSTRAP_RESAMPLES_MIN = 100
CURVE_POINTS = 400
#: Per job: the fingerprint of its confirmed diagnoses when the figures were made, and the figures.
_CACHE: OrderedDict[uuid.UUID, tuple[str, dict[str, Any] | None]] = OrderedDict()
_CACHE_SIZE = 32


def wilson(k: int, n: int) -> tuple[float, float] | None:
    """The 95 % Wilson score interval of k successes in n trials (scipy's), or None when n is 0."""
    if n == 0:
        return None
    ci = binomtest(k, n).proportion_ci(confidence_level=LEVEL, method="wilson")
    return float(ci.low), float(ci.high)


def proportion(k: int, n: int) -> dict[str, Any]:
    interval = wilson(k, n)
    return {
        "value": k / n if n else None,
        "numerator": k,
        "denominator": n,
        "ci_low": interval[0] if interval else None,
        "ci_high": interval[1] if interval else None,
    }


def bootstrap_auc(truth: np.ndarray, score: np.ndarray, resamples: int, seed: int = BOOTSTRAP_SEED) -> list[float]:
    """ROC AUC of `resamples` bootstrap resamples of the rows (drawn with replacement, fixed seed); resamples
    holding one class only are left out. Each is one weighted pass over the rows grouped by score (ties count
    half, as roc_auc_score counts them), so no resample sorts."""
    _, group = np.unique(score, return_inverse=True)
    groups = int(group.max()) + 1
    positive = truth.astype(np.float64)
    rng = np.random.default_rng(seed)
    n = len(truth)
    out: list[float] = []
    for _ in range(resamples):
        weight = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
        pos = np.bincount(group, weights=weight * positive, minlength=groups)
        neg = np.bincount(group, weights=weight * (1 - positive), minlength=groups)
        total_pos, total_neg = pos.sum(), neg.sum()
        if total_pos == 0 or total_neg == 0:
            continue
        below = np.cumsum(neg) - neg
        out.append(float((pos * (below + neg / 2)).sum() / (total_pos * total_neg)))
    return out


def _curve(truth: np.ndarray, score: np.ndarray) -> list[tuple[float, float]]:
    fpr, tpr, _ = roc_curve(truth, score)
    if len(fpr) > CURVE_POINTS:  # a few hundred points draw the same line
        keep = np.unique(np.linspace(0, len(fpr) - 1, CURVE_POINTS).round().astype(int))
        fpr, tpr = fpr[keep], tpr[keep]
    return [(float(x), float(y)) for x, y in zip(fpr, tpr, strict=True)]


def figures(known: np.ndarray, answer: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    """The figures for these rows: `known` (the diagnosis) and `answer` hold "M"/"B", `proba` P(malignant)."""
    truth, said = known == "M", answer == "M"
    tp, fp = int((truth & said).sum()), int((~truth & said).sum())
    fn, tn = int((truth & ~said).sum()), int((~truth & ~said).sum())
    out: dict[str, Any] = {
        "rows": len(truth),
        "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
        "agreement": proportion(tp + tn, len(truth)),
        "sensitivity": proportion(tp, tp + fn),
        "specificity": proportion(tn, tn + fp),
        "ppv": proportion(tp, tp + fp),
        "npv": proportion(tn, tn + fn),
        "roc_auc": None,
        "roc_curve": [],
    }
    if truth.any() and not truth.all():
        resamples = min(BOOTSTRAP_RESAMPLES, max(BOOTSTRAP_RESAMPLES_MIN, BOOTSTRAP_ROW_PASSES // len(truth)))
        aucs = bootstrap_auc(truth, proba, resamples)
        low, high = np.percentile(aucs, [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2])
        out["roc_auc"] = {
            "value": float(roc_auc_score(truth, proba)),
            "ci_low": float(low),
            "ci_high": float(high),
            "method": f"percentile bootstrap, {len(aucs)} resamples, seed {BOOTSTRAP_SEED}",
        }
        out["roc_curve"] = _curve(truth, proba)
    return out


@dataclass(frozen=True)
class Rows:
    known: np.ndarray  # "M"/"B": confirmed after scoring, else supplied
    answer: np.ndarray
    proba: np.ndarray
    trained: np.ndarray  # 1: a training row, 0: not, -1: unknown


def _rows(session: Session, job: Job) -> Rows:
    confirmed = ConfirmedDiagnosis
    known = func.coalesce(confirmed.diagnosis, Result.supplied_diagnosis)
    # A confirmation carries its own training-row check, made when it was recorded (unknown if the model changed).
    trained = case((confirmed.row_number.is_(None), Result.trained_on), else_=confirmed.trained_on)
    query = (
        select(known, Result.diagnosis, Result.probability_malignant, trained)
        .outerjoin(confirmed, and_(confirmed.job_id == Result.job_id, confirmed.row_number == Result.row_number))
        .where(Result.job_id == job.id, Result.diagnosis.is_not(None), known.in_(("M", "B")))
        .order_by(Result.row_number)  # the bootstrap's resamples, and so its interval, follow the rows' order
    )
    found = session.execute(query).all()
    return Rows(
        known=np.array([r[0] for r in found], dtype=object),
        answer=np.array([r[1] for r in found], dtype=object),
        proba=np.array([r[2] for r in found], dtype=np.float64),
        trained=np.array([-1 if r[3] is None else int(r[3]) for r in found], dtype=np.int8),
    )


def _confirmations(session: Session, job: Job) -> tuple[str, int, int]:
    """A fingerprint of the job's confirmed diagnoses (what the cached figures were made from), how many there
    are, and on how many the file supplied a different diagnosis."""
    confirmed = ConfirmedDiagnosis
    found = session.execute(
        select(confirmed.row_number, confirmed.diagnosis, confirmed.trained_on, Result.supplied_diagnosis)
        .join(Result, and_(Result.job_id == confirmed.job_id, Result.row_number == confirmed.row_number))
        .where(confirmed.job_id == job.id)
        .order_by(confirmed.row_number)
    ).all()
    fingerprint = hashlib.sha256(repr([tuple(r[:3]) for r in found]).encode()).hexdigest()
    corrected = sum(r[3] in ("M", "B") and r[3] != r[1] for r in found)
    return fingerprint, len(found), corrected


def validation(session: Session, job: Job) -> dict[str, Any] | None:
    """The validation figures of a succeeded job against its rows' known diagnoses; None when no row has one."""
    fingerprint, confirmed, corrected = _confirmations(session, job)
    cached = _CACHE.get(job.id)
    if cached is not None and cached[0] == fingerprint:
        return cached[1]
    rows = _rows(session, job)
    result = _figures(rows, confirmed, corrected) if len(rows.known) else None
    _CACHE[job.id] = (fingerprint, result)
    _CACHE.move_to_end(job.id)
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return result


def _figures(rows: Rows, confirmed: int, corrected: int) -> dict[str, Any]:
    trained = int((rows.trained == 1).sum())
    other = rows.trained == 0
    supplied = len(rows.known) - confirmed
    return {
        "positive_class": "M",
        "level": LEVEL,
        # Which diagnoses the answers are checked against, in words: "supplied", "confirmed" or both.
        "reference": "confirmed or supplied" if confirmed and supplied else "confirmed" if confirmed else "supplied",
        "confirmed_rows": confirmed,
        "corrected_rows": corrected,
        "all": figures(rows.known, rows.answer, rows.proba),
        "training_rows": trained,
        "unchecked_rows": int((rows.trained == -1).sum()),
        "not_in_training": figures(rows.known[other], rows.answer[other], rows.proba[other]) if trained else None,
    }
