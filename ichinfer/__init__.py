"""ichinfer: intracranial hemorrhage detection and localisation on head CT, on onnxruntime.

>>> import ichinfer
>>> result = ichinfer.classify("study_folder/")     # doctest: +SKIP
>>> result.probabilities["any"]                      # doctest: +SKIP

Not for clinical use. The heavy modules (onnxruntime, pydicom, opencv) load on first use, so
``import ichinfer`` stays fast; TensorFlow is never imported.
"""

from __future__ import annotations

import logging
from importlib import import_module
from typing import TYPE_CHECKING, Any

from ichinfer.errors import (
    IchInferError,
    InvalidInputError,
    MissingDependencyError,
    ModelIntegrityError,
    ModelNotFoundError,
    NotAnImageError,
    ProviderUnavailableError,
    SeriesOrderError,
    UnsupportedTransferSyntaxError,
)
from ichinfer.labels import LABELS

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

_LAZY = {
    "classify": "ichinfer.classification",
    "Classifier": "ichinfer.classification",
    "segment": "ichinfer.segmentation",
    "Segmenter": "ichinfer.segmentation",
    "scan": "ichinfer.dicom",
    "read_series": "ichinfer.dicom",
    "read_hu": "ichinfer.dicom",
    "blue_overlay": "ichinfer.overlay",
    "ClassificationResult": "ichinfer.results",
    "SegmentationResult": "ichinfer.results",
}

if TYPE_CHECKING:
    from ichinfer.classification import Classifier, classify
    from ichinfer.dicom import read_hu, read_series, scan
    from ichinfer.overlay import blue_overlay
    from ichinfer.results import ClassificationResult, SegmentationResult
    from ichinfer.segmentation import Segmenter, segment


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ichinfer' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "LABELS",
    "ClassificationResult",
    "Classifier",
    "IchInferError",
    "InvalidInputError",
    "MissingDependencyError",
    "ModelIntegrityError",
    "ModelNotFoundError",
    "NotAnImageError",
    "ProviderUnavailableError",
    "SegmentationResult",
    "Segmenter",
    "SeriesOrderError",
    "UnsupportedTransferSyntaxError",
    "blue_overlay",
    "classify",
    "read_hu",
    "read_series",
    "scan",
    "segment",
    "__version__",
]
