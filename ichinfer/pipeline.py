"""What classification and segmentation share: inputs to scans, scans to model grids, batches.

:func:`scan_inputs` turns what the user passed into series (via :mod:`ichinfer.dicom`);
:class:`PreparedSeries` decodes a series once onto the model grid(s) it is asked for, so a
classifier and a segmenter of the same input size share one decode; :func:`run_batched` feeds
a session in batches without holding more than a batch of inputs at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ichinfer import dicom
from ichinfer.errors import InvalidInputError
from ichinfer.preprocess import model_inputs, to_model_grid, with_prior
from ichinfer.results import Failure
from ichinfer.runtime import Session

PathInput = str | os.PathLike | Sequence[str | os.PathLike]


def scan_inputs(paths: PathInput, *, on_error: str) -> dicom.ScanResult:
    if on_error not in ("raise", "collect"):
        raise ValueError(f"on_error must be 'raise' or 'collect', not {on_error!r}")
    result = dicom.scan(paths, on_error=on_error)  # type: ignore[arg-type]
    if not result.series and not result.failures and on_error == "raise":
        raise InvalidInputError("no CT images found", path=_describe(paths))
    return result


def _describe(paths: PathInput) -> str:
    if isinstance(paths, (str, os.PathLike)):
        return str(paths)
    items = [str(p) for p in paths]
    return items[0] if len(items) == 1 else f"{len(items)} paths"


def failures_of(items: Iterable[dicom.InputFailure]) -> list[Failure]:
    return [Failure(path=f.path, reason=f.reason, kind=f.kind) for f in items]


def series_failure(series: dicom.Series, err: Exception) -> Failure:
    """A failure record for a whole series, named by its folder (or its UID)."""
    where = str(os.path.dirname(series.slices[0].path)) if series.slices else series.series_uid
    return Failure(path=where, reason=str(err), kind=type(err).__name__)


@dataclass
class PreparedSeries:
    """A series and its slices on the model grid(s), decoded once."""

    series: dicom.Series
    grids: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def locations_mm(self) -> np.ndarray:
        return self.series.locations_mm

    def grid(self, size: int) -> np.ndarray:
        if size not in self.grids:
            self.decode([size])
        return self.grids[size]

    def decode(self, sizes: Sequence[int]) -> None:
        """Read every slice once and put it on each grid size in ``sizes`` not done yet."""
        todo = [s for s in dict.fromkeys(sizes) if s not in self.grids]
        if not todo:
            return
        n = len(self.series.slices)
        stacks = {s: np.empty((n, s, s), dtype=np.float32) for s in todo}
        for i, hu in enumerate(self.series.iter_hu()):  # already clean HU
            for s in todo:
                stacks[s][i] = to_model_grid(hu, s)
        self.grids.update(stacks)


def run_batched(
    session: Session,
    prepared: PreparedSeries,
    indices: np.ndarray,
    *,
    batch_size: int,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Build model inputs for ``indices`` batch by batch and run them; outputs concatenated."""
    spec = session.spec
    grid = prepared.grid(spec.input_size[0])
    outputs = []
    for start in range(0, len(indices), batch_size):
        batch = indices[start : start + batch_size]
        x = model_inputs(grid, prepared.locations_mm, batch, slab_mm=spec.slab_mm,
                         context=spec.context)
        if spec.prior:
            x = with_prior(x, spec.context)
        y = session.run(x)
        outputs.append(transform(y) if transform else y)
    if not outputs:
        return np.zeros((0,), dtype=np.float32)
    return np.concatenate(outputs, axis=0)


def slice_extents_mm(locations_mm: np.ndarray, fallback_mm: float | None) -> np.ndarray:
    """The length of series each slice stands for: between the midpoints to its neighbours.

    Uses positions, not (0018,0050) SliceThickness, so gaps and overlaps count right; an end
    slice gets the step to its one neighbour; a single slice gets ``fallback_mm`` (NaN if None).
    """
    loc = np.asarray(locations_mm, dtype=np.float64)
    n = loc.size
    if n == 1:
        return np.array([fallback_mm if fallback_mm else np.nan])
    gaps = np.abs(np.diff(loc))
    ext = np.empty(n)
    ext[1:-1] = (gaps[:-1] + gaps[1:]) / 2.0
    ext[0], ext[-1] = gaps[0], gaps[-1]
    return ext
