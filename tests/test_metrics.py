"""ichinfer.metrics: weighted AUC and intervals that resample whole series."""

from __future__ import annotations

import numpy as np
import pytest

from ichinfer.metrics import roc_auc, series_bootstrap, weighted_auc


def _scores(n_series: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (np.arange(n_series) % 2).astype(float)  # half the series have the label
    return y, np.round(y + rng.normal(0.0, 1.0, n_series), 1)  # AUC around 0.76, with ties


def test_weighted_auc_is_the_auc_of_repeated_rows():
    y, s = _scores(80, seed=2)
    assert weighted_auc(y, s)(np.ones(80)) == pytest.approx(roc_auc(y, s), abs=1e-12)
    w = np.random.default_rng(0).integers(0, 4, 80)
    rows = np.repeat(np.arange(80), w)
    assert weighted_auc(y, s)(w.astype(float)) == pytest.approx(roc_auc(y[rows], s[rows]),
                                                                abs=1e-12)
    assert np.isnan(weighted_auc(y, s)(np.where(y == 1, 0.0, 1.0)))  # no positive weighs


def test_the_interval_is_about_series_not_slices():
    # one score per series, and the same series with every row repeated ten times (ten
    # "slices" a series that tell nothing new): resampling series gives about the same
    # interval for both; resampling slices would call the repeated one far narrower
    y, s = _scores(60, seed=1)
    one = series_bootstrap(weighted_auc(y, s), np.arange(60))
    rows = np.repeat(np.arange(60), 10)
    ten = series_bootstrap(weighted_auc(y[rows], s[rows]), rows)
    by_slice = series_bootstrap(weighted_auc(y[rows], s[rows]), np.arange(600))
    width = [hi - lo for lo, hi, _ in (one, ten, by_slice)]
    assert width[1] == pytest.approx(width[0], rel=0.25)
    assert width[2] < 0.6 * width[1]
    auc = roc_auc(y, s)
    assert one[0] < auc < one[1] and ten[0] < auc < ten[1]
    assert one[2] == ten[2] == 2000  # both classes in every draw of 60 series


def test_undefined_draws_are_left_out_and_the_seed_fixes_the_result():
    # one positive series in ten: about a third of the draws miss it (AUC undefined)
    y = np.r_[np.ones(3), np.zeros(27)]
    s = np.linspace(0.0, 1.0, 30)[::-1]
    groups = np.repeat(np.arange(10), 3)
    lo, hi, used = series_bootstrap(weighted_auc(y, s), groups, resamples=500)
    assert 250 < used < 400  # P(missed) = 0.9 ** 10, about 0.35
    assert lo == hi == 1.0  # the positive series outranks every other in each draw
    assert series_bootstrap(weighted_auc(y, s), groups, resamples=500) == (lo, hi, used)
    assert series_bootstrap(weighted_auc(np.zeros(30), s), groups)[2] == 0
