"""Optional smoothing of slice probabilities along a series, by distance in mm.

Off by default: ``training/smoothing_study.py`` measures whether it helps (per-label slice AUC
and series AUC with and without it) and it is switched on only where that shows a gain. The
2.5-D models already see the neighbouring slices in their input.
"""

from __future__ import annotations

import numpy as np

MODES = ("max", "mean")


def smooth_along_series(
    probabilities: np.ndarray, *, locations_mm: np.ndarray, window_mm: float, mode: str = "max"
) -> np.ndarray:
    """Each slice's row replaced by the ``mode`` over the slices within ± ``window_mm`` / 2 of
    it (by (0020,0032)-derived location, so gaps and uneven spacing count right).

    ``probabilities`` is (slices, labels); a ``window_mm`` of 0 returns a copy.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    p = np.asarray(probabilities, dtype=np.float64)
    loc = np.asarray(locations_mm, dtype=np.float64)
    if p.shape[0] != loc.shape[0]:
        raise ValueError(f"{p.shape[0]} probability rows for {loc.shape[0]} locations")
    if window_mm <= 0 or p.shape[0] < 2:
        return p.copy()
    near = np.abs(loc[:, None] - loc[None, :]) <= window_mm / 2.0 + 1e-6  # (n, n), self incl.
    if mode == "max":
        return np.where(near[:, :, None], p[None, :, :], -np.inf).max(axis=1)
    return (near[:, :, None] * p[None, :, :]).sum(axis=1) / near.sum(axis=1)[:, None]
