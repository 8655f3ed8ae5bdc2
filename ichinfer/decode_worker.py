"""What a decode worker runs: one DICOM file to clean HU on each model grid.

Kept apart from :mod:`ichinfer.pipeline` so that worker processes (and the fork server they come
from) import pydicom, numpy and OpenCV only, never onnxruntime: the workers' pickled task names
this module, and importing it is all they do.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ichinfer import dicom
from ichinfer.preprocess import to_model_grid


def decode_file(path: str, sizes: Sequence[int]) -> list[np.ndarray]:
    """One single-frame DICOM file to clean HU, then onto each grid size (decode threads and
    worker processes both call it)."""
    hu = dicom.read_hu(path)
    return [to_model_grid(hu, s) for s in sizes]
