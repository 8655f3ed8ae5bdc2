"""The exceptions ichinfer raises.

Every error derives from :class:`IchInferError` and also from the matching built-in, so callers
can catch either. Messages name the file (never a patient identifier) and the reason.
"""

from __future__ import annotations


class IchInferError(Exception):
    """Base class of every error raised by ichinfer."""


class InvalidInputError(IchInferError, ValueError):
    """An input file or folder cannot be used: unreadable, not CT, no pixels, bad geometry."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.reason = message


class NotDicomError(InvalidInputError):
    """A file that is neither DICOM (no "DICM" preamble, no parseable data set) nor NIfTI."""


class NotAnImageError(InvalidInputError):
    """A readable DICOM file that holds no CT image (SR, dose report, presentation state, ...)."""


class UnsupportedTransferSyntaxError(InvalidInputError):
    """The pixel data is compressed with a transfer syntax no installed decoder handles."""


class SeriesOrderError(InvalidInputError):
    """The slices of a series cannot be ordered safely (duplicate positions, mixed orientations)."""


class ModelNotFoundError(IchInferError, FileNotFoundError):
    """A model file, or the folder that should hold it, does not exist."""


class ModelIntegrityError(IchInferError, ValueError):
    """A model's sha256 or metadata does not match what the runtime expects."""


class ProviderUnavailableError(IchInferError, RuntimeError):
    """The requested onnxruntime execution provider is not available on this machine."""


class MissingDependencyError(IchInferError, ImportError):
    """An optional feature needs a package that is not installed (the message names the extra)."""
