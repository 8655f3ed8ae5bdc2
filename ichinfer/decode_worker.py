"""What a decode worker runs: one DICOM file to clean HU on each model grid.

Kept apart from :mod:`ichinfer.pipeline` so that worker processes (and the fork server they come
from) import pydicom, numpy and OpenCV only, never onnxruntime: the workers' pickled task names
this module, and importing it is all they do.
"""

from __future__ import annotations

import mmap
from collections.abc import Sequence

import numpy as np

from ichinfer import dicom
from ichinfer.preprocess import to_model_grid


def decode_file(path: str, sizes: Sequence[int]) -> list[np.ndarray]:
    """One single-frame DICOM file to clean HU, then onto each grid size (decode threads and
    worker processes both call it)."""
    hu = dicom.read_hu(path)
    return [to_model_grid(hu, s) for s in sizes]



def decode_into(files: dict[int, str], n: int, start: int, paths: Sequence[str]) -> None:
    """:func:`decode_file` on consecutive slices from ``start``, each written into its row of
    the stacks of ``n`` slices that ``files`` hold (float32, one file per grid size), which
    the process that asked maps too: nothing is sent back."""
    stacks = {}
    for s, name in files.items():
        with open(name, "r+b") as f:
            stacks[s] = np.frombuffer(mmap.mmap(f.fileno(), n * s * s * 4), dtype=np.float32)
    sizes = list(files)
    for i, path in enumerate(paths, start):
        for s, g in zip(sizes, decode_file(path, sizes), strict=True):
            stacks[s].reshape(n, s, s)[i] = g
