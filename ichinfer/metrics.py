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


#: a series-resampled interval needs this many series among the rows it is about (with one or
#: two, it would only say which of their slices were drawn, not how other series would score)
MIN_SERIES_FOR_INTERVAL = 3


def weighted_auc(y_true: np.ndarray, y_score: np.ndarray):
    """ROC AUC as a function of per-row weights: ``f(w)`` is :func:`roc_auc` of the rows each
    counted ``w`` times (ties half), NaN when a class weighs nothing. The scores are sorted once,
    so :func:`series_bootstrap` can call it thousands of times on a large set."""
    y = np.asarray(y_true).astype(bool).ravel()
    _, level = np.unique(np.asarray(y_score, dtype=np.float64).ravel(), return_inverse=True)
    n_levels = int(level.max()) + 1 if level.size else 0

    def auc(weights: np.ndarray) -> float:
        w = np.asarray(weights, dtype=np.float64)
        wp = np.bincount(level, weights=np.where(y, w, 0.0), minlength=n_levels)
        wn = np.bincount(level, weights=np.where(y, 0.0, w), minlength=n_levels)
        n_pos, n_neg = wp.sum(), wn.sum()
        if n_pos <= 0 or n_neg <= 0:
            return float("nan")
        below = np.cumsum(wn) - wn  # negative weight strictly below each score level
        return float((wp * (below + 0.5 * wn)).sum() / (n_pos * n_neg))

    return auc


#: how many draws :func:`series_bootstrap` makes unless told otherwise
RESAMPLES = 2000
#: :data:`RESAMPLES` as reports write it ("2 000")
RESAMPLES_TEXT = f"{RESAMPLES:,}".replace(",", " ")
#: what :func:`series_interval` gives, in words (for reports)
SERIES_INTERVAL = (
    f"95 % percentile interval, {RESAMPLES_TEXT} draws of whole series with replacement (seed 0)"
)


def series_bootstrap(
    statistic,
    groups: np.ndarray,
    *,
    resamples: int = RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, int]:
    """Percentile interval of a figure when whole series are resampled.

    ``groups`` names each row's series (or patient); ``statistic(weights)`` computes the figure
    with each row counted ``weights[row]`` times (e.g. :func:`weighted_auc`). Slices of one
    series are not independent (neighbours share anatomy, and a bleed spans several), so an
    interval that resamples slices is too narrow; this one draws the series with replacement,
    each draw weighting every row by how often its series was drawn, ``resamples`` times. Draws
    where the figure is undefined (NaN: e.g. an AUC when no drawn series has the label) are left
    out. Returns ``(low, high, draws used)``; ``(nan, nan, 0)`` when no draw was defined.
    Deterministic for a given ``seed``.
    """
    _, codes = np.unique(np.asarray(groups).ravel(), return_inverse=True)
    n_groups = int(codes.max()) + 1 if codes.size else 0
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples if n_groups else 0):
        counts = np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)
        v = float(statistic(counts[codes].astype(np.float64)))
        if not np.isnan(v):
            values.append(v)
    if not values:
        return float("nan"), float("nan"), 0
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high), len(values)


def series_interval(statistic, groups: np.ndarray, *about: np.ndarray) -> tuple[float, float]:
    """:func:`series_bootstrap`'s ``(low, high)``, or NaNs unless each ``about`` mask (e.g. the
    rows with the label, the rows without) covers at least ``MIN_SERIES_FOR_INTERVAL``
    series."""
    g = np.asarray(groups).ravel()
    if any(len(set(g[np.asarray(m, dtype=bool)])) < MIN_SERIES_FOR_INTERVAL for m in about):
        return float("nan"), float("nan")
    low, high, _ = series_bootstrap(statistic, g)
    return low, high
