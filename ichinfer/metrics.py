"""Evaluation metrics in plain numpy: ROC AUC, the RSNA weighted log loss, Dice.

Shared by training (per-epoch validation), export (model card figures) and calibration.
"""

from __future__ import annotations

import numpy as np

from ichinfer.labels import LABEL_WEIGHTS


def roc_auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Area under the ROC curve (ties counted half); NaN when only one class is present."""
    y = np.asarray(y_true).astype(bool).ravel()
    s = np.asarray(y_score, dtype=np.float64).ravel()
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def weighted_log_loss(
    y_true: np.ndarray, y_prob: np.ndarray, weights: tuple[float, ...] = LABEL_WEIGHTS
) -> float:
    """RSNA 2019 metric: per-sample weighted mean of the six binary log losses, averaged."""
    y = np.asarray(y_true, dtype=np.float64)
    p = np.clip(np.asarray(y_prob, dtype=np.float64), 1e-7, 1 - 1e-7)
    w = np.asarray(weights, dtype=np.float64)
    per = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    return float(((per * w).sum(axis=1) / w.sum()).mean())


def dice(truth: np.ndarray, pred: np.ndarray, *, empty: float = 1.0) -> float:
    """Dice coefficient of two binary masks; ``empty`` when both are empty."""
    t = np.asarray(truth).astype(bool)
    p = np.asarray(pred).astype(bool)
    denom = int(t.sum()) + int(p.sum())
    if denom == 0:
        return empty
    return float(2.0 * np.logical_and(t, p).sum() / denom)


def sensitivity_specificity(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float]:
    y = np.asarray(y_true).astype(bool).ravel()
    p = np.asarray(y_pred).astype(bool).ravel()
    sens = float((p & y).sum() / y.sum()) if y.any() else float("nan")
    spec = float((~p & ~y).sum() / (~y).sum()) if (~y).any() else float("nan")
    return sens, spec


def youden_threshold(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """The score threshold maximising sensitivity + specificity − 1 (0.5 when undefined)."""
    y = np.asarray(y_true).astype(bool).ravel()
    s = np.asarray(y_score, dtype=np.float64).ravel()
    if y.all() or not y.any():
        return 0.5
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    tp = np.cumsum(y_sorted)  # predicting positive for the top k
    fp = np.cumsum(~y_sorted)
    last_of_tie = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    j = tp / y.sum() - fp / (~y).sum()
    j = np.where(last_of_tie, j, -np.inf)
    return float(s_sorted[int(np.argmax(j))])


def specificity_threshold(y_true: np.ndarray, y_score: np.ndarray, specificity: float) -> float:
    """The lowest threshold (predict positive when score >= it) whose specificity on these cases
    is at least ``specificity``; 0.5 when there are no negatives."""
    y = np.asarray(y_true).astype(bool).ravel()
    neg = np.sort(np.asarray(y_score, dtype=np.float64).ravel()[~y])
    if neg.size == 0:
        return 0.5
    k = int(np.ceil(specificity * neg.size))  # at least k negatives must fall below
    if k >= neg.size:
        return float(np.nextafter(neg[-1], np.inf))
    return float(np.nextafter(neg[k - 1], np.inf)) if k > 0 else float(neg[0])


def series_bootstrap(
    statistic,
    groups: np.ndarray,
    *arrays: np.ndarray,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, int]:
    """Percentile interval of ``statistic(*arrays)`` when whole series are resampled.

    ``groups`` names each row's series (or patient). Slices of one series are not independent
    (neighbours share anatomy, and a bleed spans several), so an interval that resamples slices
    is too narrow; this one draws series with replacement, keeping each series' rows together,
    ``resamples`` times. Draws where the statistic is undefined (NaN: e.g. an AUC when no drawn
    series has the label) are left out. Returns ``(low, high, draws used)``; ``(nan, nan, 0)``
    when no draw was defined. Deterministic for a given ``seed``.
    """
    g = np.asarray(groups).ravel()
    arrays = tuple(np.asarray(a) for a in arrays)
    if any(len(a) != len(g) for a in arrays):
        raise ValueError("series_bootstrap: every array needs one row per entry of groups")
    _, codes = np.unique(g, return_inverse=True)
    order = np.argsort(codes, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(codes))]
    members = [order[bounds[i] : bounds[i + 1]] for i in range(len(bounds) - 1)]
    rng = np.random.default_rng(seed)
    values = []
    for draw in rng.integers(0, len(members), size=(resamples, len(members))):
        rows = np.concatenate([members[i] for i in draw])
        v = float(statistic(*(a[rows] for a in arrays)))
        if not np.isnan(v):
            values.append(v)
    if not values:
        return float("nan"), float("nan"), 0
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high), len(values)
