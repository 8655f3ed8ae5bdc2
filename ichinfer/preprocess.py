"""Preprocessing shared by training and runtime: the one definition of what a model sees.

Everything here is a small function over numpy arrays. The models take Hounsfield units and do
their own windowing inside the graph; :func:`window` is the numpy reference of that windowing
(used for pictures and tests).

The pipeline, for a series ordered head to foot with slice locations ``locations_mm``:

1. :func:`clean_hu` — padding and out-of-range values to air.
2. :func:`to_model_grid` — pad to a square with air, resize to the model's input size.
3. :func:`sample_indices` — which slices the models run on. Thick series (spacing at least
   ``0.8 * slab_mm``): every slice. Thin series: one slice every ``slab_mm / 2``, so a
   0.625 mm series of 238 slices costs about 60 inferences, not 238.
4. :func:`model_inputs` — for each sampled slice, the slab average of the slices within
   ``± slab_mm / 2`` of it (a thin series then looks like the usual 5 mm one; a thick series is
   left as it is), stacked with the slabs ``± slab_mm`` away (2.5-D context), head side first.
5. :func:`dense_prior` — the segmenter's extra channel: 50–90 HU inside the skull.
6. :func:`nearest_sampled` — each slice takes the output of the nearest sampled slice (the
   classifier's probabilities); :func:`between_sampled` — or the output interpolated between
   the two sampled slices around it (the segmenter's probability maps).
7. :func:`from_model_grid` — masks back onto the slice's own pixel grid.

Opencv's ``resize`` is used for resampling (STYLE.md puts opencv in the overlay module only;
a hand-written numpy resize would be slower and a second definition of the same thing).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

AIR_HU = -1024.0
MAX_HU = 3071.0
#: (center, width) in HU: brain, subdural, bone — the windows the bundled models use.
DEFAULT_WINDOWS: tuple[tuple[float, float], ...] = ((40.0, 80.0), (80.0, 200.0), (600.0, 2800.0))
BRAIN_WINDOW: tuple[float, float] = (40.0, 80.0)
#: Acute blood is about 50–90 HU.
DENSE_RANGE_HU: tuple[float, float] = (50.0, 90.0)
BONE_HU = 300.0


def clean_hu(hu: np.ndarray, *, copy: bool = True) -> np.ndarray:
    """Return float32 HU with anything below air (padding: -2000, -3024) set to -1024 and the
    top clipped at 3071. Raises ``ValueError`` when the array holds NaN or infinity.

    ``copy=False`` clips a float32 input in place (for arrays the caller has just made)."""
    out = np.asarray(hu, dtype=np.float32)
    if not np.isfinite(out).all():
        raise ValueError("pixel data holds NaN or infinite values")
    return np.clip(out, AIR_HU, MAX_HU, out=None if copy else out)


def window(hu: np.ndarray, center_hu: float, width_hu: float) -> np.ndarray:
    """Linear window to [0, 1]: ``(hu - (center - width/2)) / width``, clipped.

    The numpy reference of the windowing the models do in their graph.
    """
    low = center_hu - width_hu / 2.0
    return np.clip((np.asarray(hu, dtype=np.float32) - low) / width_hu, 0.0, 1.0)


def square_side(shape: tuple[int, int]) -> int:
    return max(int(shape[0]), int(shape[1]))


def to_model_grid(hu: np.ndarray, size: int, *, fill: float = AIR_HU) -> np.ndarray:
    """Pad a (rows, cols) image to a centred square with ``fill`` (air), resize to (size, size).

    Area interpolation when shrinking (it averages, which also lowers noise), linear when growing.
    Masks use ``fill=0`` and get fractions back, to threshold at 0.5.
    """
    img = np.asarray(hu, dtype=np.float32)
    rows, cols = img.shape
    side = square_side((rows, cols))
    if rows != cols:
        sq = np.full((side, side), fill, dtype=np.float32)
        r0, c0 = (side - rows) // 2, (side - cols) // 2
        sq[r0 : r0 + rows, c0 : c0 + cols] = img
        img = sq
    if side == size:
        return np.ascontiguousarray(img)
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interp)


def from_model_grid(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`to_model_grid` for a float map (e.g. probabilities): resize, then crop."""
    rows, cols = int(shape[0]), int(shape[1])
    side = square_side((rows, cols))
    img = np.asarray(values, dtype=np.float32)
    if img.shape[0] != side:
        img = cv2.resize(img, (side, side), interpolation=cv2.INTER_LINEAR)
    r0, c0 = (side - rows) // 2, (side - cols) // 2
    return img[r0 : r0 + rows, c0 : c0 + cols]


def is_thin(locations_mm: np.ndarray, slab_mm: float) -> bool:
    """True when the median step between slices is below 0.8 × ``slab_mm``."""
    loc = np.asarray(locations_mm, dtype=np.float64)
    if loc.size < 2:
        return False
    step = float(np.median(np.abs(np.diff(loc))))
    return step < 0.8 * slab_mm


def sample_indices(locations_mm: np.ndarray, slab_mm: float) -> np.ndarray:
    """Indices of the slices the models run on (see the module docstring)."""
    loc = np.asarray(locations_mm, dtype=np.float64)
    n = loc.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if not is_thin(loc, slab_mm):
        return np.arange(n, dtype=np.int64)
    stride = slab_mm / 2.0
    chosen = [0]
    for i in range(1, n):
        if abs(loc[i] - loc[chosen[-1]]) >= stride - 1e-6:
            chosen.append(i)
    if chosen[-1] != n - 1:
        chosen.append(n - 1)
    return np.asarray(chosen, dtype=np.int64)


def nearest_sampled(locations_mm: np.ndarray, sampled: np.ndarray) -> np.ndarray:
    """For every slice, the position in ``sampled`` of the nearest sampled slice."""
    loc = np.asarray(locations_mm, dtype=np.float64)
    sampled_loc = loc[np.asarray(sampled, dtype=np.int64)]
    return np.abs(loc[:, None] - sampled_loc[None, :]).argmin(axis=1)


def between_sampled(
    locations_mm: np.ndarray, sampled: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every slice, positions ``lo``, ``hi`` in ``sampled`` of the sampled slices around it
    and a weight ``w`` in [0, 1], so that its output is ``(1 - w) * out[lo] + w * out[hi]``:
    linear in slice location, the nearest sampled slice's beyond the ends (``lo == hi``)."""
    loc = np.asarray(locations_mm, dtype=np.float64)
    idx = np.asarray(sampled, dtype=np.int64)
    order = np.argsort(loc[idx], kind="stable")
    s_loc = loc[idx][order]
    right = np.clip(np.searchsorted(s_loc, loc, side="right"), 1, max(len(s_loc) - 1, 1))
    a, b = right - 1, np.minimum(right, len(s_loc) - 1)
    span = s_loc[b] - s_loc[a]
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(span > 0, (loc - s_loc[a]) / span, 0.0)
    w = np.clip(w, 0.0, 1.0)
    return order[a], order[b], w.astype(np.float32)


def _slab_members(loc: np.ndarray, centre_mm: float, slab_mm: float) -> np.ndarray:
    members = np.flatnonzero(np.abs(loc - centre_mm) <= slab_mm / 2.0 + 1e-3)
    if members.size == 0:
        members = np.array([int(np.abs(loc - centre_mm).argmin())])
    return members


def slab(
    grid_stack: np.ndarray, locations_mm: np.ndarray, centre_mm: float, slab_mm: float
) -> np.ndarray:
    """Mean of the slices within ± ``slab_mm`` / 2 of ``centre_mm`` (the nearest slice if none)."""
    loc = np.asarray(locations_mm, dtype=np.float64)
    members = _slab_members(loc, centre_mm, slab_mm)
    if members.size == 1:
        return grid_stack[int(members[0])]
    first, last = int(members[0]), int(members[-1])
    if last - first + 1 == members.size:  # consecutive (an ordered series): no copy to average
        return grid_stack[first : last + 1].mean(axis=0, dtype=np.float32)
    return grid_stack[members].mean(axis=0, dtype=np.float32)


def model_inputs(
    grid_stack: np.ndarray,
    locations_mm: np.ndarray,
    indices: Sequence[int] | np.ndarray,
    *,
    slab_mm: float,
    context: int,
    slabs: dict | None = None,
) -> np.ndarray:
    """Build (N, size, size, 2*context + 1) float32 HU inputs for the sampled ``indices``.

    ``grid_stack`` is (Z, size, size) on the model grid, ordered head to foot like
    ``locations_mm``. Channel ``context`` is the slab at the slice itself; channels before it are
    slabs ``k * slab_mm`` towards the head, after it towards the foot. Beyond the ends of the
    series the edge slab is repeated. A thick series (spacing ≥ 0.8 × slab) uses its neighbouring
    slices directly, whatever their spacing.

    ``slabs``: a dict that keeps the slabs built here for later calls on the same
    ``grid_stack`` and ``locations_mm`` (keyed by ``slab_mm`` and slice), so that the batches
    of a series and models of the same input size average each slab once
    (:class:`ichinfer.pipeline.PreparedSeries` holds one per grid size).
    """
    loc = np.asarray(locations_mm, dtype=np.float64)
    idx = np.asarray(indices, dtype=np.int64)
    n, size = len(idx), grid_stack.shape[-1]
    out = np.empty((n, size, size, 2 * context + 1), dtype=np.float32)
    if n == 0:
        return out
    thin = is_thin(loc, slab_mm)
    # head side has the larger location when ordered head -> foot (sign from the data itself)
    head_sign = 1.0 if loc.size < 2 or loc[0] >= loc[-1] else -1.0
    cache: dict = {} if slabs is None else slabs

    def slab_at(i: int) -> np.ndarray:
        if not thin:
            return grid_stack[i]
        key = (float(slab_mm), i)
        if key not in cache:
            cache[key] = slab(grid_stack, loc, loc[i], slab_mm)
        return cache[key]

    for row, i in enumerate(idx):
        for k in range(-context, context + 1):
            if k == 0:
                j = int(i)
            elif thin:
                target = loc[i] - k * head_sign * slab_mm
                j = int(np.abs(loc - target).argmin())
            else:
                j = int(np.clip(i + k, 0, loc.size - 1))
            out[row, :, :, k + context] = slab_at(j)
    return out


def inside_skull(hu: np.ndarray, bone_hu: float = BONE_HU) -> np.ndarray:
    """Pixels enclosed by bone (> ``bone_hu``) along both their row and their column, not bone.

    A cheap, vectorised stand-in for hole filling that works per slice and per batch
    (the last two axes are the image).
    """
    bone = np.asarray(hu) > bone_hu
    left = np.cumsum(bone, axis=-1) > 0
    right = np.flip(np.cumsum(np.flip(bone, axis=-1), axis=-1), axis=-1) > 0
    top = np.cumsum(bone, axis=-2) > 0
    bottom = np.flip(np.cumsum(np.flip(bone, axis=-2), axis=-2), axis=-2) > 0
    return left & right & top & bottom & ~bone


def dense_prior(hu: np.ndarray, dense_range_hu: tuple[float, float] = DENSE_RANGE_HU) -> np.ndarray:
    """The seed design's dense-area mask: ``low <= HU <= high`` inside the skull, as float32 0/1."""
    arr = np.asarray(hu, dtype=np.float32)
    dense = (arr >= dense_range_hu[0]) & (arr <= dense_range_hu[1])
    return (dense & inside_skull(arr)).astype(np.float32)


def with_prior(inputs: np.ndarray, context: int) -> np.ndarray:
    """Append :func:`dense_prior` of the centre slab as the last channel of ``inputs``."""
    prior = dense_prior(inputs[..., context])
    return np.concatenate([inputs, prior[..., None]], axis=-1)
