"""Smoothing slice probabilities along a series (off by default; see training/smoothing_study)."""

from __future__ import annotations

import numpy as np
import pytest

from ichinfer.smoothing import smooth_along_series


def test_window_by_distance_not_index():
    p = np.array([[0.1], [0.9], [0.2], [0.3]])
    loc = np.array([0.0, 5.0, 10.0, 30.0])  # a gap before the last slice
    mx = smooth_along_series(p, locations_mm=loc, window_mm=10.0, mode="max")
    assert mx[:, 0].tolist() == [0.9, 0.9, 0.9, 0.3]  # the slice across the gap is alone
    mean = smooth_along_series(p, locations_mm=loc, window_mm=10.0, mode="mean")
    assert mean[:, 0] == pytest.approx([0.5, 0.4, 0.55, 0.3])
    assert np.array_equal(smooth_along_series(p, locations_mm=loc, window_mm=0.0), p)
    with pytest.raises(ValueError):
        smooth_along_series(p, locations_mm=loc, window_mm=5.0, mode="median")
