"""Read head-CT DICOM files into Hounsfield units and ordered series.

The only module of ichinfer that imports pydicom. Headers are read with
``stop_before_pixels=True`` (fast); pixels are decoded only by :func:`read_hu`,
:func:`read_slice_hu` / :meth:`Series.load_hu` (uncompressed pixels of a scanned slice read
straight from the file, :class:`NativePixels`). NIfTI files found by :func:`scan` are handed to
:mod:`ichinfer.nifti`.

Conventions every caller can rely on:

* HU arrays are float32 ``(rows, columns)``, padding and anything below -1024 set to -1024 (air),
  the top clipped at 3071.
* A :class:`Series` lists its slices head -> foot (superior first); ``location_mm`` is the
  (0020,0032) Image Position (Patient) projected on the slice normal
  n = row cosines x column cosines of (0020,0037) Image Orientation (Patient).
* Messages name files, slice indices and UIDs, never a patient identifier.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import struct
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Literal, NamedTuple

import numpy as np
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, get_decoder
from pydicom.pixels import pixel_array as _decode_pixels
from pydicom.pixels.utils import as_pixel_options
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, JPEGLossless, JPEGLosslessSV1

from ichinfer.errors import (
    IchInferError,
    InvalidInputError,
    NotAnImageError,
    NotDicomError,
    SeriesOrderError,
    UnsupportedTransferSyntaxError,
)
from ichinfer.preprocess import AIR_HU, MAX_HU, clean_hu

__all__ = [
    "HU_AIR",
    "HU_MAX",
    "HeaderRead",
    "InputFailure",
    "ScanResult",
    "Series",
    "SliceInfo",
    "candidates",
    "clean_hu",
    "group_headers",
    "is_wrapped_12bit",
    "order_slices",
    "read_header",
    "read_hu",
    "read_series",
    "read_slice_hu",
    "scan",
    "slice_normal",
    "stored_to_hu",
]

logger = logging.getLogger(__name__)

HU_AIR = AIR_HU
"""Air; also the value given to padding and to anything rescaled below it."""
HU_MAX = MAX_HU
"""Top of the 12-bit CT range; brighter values (metal) are clipped here."""
SAME_POSITION_MM = 0.01
"""Two different images closer than this along the normal are duplicates."""
GAP_FACTOR = 1.5
"""A step larger than this times the median step is reported as a gap."""
MIN_SIDE = 16
"""Smallest (0028,0010) Rows / (0028,0011) Columns accepted: smaller is not a head CT slice."""
MAX_SIDE = 4096
"""Largest Rows / Columns accepted (bounds the memory one slice can take)."""
ORIENTATION_TOLERANCE = 1e-3
"""Largest per-cosine difference for two (0020,0037) values to count as the same orientation."""

CT_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
        "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image Storage
        "1.2.840.10008.5.1.4.1.1.2.2",  # Legacy Converted Enhanced CT Image Storage
    }
)
_NON_IMAGE_SOP_PREFIXES = (
    "1.2.840.10008.5.1.4.1.1.88.",  # structured reports, radiation dose SR, key objects
    "1.2.840.10008.5.1.4.1.1.11.",  # presentation states
    "1.2.840.10008.5.1.4.1.1.104.",  # encapsulated PDF / CDA / STL
    "1.2.840.10008.5.1.4.1.1.66",  # raw data, registration, segmentation, surfaces
    "1.2.840.10008.5.1.4.1.1.481.",  # radiotherapy objects
    "1.2.840.10008.5.1.4.1.1.9.",  # waveforms
    "1.2.840.10008.5.1.4.1.1.7",  # secondary capture: screenshots, dose sheets
    "1.2.840.10008.1.3.10",  # DICOMDIR (Media Storage Directory)
)
_NON_IMAGE_MODALITIES = frozenset(
    {"SR", "PR", "KO", "DOC", "REG", "SEG", "RTSTRUCT", "RTPLAN", "RTRECORD", "FID", "PLAN"}
)
_LOCALIZER_TYPES = frozenset({"LOCALIZER", "SCOUT", "TOPOGRAM"})
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_PIXEL_TAGS = {(0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009)}
_LONG_LENGTH_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN", b"SQ", b"UT", b"UC", b"UR"}
_QUOTED = re.compile(r"[bB]?'[^'\n]*'|\"[^\"\n]*\"")
_UID_TEXT = re.compile(r"[0-9A-Za-z._-]{1,64}")
_CODE_TEXT = re.compile(r"[A-Z0-9 _]{0,16}")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_NIFTI_SUFFIXES = (".nii", ".nii.gz")
_DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
"""Files named like this that are not DICOM are failures, not skipped."""


# --------------------------------------------------------------------------------------------
# Public data classes


@dataclass(frozen=True)
class NativePixels:
    """Where an uncompressed single-frame image keeps its stored values, and how they become
    HU, as its header scan found them: :func:`read_slice_hu` then reads them with one
    ``numpy.fromfile`` instead of parsing the file again (0.2-0.3 ms against 0.7-1.0 ms a
    512 x 512 slice, ``benchmarks/README.md``). ``size`` and ``mtime_ns`` are the file's as
    scanned: a file changed since is read the full way, :func:`read_hu`."""

    offset: int
    dtype: str
    shift: int
    params: _PixelParams
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class EncodedPixels:
    """Where a compressed single-frame image keeps its encapsulated pixel data, and how it
    becomes HU, as its header scan found them: :func:`read_slice_hu` then reads those bytes and
    hands them to pydicom's decoder with the options the header gave, instead of parsing the
    file again (a CQ500 JPEG Lossless slice: ``benchmarks/README.md``). ``size`` and
    ``mtime_ns`` are the file's as scanned: a file changed since is read the full way."""

    offset: int
    length: int
    transfer_syntax: str
    options: dict[str, Any]
    params: _PixelParams
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class SliceInfo:
    """Header-only description of one 2-D image (a file, or a frame of a multi-frame file)."""

    path: str
    frame: int | None
    sop_instance_uid: str
    instance_number: int | None
    position_mm: tuple[float, float, float] | None
    pixel_spacing_mm: tuple[float, float]
    rows: int
    columns: int
    slice_thickness_mm: float | None
    location_mm: float = 0.0
    native: NativePixels | None = field(default=None, repr=False, compare=False)
    encoded: EncodedPixels | None = field(default=None, repr=False, compare=False)


@dataclass
class Series:
    """One series: its slices ordered head -> foot, geometry, and what was odd about it."""

    study_uid: str
    series_uid: str
    slices: list[SliceInfo]
    orientation: tuple[float, ...] | None
    spacing_mm: float | None
    warnings: list[str] = field(default_factory=list)
    source: str = "dicom"

    def __len__(self) -> int:
        return len(self.slices)

    @property
    def locations_mm(self) -> np.ndarray:
        """``location_mm`` of every slice, float64, in slice order."""
        return np.array([s.location_mm for s in self.slices], dtype=np.float64)

    def load_hu(self, index: int) -> np.ndarray:
        """Decode slice ``index`` (in series order) to float32 HU ``(rows, columns)``, already
        cleaned (:func:`ichinfer.preprocess.clean_hu`: padding to air, top clipped)."""
        info = self.slices[index]
        if self.source == "nifti":
            from ichinfer import nifti

            return nifti.load_slice_hu(info.path, _frame_of(info))
        return read_slice_hu(info)

    def iter_hu(self) -> Iterator[np.ndarray]:
        """Yield the HU image of every slice in series order.

        A NIfTI volume is read once; a multi-frame DICOM file is parsed once per run of its
        frames, not once per frame.
        """
        if self.source == "nifti":
            from ichinfer import nifti

            if self.slices:
                frames = [_frame_of(s) for s in self.slices]
                yield from nifti.iter_slices_hu(self.slices[0].path, frames)
            return
        cached: tuple[str, Dataset] | None = None
        for info in self.slices:
            if info.frame is None:
                yield read_slice_hu(info)
                continue
            with _reading(info.path):
                if cached is None or cached[0] != info.path:
                    cached = (info.path, _read_image_dataset(info.path))
                hu = _hu_from_dataset(cached[1], info.path, info.frame)
            yield hu


@dataclass
class InputFailure:
    """A file (or series) that could not be used, or was skipped, and why."""

    path: str
    reason: str
    kind: str


@dataclass
class ScanResult:
    """What :func:`scan` found: usable series, failures, and files skipped with a note."""

    series: list[Series]
    failures: list[InputFailure] = field(default_factory=list)
    skipped: list[InputFailure] = field(default_factory=list)


def _frame_of(info: SliceInfo) -> int:
    if info.frame is None:
        raise InvalidInputError("NIfTI slice without a frame index", path=info.path)
    return info.frame


def _redact(message: object) -> str:
    """A third-party message with its quoted values removed.

    pydicom quotes element values in its messages (``Invalid value for VR PN: 'Doe^John'``);
    any of them may be a patient identifier, so none is passed on.
    """
    return _QUOTED.sub("'…'", str(message))


@contextmanager
def _reading(path: str) -> Iterator[None]:
    """Guard one file's read: pydicom's warnings become debug lines naming the file, and an
    error pydicom raises late (a malformed value met when it is first used) an
    :class:`InvalidInputError` naming the file; ichinfer's own errors pass unchanged."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except IchInferError:
            raise
        except (MemoryError, RecursionError, ValueError, TypeError, KeyError, IndexError,
                AttributeError, LookupError, ArithmeticError, NotImplementedError, OSError,
                struct.error, EOFError) as err:
            raise InvalidInputError(
                f"malformed DICOM: {type(err).__name__}: {_redact(err)}", path=path
            ) from err
        finally:
            for w in caught:
                logger.debug("%s: pydicom: %s", path, _redact(w.message))


# --------------------------------------------------------------------------------------------
# Pure pixel functions


def is_wrapped_12bit(bits_stored: int, pixel_representation: int, intercept: float) -> bool:
    """Whether the RSNA 12-bit wrap quirk applies.

    (0028,0101) Bits Stored 12, (0028,0103) Pixel Representation 0 (unsigned) and
    (0028,1052) Rescale Intercept above -100: the scanner stored HU modulo 4096, so air
    shows up near 3072 instead of 0.
    """
    return bits_stored == 12 and pixel_representation == 0 and intercept > -100


def stored_to_hu(
    stored: np.ndarray,
    *,
    slope: float = 1.0,
    intercept: float = 0.0,
    bits_stored: int = 16,
    pixel_representation: int = 1,
    padding: tuple[float, float] | None = None,
) -> np.ndarray:
    """Convert stored pixel values to cleaned float32 HU.

    HU = stored * (0028,1053) Rescale Slope + (0028,1052) Rescale Intercept. Values in the
    inclusive ``padding`` range ((0028,0120) Pixel Padding Value .. (0028,0121) Pixel Padding
    Range Limit, stored units) become -1024; see :func:`clean_hu` for the clipping.
    The RSNA 12-bit wrap (:func:`is_wrapped_12bit`) is undone first, as in the widely used
    Kaggle fix: ``px += 1000; px[px >= 4096] -= 4096; intercept = -1000``.
    """
    px = np.asarray(stored)
    if px.dtype.kind == "f" and not np.isfinite(px).all():
        raise ValueError("pixel data holds NaN or infinite values")
    wrapped = is_wrapped_12bit(bits_stored, pixel_representation, intercept)
    pad_mask = None
    if padding is not None:
        low, high = sorted(padding)
        # padding whose HU is at most air anyway is set to air by clean_hu's clip below: the
        # same values without the mask (the usual -2000 or -3024 under a -1024 intercept)
        if wrapped or slope <= 0 or _hu_float32(high, slope, intercept) > HU_AIR:
            pad_mask = _in_range(px, low, high)
    if wrapped:
        px = px.astype(np.int32) + 1000
        px[px >= 4096] -= 4096
        intercept = -1000.0
    # float32 throughout: stored values are integers (exact), and the model takes float32
    hu = px.astype(np.float32)
    if slope != 1.0:
        hu *= np.float32(slope)
    if intercept != 0.0:
        hu += np.float32(intercept)
    if pad_mask is not None:
        hu[pad_mask] = HU_AIR
    return clean_hu(hu, copy=False)


def _hu_float32(value: float, slope: float, intercept: float) -> float:
    """The HU that :func:`stored_to_hu` computes for stored ``value``, in the same float32
    steps (for a positive slope both steps are monotonic, so every value at or below
    ``value`` gives at most this)."""
    hu = np.float32(value)
    if slope != 1.0:
        hu = hu * np.float32(slope)
    if intercept != 0.0:
        hu = hu + np.float32(intercept)
    return float(hu)


def _in_range(px: np.ndarray, low: float, high: float) -> np.ndarray:
    """``low <= px <= high``, compared in ``px``'s own integer type where it has one (the
    float bounds would otherwise widen every sample to float64 first)."""
    if px.dtype.kind in "iu":
        info = np.iinfo(px.dtype)
        lo, hi = max(math.ceil(low), info.min), min(math.floor(high), info.max)
        if lo > hi:
            return np.zeros(px.shape, dtype=bool)
        return (px >= px.dtype.type(lo)) & (px <= px.dtype.type(hi))
    return (px >= low) & (px <= high)


# --------------------------------------------------------------------------------------------
# Reading single values robustly


_RAW_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "SH", "TM", "UI"})
_RAW_INT_VRS = {"US": "H", "SS": "h", "UL": "I", "SL": "i"}


@functools.cache
def _tag_and_vr(keyword: str) -> tuple[int | None, str | None]:
    """A dictionary keyword's tag, and its VR where :func:`_raw_text` can read it (None for
    other VRs and where the dictionary gives a choice, as "US or SS")."""
    tag = pydicom.datadict.tag_for_keyword(keyword)
    vr = pydicom.datadict.dictionary_VR(tag) if tag is not None else None
    return tag, vr if vr in _RAW_TEXT_VRS or vr in _RAW_INT_VRS else None


def _raw_text(raw: Any, vr: str) -> str | None:
    """An element pydicom has not converted yet, as :func:`_text` gives it, from its bytes:
    strings decoded, binary integers unpacked; None where only pydicom can say."""
    value = raw.value
    if not isinstance(value, bytes) or raw.VR not in (None, vr):
        return None
    if vr in _RAW_TEXT_VRS:
        return value.decode("latin-1", errors="replace")
    code = _RAW_INT_VRS[vr]
    size = struct.calcsize(code)
    if len(value) % size:
        return None
    ints = struct.unpack(("<" if raw.is_little_endian else ">") + code * (len(value) // size),
                         value)
    return "\\".join(str(v) for v in ints)


def _text(ds: Dataset, keyword: str) -> str | None:
    """The element ``keyword`` of ``ds`` as text, tolerant of malformed values.

    A header element not converted yet is read from its bytes where its VR allows
    (:func:`_raw_text`): pydicom's conversion, with a validation that a number read here does
    not need, took a third of a header read (CQ500: 0.96-1.08 ms a file, 0.62 ms without)."""
    tag, vr = _tag_and_vr(keyword)
    if tag is not None and vr is not None:
        raw = ds.get_item(tag, keep_deferred=True)
        if raw is None:
            return None
        if isinstance(raw, RawDataElement):
            text = _raw_text(raw, vr)
            if text is not None:
                return text
    if keyword not in ds:
        return None
    try:
        value: Any = ds[keyword].value
    except Exception:  # noqa: BLE001 - malformed value: fall back to the raw bytes
        tag = pydicom.datadict.tag_for_keyword(keyword)
        try:
            raw = ds.get_item(tag, keep_deferred=True) if tag is not None else None
        except Exception:  # noqa: BLE001 - nothing usable in this element
            raw = None
        value = getattr(raw, "value", None)
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("latin-1", errors="replace")
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, Iterable):
        return "\\".join(str(v) for v in value)
    return str(value)


def _floats(ds: Dataset, keyword: str) -> list[float]:
    """Every number in a (possibly multi-valued, oddly formatted) element; [] when absent."""
    text = _text(ds, keyword)
    if not text:
        return []
    values = [float(m) for m in _NUMBER.findall(text.replace(",", "."))]
    return [v for v in values if math.isfinite(v)]


def _float(ds: Dataset, keyword: str) -> float | None:
    """The first number of an element, or None."""
    values = _floats(ds, keyword)
    return values[0] if values else None


def _int(ds: Dataset, keyword: str) -> int | None:
    value = _float(ds, keyword)
    return None if value is None else int(round(value))


def _strings(ds: Dataset, keyword: str) -> list[str]:
    text = _text(ds, keyword)
    return [t.strip().upper() for t in text.split("\\")] if text else []


def _uid(ds: Dataset, keyword: str) -> str:
    """A UID-like value (digits, letters, ``._-``, at most 64), else "" (absent or malformed).

    A damaged length field can make a value run into its neighbours (a patient's name among
    them), so anything else is never passed on into names, messages or results.
    """
    text = _text(ds, keyword)
    value = text.strip().strip("\x00").strip() if text else ""
    return value if _UID_TEXT.fullmatch(value) else ""


def _code(ds: Dataset, keyword: str) -> str | None:
    """A code string (CS) upper-cased: "" when absent, None when malformed (see :func:`_uid`)."""
    text = _text(ds, keyword)
    value = text.strip().strip("\x00").strip().upper() if text else ""
    return value if _CODE_TEXT.fullmatch(value) else None


def _vector(ds: Dataset | None, keyword: str, n: int) -> tuple[float, ...] | None:
    if ds is None:
        return None
    values = _floats(ds, keyword)
    return tuple(values) if len(values) == n else None


# --------------------------------------------------------------------------------------------
# Reading files


def _looks_like_raw_dataset(head: bytes) -> bool:
    """Whether a file without the "DICM" preamble may still start with a DICOM data set."""
    if len(head) < 8:
        return False
    group_le = struct.unpack("<H", head[:2])[0]
    group_be = struct.unpack(">H", head[:2])[0]
    return 0x0002 <= group_le <= 0x0010 or group_be == 0x0008


class _PixelsAt(NamedTuple):
    """Where a (7FE0,0010) Pixel Data's value starts, in the file as it was read; for
    encapsulated data also its length up to its Sequence Delimitation Item."""

    offset: int
    size: int
    mtime_ns: int
    encapsulated_length: int | None = None


def _read_dataset(
    path: str, *, stop_before_pixels: bool
) -> tuple[Dataset, bool | None, _PixelsAt | None]:
    """Read ``path``; return the data set, whether (7FE0,0010) Pixel Data follows it, and
    where the value of a native (not encapsulated) Pixel Data starts in the file.

    The second value is None when it could not be checked (deflated files) and is always
    True for a full read that found pixel data; the third is known only after a
    ``stop_before_pixels`` read, with the file's size and mtime taken before reading it.
    """
    at = None
    try:
        with open(path, "rb") as fp:
            st = os.fstat(fp.fileno())
            size = st.st_size
            head = fp.read(132)
            fp.seek(0)
            preamble = head[128:132] == b"DICM"
            if size == 0:
                raise NotDicomError("empty file (0 bytes)", path=path)
            if not preamble and not _looks_like_raw_dataset(head):
                raise NotDicomError("not a DICOM file (no 'DICM' preamble)", path=path)
            ds = pydicom.dcmread(fp, stop_before_pixels=stop_before_pixels, force=True)
            if stop_before_pixels:
                has_pixels, offset, encapsulated = _pixel_element_follows(fp, ds, size, path)
                if offset is not None:
                    at = _PixelsAt(offset, size, st.st_mtime_ns, encapsulated)
            else:
                has_pixels = any(k in ds for k in _PIXEL_KEYWORDS)
    except IchInferError:
        raise
    except OSError as err:
        raise InvalidInputError(f"cannot read file: {err.strerror or err}", path=path) from err
    except Exception as err:  # noqa: BLE001 - any pydicom parse failure means a corrupt file
        raise InvalidInputError(
            f"unreadable or truncated DICOM: {type(err).__name__}: {_redact(err)}", path=path
        ) from err
    if len(ds) == 0:
        raise InvalidInputError("empty or truncated DICOM data set", path=path)
    if not preamble and not any(k in ds for k in ("SOPClassUID", "Modality", "Rows")):
        raise NotDicomError("not a DICOM file (no recognisable data set)", path=path)
    _ensure_transfer_syntax(ds)
    return ds, has_pixels, at


def _ensure_transfer_syntax(ds: Dataset) -> None:
    """Give a raw data set (no file meta) the (0002,0010) Transfer Syntax it was read with."""
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        return
    implicit, little = ds.original_encoding
    if implicit is None:
        return
    if meta is None:
        ds.file_meta = pydicom.dataset.FileMetaDataset()
    if implicit:
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    elif little:
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    else:
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRBigEndian


def _pixel_element_follows(
    fp: Any, ds: Dataset, size: int, path: str
) -> tuple[bool | None, int | None, int | None]:
    """After a ``stop_before_pixels`` read: is the next element Pixel Data, and is it whole?
    Also where the value of a (7FE0,0010) Pixel Data starts (None for other data) and, where
    it is encapsulated, its length up to the Sequence Delimitation Item (else None).

    Native data must hold the bytes that (0028,0010) Rows x (0028,0011) Columns x
    (0028,0008) Number of Frames promise; encapsulated data must end with its Sequence
    Delimitation Item and hold at least one fragment per frame. Only lengths are read.
    """
    if _transfer_syntax(ds) == DeflatedExplicitVRLittleEndian:
        return None, None, None
    start = fp.tell()
    header = fp.read(12)
    if len(header) < 8:
        return False, None, None
    implicit, little = ds.original_encoding
    endian = "<" if little in (True, None) else ">"
    group, element = struct.unpack(endian + "HH", header[:4])
    if (group, element) not in _PIXEL_TAGS:
        return False, None, None
    if implicit:
        length, value_start = struct.unpack(endian + "I", header[4:8])[0], start + 8
    elif header[4:6] in _LONG_LENGTH_VRS and len(header) >= 12:
        length, value_start = struct.unpack(endian + "I", header[8:12])[0], start + 12
    else:
        length, value_start = struct.unpack(endian + "H", header[6:8])[0], start + 8
    frames = _number_of_frames(ds)
    if length == 0xFFFFFFFF:
        fragments, end = _count_fragments(fp, value_start, size, endian, path)
        if fragments < frames:
            raise InvalidInputError(
                f"encapsulated Pixel Data holds {fragments} fragments for {frames} frames",
                path=path,
            )
        if (group, element) != (0x7FE0, 0x0010):
            return True, None, None
        return True, value_start, end - value_start
    if value_start + length > size:
        raise InvalidInputError(
            f"truncated: (7FE0,0010) Pixel Data declares {length} bytes, "
            f"the file holds {max(size - value_start, 0)}",
            path=path,
        )
    rows, columns = _int(ds, "Rows") or 0, _int(ds, "Columns") or 0
    bits = 32 if (group, element) == (0x7FE0, 0x0008) else _int(ds, "BitsAllocated") or 16
    if (group, element) == (0x7FE0, 0x0009):
        bits = 64
    needed = (rows * columns * frames * max(bits, 1) + 7) // 8  # greyscale: 1 sample
    if needed > length:
        raise InvalidInputError(
            f"(7FE0,0010) Pixel Data holds {length} bytes, {frames} frame(s) of "
            f"{rows}x{columns} pixels at {bits} bits need {needed}",
            path=path,
        )
    return True, value_start if (group, element) == (0x7FE0, 0x0010) else None, None


def _count_fragments(fp: Any, offset: int, size: int, endian: str,
                     path: str) -> tuple[int, int]:
    """Fragments of encapsulated pixel data (items after the offset table), and where its
    Sequence Delimitation Item starts; raises if cut."""
    items = 0
    while True:
        fp.seek(offset)
        head = fp.read(8)
        if len(head) < 8:
            raise InvalidInputError(
                "truncated: encapsulated (7FE0,0010) Pixel Data ends without its "
                "Sequence Delimitation Item",
                path=path,
            )
        group, element, length = struct.unpack(endian + "HHI", head)
        if (group, element) == (0xFFFE, 0xE0DD):
            return max(items - 1, 0), offset
        if (group, element) != (0xFFFE, 0xE000) or length == 0xFFFFFFFF:
            raise InvalidInputError(
                f"malformed encapsulated Pixel Data: item tag ({group:04X},{element:04X}) "
                f"at byte {offset}",
                path=path,
            )
        offset += 8 + length
        if offset > size:
            raise InvalidInputError(
                f"truncated: encapsulated Pixel Data fragment {items} runs past the end of "
                f"the file ({size} bytes)",
                path=path,
            )
        items += 1


def _transfer_syntax(ds: Dataset) -> UID | None:
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        return None
    value = _uid(meta, "TransferSyntaxUID")
    return UID(value) if value else None


def _check_decoder(ds: Dataset, path: str) -> None:
    """Raise UnsupportedTransferSyntaxError when no installed plugin decodes the pixel data."""
    _register_plugins()
    ts = _transfer_syntax(ds)
    if ts is None:
        raise InvalidInputError("no (0002,0010) Transfer Syntax UID", path=path)
    name = f"{ts.name} ({ts})" if ts.name != str(ts) else str(ts)
    try:
        decoder = get_decoder(ts)
    except NotImplementedError as err:
        raise UnsupportedTransferSyntaxError(
            f"transfer syntax {name} is not supported: no decoder exists", path=path
        ) from err
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies)
        raise UnsupportedTransferSyntaxError(
            f"transfer syntax {name} needs a decoder plugin that is not installed ({missing})",
            path=path,
        )


#: the JPEG Lossless decoders, fastest first: ``imagecodecs`` (libjpeg-turbo; the
#: ``[imagecodecs]`` extra), ``gdcm`` (the ``[gdcm]`` extra) and ``pylibjpeg`` (always
#: installed). The first one installed decodes, unless ICHINFER_JPEG_LOSSLESS_DECODER names
#: another; both extras gave pylibjpeg's pixels on every CQ500 slice.
JPEG_LOSSLESS_DECODER_ENV = "ICHINFER_JPEG_LOSSLESS_DECODER"
JPEG_LOSSLESS_DECODERS = ("imagecodecs", "gdcm", "pylibjpeg")
_JPEG_LOSSLESS = frozenset({JPEGLossless, JPEGLosslessSV1})
_IMAGECODECS_PLUGIN = ("ichinfer.imagecodecs_decoder", "decode_frame")


@functools.cache
def _register_plugins() -> None:
    """Add ichinfer's imagecodecs plugin to pydicom's JPEG Lossless decoders (once; pydicom's
    ``add_plugin`` is not thread-safe, and this runs before any decoder is looked at)."""
    for ts in sorted(_JPEG_LOSSLESS):
        try:
            get_decoder(ts).add_plugin("imagecodecs", _IMAGECODECS_PLUGIN)
        except ValueError:  # already there (a pydicom with its own plugin of that name keeps it)
            pass


@functools.cache
def installed_plugins(ts: UID | None) -> tuple[str, ...]:
    """The pydicom decoding plugins installed for transfer syntax ``ts`` (none if unknown)."""
    _register_plugins()
    try:
        return tuple(get_decoder(ts).available_plugins) if ts is not None else ()
    except NotImplementedError:
        return ()


def gdcm_installed() -> bool:
    """Whether the ``[gdcm]`` extra (python-gdcm) is there to decode JPEG Lossless."""
    return "gdcm" in installed_plugins(JPEGLosslessSV1)


def imagecodecs_installed() -> bool:
    """Whether the ``[imagecodecs]`` extra is there to decode JPEG Lossless (libjpeg-turbo)."""
    return "imagecodecs" in installed_plugins(JPEGLosslessSV1)


def decoding_plugins(ts: UID | None) -> tuple[str, ...]:
    """The pydicom decoding plugins tried for ``ts``, in order (``""``: pydicom's own choice).

    JPEG Lossless: the installed ones of :data:`JPEG_LOSSLESS_DECODERS` in that order, or the
    one ``ICHINFER_JPEG_LOSSLESS_DECODER`` names first. Any other syntax stays with pylibjpeg
    even when GDCM is installed (pydicom alone would try GDCM first): the extras are checked
    against pylibjpeg here on JPEG Lossless only, so elsewhere the decoder the tests cover
    keeps the job, falling back to pydicom's choice only if pylibjpeg fails."""
    installed = installed_plugins(ts)
    if ts in _JPEG_LOSSLESS:
        first = os.environ.get(JPEG_LOSSLESS_DECODER_ENV, "").strip().lower()
        if first and first not in JPEG_LOSSLESS_DECODERS:
            raise ValueError(f"{JPEG_LOSSLESS_DECODER_ENV}={first} is not one of "
                             f"{', '.join(JPEG_LOSSLESS_DECODERS)}")
        order = [p for p in (first, *JPEG_LOSSLESS_DECODERS) if p in installed]
        return tuple(dict.fromkeys(order)) or ("",)
    if "gdcm" in installed and "pylibjpeg" in installed:
        return ("pylibjpeg", "")
    return ("",)


def _decode(ds: Dataset, index: int | None) -> np.ndarray:
    """Stored values of one frame of a fully read data set (:func:`_first_decoder`)."""
    return _first_decoder(_transfer_syntax(ds), lambda plugin: _decode_pixels(
        ds, index=index, decoding_plugin=plugin))


def _first_decoder(ts: UID | None, decode: Callable[[str], np.ndarray]) -> np.ndarray:
    """``decode(plugin)`` by the first plugin of :func:`decoding_plugins` that works; the last
    one's error is raised."""
    plugins = decoding_plugins(ts)
    for k, plugin in enumerate(plugins):
        try:
            return decode(plugin)
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException as err:  # noqa: BLE001 - the next plugin may read it; the last raises
            if k == len(plugins) - 1:
                raise
            logger.debug("decoding plugin %r failed (%s), trying %r", plugin,
                         type(err).__name__, plugins[k + 1])
    raise AssertionError("unreachable")  # pragma: no cover


def _number_of_frames(ds: Dataset) -> int:
    return max(_int(ds, "NumberOfFrames") or 1, 1)


def _is_enhanced(ds: Dataset) -> bool:
    return "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds


def _is_multiframe(ds: Dataset) -> bool:
    return _is_enhanced(ds) or _number_of_frames(ds) > 1


def _sop_class(ds: Dataset) -> str:
    uid = _uid(ds, "SOPClassUID")
    if not uid and getattr(ds, "file_meta", None) is not None:
        uid = _uid(ds.file_meta, "MediaStorageSOPClassUID")
    return uid


def _check_image(ds: Dataset, path: str, has_pixels: bool | None) -> None:
    """Raise unless ``ds`` holds a greyscale CT image (localisers pass; see _is_localizer)."""
    sop = _sop_class(ds)
    modality = _code(ds, "Modality")
    if modality is None:
        raise InvalidInputError("malformed (0008,0060) Modality value", path=path)
    if sop.startswith(_NON_IMAGE_SOP_PREFIXES) or modality in _NON_IMAGE_MODALITIES:
        label = UID(sop).name if sop else f"modality {modality}"
        raise NotAnImageError(f"not a CT image: {label} (SOP class {sop or 'absent'})", path=path)
    if modality and modality != "CT":
        raise InvalidInputError(f"modality {modality}, not CT", path=path)
    if not modality and sop not in CT_SOP_CLASSES:
        raise InvalidInputError(
            f"no (0008,0060) Modality and SOP class {sop or 'absent'} is not a CT image class",
            path=path,
        )
    if has_pixels is False:
        raise InvalidInputError(
            "no (7FE0,0010) Pixel Data element (no image, or the file is truncated)", path=path
        )
    samples = _int(ds, "SamplesPerPixel") or 1
    photometric = _code(ds, "PhotometricInterpretation")
    photometric = "MONOCHROME2" if photometric == "" else photometric or "(malformed)"
    if samples != 1 or not photometric.startswith("MONOCHROME"):
        raise InvalidInputError(
            f"colour image ((0028,0002) Samples per Pixel {samples}, {photometric}); "
            "CT must be greyscale",
            path=path,
        )
    rows, columns = _int(ds, "Rows"), _int(ds, "Columns")
    if not rows or not columns:
        raise InvalidInputError("no (0028,0010) Rows / (0028,0011) Columns", path=path)
    if min(rows, columns) < MIN_SIDE or max(rows, columns) > MAX_SIDE:
        raise InvalidInputError(
            f"image of {rows}x{columns} pixels: a head CT slice has {MIN_SIDE} to {MAX_SIDE} "
            "pixels a side",
            path=path,
        )


def _is_localizer(ds: Dataset) -> bool:
    """(0008,0008) Image Type contains LOCALIZER (or SCOUT / TOPOGRAM)."""
    return bool(_LOCALIZER_TYPES.intersection(_strings(ds, "ImageType")))


def _read_image_dataset(path: str) -> Dataset:
    """Read a whole file (pixels included) that must hold a decodable CT image."""
    ds, has_pixels, _ = _read_dataset(path, stop_before_pixels=False)
    _check_image(ds, path, has_pixels)
    _check_decoder(ds, path)
    return ds


# --------------------------------------------------------------------------------------------
# Per-frame attributes (classic single-frame and enhanced multi-frame)


def _frame_groups(ds: Dataset, frame: int | None) -> list[Dataset]:
    """Functional group items to search, most specific first, then ``ds`` itself."""
    groups: list[Dataset] = []
    if frame is not None:
        per = ds.get("PerFrameFunctionalGroupsSequence")
        if per is not None and frame < len(per):
            groups.append(per[frame])
        shared = ds.get("SharedFunctionalGroupsSequence")
        if shared:
            groups.append(shared[0])
    return groups


def _macro_item(groups: list[Dataset], sequence: str) -> Dataset | None:
    """The first item of functional-group macro ``sequence`` (per-frame before shared)."""
    for group in groups:
        seq = group.get(sequence)
        if seq:
            return seq[0]
    return None


def _frame_vector(
    ds: Dataset, groups: list[Dataset], sequence: str, keyword: str, n: int
) -> tuple[float, ...] | None:
    value = _vector(_macro_item(groups, sequence), keyword, n)
    return value if value is not None else _vector(ds, keyword, n)


def _frame_float(ds: Dataset, groups: list[Dataset], sequence: str, keyword: str) -> float | None:
    item = _macro_item(groups, sequence)
    value = _float(item, keyword) if item is not None else None
    return value if value is not None else _float(ds, keyword)


@dataclass(frozen=True)
class _PixelParams:
    slope: float
    intercept: float
    bits_stored: int
    pixel_representation: int
    padding: tuple[float, float] | None
    use_modality_lut: bool
    notes: tuple[str, ...]


def _padding(ds: Dataset, bits_allocated: int, pixel_representation: int) -> tuple[float, float]:
    """(0028,0120) Pixel Padding Value and (0028,0121) Range Limit in stored units."""

    def as_stored(value: float) -> float:
        if pixel_representation == 1 and value >= 2 ** (bits_allocated - 1):
            return value - 2**bits_allocated  # a signed value written as US
        if pixel_representation == 0 and value < 0:
            return value + 2**bits_allocated
        return value

    value = as_stored(_float(ds, "PixelPaddingValue") or 0.0)
    limit = _float(ds, "PixelPaddingRangeLimit")
    return value, as_stored(limit) if limit is not None else value


def _pixel_params(ds: Dataset, frame: int | None) -> _PixelParams:
    """How stored values of ``frame`` become HU.

    (0028,1053) Rescale Slope / (0028,1052) Rescale Intercept, per frame from the
    Pixel Value Transformation Sequence for enhanced CT; 1 / 0 with a note when absent.
    """
    groups = _frame_groups(ds, frame)
    slope = _frame_float(ds, groups, "PixelValueTransformationSequence", "RescaleSlope")
    intercept = _frame_float(ds, groups, "PixelValueTransformationSequence", "RescaleIntercept")
    notes: list[str] = []
    use_lut = False
    if slope is None or intercept is None:
        if slope is None and intercept is None and "ModalityLUTSequence" in ds:
            use_lut = True
            notes.append("HU from the (0028,3000) Modality LUT Sequence")
        else:
            notes.append("(0028,1053) Rescale Slope / (0028,1052) Intercept absent: assumed 1 / 0")
    slope = 1.0 if slope is None or slope == 0 else slope
    intercept = 0.0 if intercept is None else intercept
    bits_allocated = _int(ds, "BitsAllocated") or 16
    bits_stored = _int(ds, "BitsStored") or bits_allocated
    representation = _int(ds, "PixelRepresentation") or 0
    if not use_lut and is_wrapped_12bit(bits_stored, representation, intercept):
        notes.append("12-bit pixel values wrapped modulo 4096 (RSNA quirk): unwrapped")
    padding = None
    if "PixelPaddingValue" in ds:
        padding = _padding(ds, bits_allocated, representation)
    return _PixelParams(
        slope, intercept, bits_stored, representation, padding, use_lut, tuple(notes)
    )


def _hu_from_dataset(ds: Dataset, path: str, frame: int | None) -> np.ndarray:
    """Decode one frame of a fully read data set and convert it to HU."""
    frames = _number_of_frames(ds)
    multiframe = _is_multiframe(ds)
    if frame is None and multiframe and frames > 1:
        raise InvalidInputError(f"multi-frame file with {frames} frames: give a frame", path=path)
    if frame is not None and not 0 <= frame < frames:
        raise InvalidInputError(f"frame {frame} out of range (0..{frames - 1})", path=path)
    index = (frame or 0) if multiframe else None
    try:
        stored = _decode(ds, index)
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as err:  # noqa: BLE001 - decoder errors come in many types, and
        # the Rust decoders (pylibjpeg-rle) raise pyo3's PanicException, a BaseException
        raise InvalidInputError(
            f"cannot decode pixel data ({_transfer_syntax(ds)}): "
            f"{type(err).__name__}: {_redact(err)}",
            path=path,
        ) from err
    if stored.ndim != 2:
        raise InvalidInputError(f"decoded pixel array has shape {stored.shape}", path=path)
    params = _pixel_params(ds, index)
    if params.use_modality_lut:
        stored = apply_modality_lut(stored, ds)
        params = replace(params, slope=1.0, intercept=0.0)
    return _params_to_hu(stored, params, path)


def _params_to_hu(stored: np.ndarray, params: _PixelParams, path: str) -> np.ndarray:
    """:func:`stored_to_hu` with one image's parameters; its refusal names the file."""
    try:
        return stored_to_hu(
            stored,
            slope=params.slope,
            intercept=params.intercept,
            bits_stored=params.bits_stored,
            pixel_representation=params.pixel_representation,
            padding=params.padding,
        )
    except ValueError as err:
        raise InvalidInputError(str(err), path=path) from err


def read_slice_hu(info: SliceInfo) -> np.ndarray:
    """:func:`read_hu` of a scanned slice: the same HU, read straight from the file where the
    scan found uncompressed pixels (:class:`NativePixels`) or one compressed frame
    (:class:`EncodedPixels`) and the file is unchanged."""
    hu = None
    if info.native is not None:
        hu = _read_native(info, info.native)
    elif info.encoded is not None:
        hu = _read_encoded(info, info.encoded)
    return hu if hu is not None else read_hu(info.path, frame=info.frame)


def _read_encoded(info: SliceInfo, enc: EncodedPixels) -> np.ndarray | None:
    """The HU of ``enc``'s frame, or None where the file is not as scanned or any decoder
    fails on it (then :func:`read_hu` reads it the full way, or says why it cannot)."""
    data = _bytes_as_scanned(info.path, enc.offset, enc.length, enc.size, enc.mtime_ns)
    if data is None:
        return None
    ts = UID(enc.transfer_syntax)
    try:
        stored = _first_decoder(ts, lambda plugin: get_decoder(ts).as_array(
            data, decoding_plugin=plugin, **enc.options)[0])
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException:  # noqa: BLE001 - every decoder failed, or the setting names none:
        return None  # read_hu tries again and says why, naming the file
    if stored.shape != (info.rows, info.columns):
        return None
    return _params_to_hu(stored, enc.params, info.path)


def _bytes_as_scanned(path: str, offset: int, length: int, size: int,
                      mtime_ns: int) -> bytearray | None:
    """``length`` bytes of ``path`` from ``offset``, or None where the open file's size or
    modification time is no longer what the scan saw, or it cannot be read whole (the caller
    then reads it the full way, which says why where it cannot)."""
    try:
        with open(path, "rb") as fp:
            st = os.fstat(fp.fileno())
            if (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
                return None
            fp.seek(offset)
            data = bytearray(length)
            got = fp.readinto(data)
    except OSError:
        return None
    return data if got == length else None


def _read_native(info: SliceInfo, native: NativePixels) -> np.ndarray | None:
    """The HU of ``native``'s pixels, or None where the file is not as scanned (then
    :func:`read_hu` reads it, or says why it cannot)."""
    dtype = np.dtype(native.dtype)
    length = info.rows * info.columns * dtype.itemsize
    data = _bytes_as_scanned(info.path, native.offset, length, native.size, native.mtime_ns)
    if data is None:
        return None
    stored = np.frombuffer(data, dtype=dtype)  # writable: the buffer is this call's own
    if native.shift:  # as pydicom does: the bits above (0028,0101) Bits Stored are not data
        np.left_shift(stored, native.shift, out=stored)
        np.right_shift(stored, native.shift, out=stored)
    return _params_to_hu(stored.reshape(info.rows, info.columns), native.params, info.path)


def _native_pixels(ds: Dataset, params: _PixelParams, at: _PixelsAt | None) -> NativePixels | None:
    """How :func:`read_slice_hu` can read this single-frame image (``params``: its pixel
    parameters) without pydicom, or None where only pydicom's full read gives the same values:
    compressed, big-endian or multi-frame data, a Modality LUT, unusual bit depths, an
    attribute missing."""
    if at is None or at.encapsulated_length is not None or params.use_modality_lut:
        return None
    if _is_multiframe(ds) or _number_of_frames(ds) != 1:
        return None
    if _transfer_syntax(ds) not in (pydicom.uid.ImplicitVRLittleEndian,
                                    pydicom.uid.ExplicitVRLittleEndian):
        return None
    allocated, stored = _int(ds, "BitsAllocated"), _int(ds, "BitsStored")
    representation = _int(ds, "PixelRepresentation")
    if allocated not in (8, 16, 32) or representation not in (0, 1):
        return None
    if stored is None or not 1 <= stored <= allocated:
        return None
    if _int(ds, "SamplesPerPixel") != 1 or not _code(ds, "PhotometricInterpretation"):
        return None  # pydicom's read fails without them
    return NativePixels(
        offset=at.offset,
        dtype=f"<{'i' if representation else 'u'}{allocated // 8}",
        shift=allocated - stored,
        params=params,
        size=at.size,
        mtime_ns=at.mtime_ns,
    )


def _encoded_pixels(ds: Dataset, params: _PixelParams,
                    at: _PixelsAt | None) -> EncodedPixels | None:
    """How :func:`read_slice_hu` can decode this single-frame compressed image without parsing
    the file again, or None where only the full read gives the same values: native or
    multi-frame data, a Modality LUT, colour, no decoder installed."""
    if at is None or at.encapsulated_length is None or params.use_modality_lut:
        return None
    if _is_multiframe(ds) or _number_of_frames(ds) != 1:
        return None
    ts = _transfer_syntax(ds)
    if ts is None or not installed_plugins(ts):
        return None
    if _int(ds, "SamplesPerPixel") != 1 or not _code(ds, "PhotometricInterpretation"):
        return None
    try:
        options = as_pixel_options(ds)
    except Exception:  # noqa: BLE001 - a malformed value: the full read says what is wrong
        return None
    return EncodedPixels(
        offset=at.offset,
        length=at.encapsulated_length,
        transfer_syntax=str(ts),
        options=options,
        params=params,
        size=at.size,
        mtime_ns=at.mtime_ns,
    )


def read_hu(path: str | os.PathLike[str], *, frame: int | None = None) -> np.ndarray:
    """Read one CT image (or ``frame`` of a multi-frame file) as float32 HU ``(rows, columns)``.

    Raises :class:`InvalidInputError` (or a subclass) naming the file and the reason.
    """
    name = os.fspath(path)
    with _reading(name):
        return _hu_from_dataset(_read_image_dataset(name), name, frame)


# --------------------------------------------------------------------------------------------
# Headers -> slice records


@dataclass(frozen=True)
class _Record:
    info: SliceInfo
    study_uid: str
    series_uid: str
    orientation: tuple[float, ...] | None
    notes: tuple[str, ...] = ()


def _records_from_header(
    ds: Dataset, path: str, pixels_at: _PixelsAt | None = None
) -> list[_Record]:
    """One record per image in a header-only data set (``pixels_at``: where its native pixel
    data starts, for :func:`_native_pixels`)."""
    study = _uid(ds, "StudyInstanceUID")
    series = _uid(ds, "SeriesInstanceUID")
    sop = _uid(ds, "SOPInstanceUID") or os.path.basename(path)
    rows, columns = _int(ds, "Rows") or 0, _int(ds, "Columns") or 0
    frames: list[int | None] = list(range(_number_of_frames(ds))) if _is_multiframe(ds) else [None]
    records = []
    for frame in frames:
        groups = _frame_groups(ds, frame)
        params = _pixel_params(ds, frame)
        notes = list(params.notes)
        if not study:
            notes.append("no (0020,000D) Study Instance UID")
        position = _frame_vector(ds, groups, "PlanePositionSequence", "ImagePositionPatient", 3)
        orientation = _frame_vector(
            ds, groups, "PlaneOrientationSequence", "ImageOrientationPatient", 6
        )
        spacing = _frame_vector(ds, groups, "PixelMeasuresSequence", "PixelSpacing", 2)
        if spacing is None:
            spacing = _vector(ds, "ImagerPixelSpacing", 2)
            notes.append(
                "(0028,0030) Pixel Spacing absent: "
                + ("used (0018,1164) Imager Pixel Spacing" if spacing else "assumed 1 mm")
            )
        thickness = _frame_float(ds, groups, "PixelMeasuresSequence", "SliceThickness")
        instance = _int(ds, "InstanceNumber")
        if frame is not None:
            content = _macro_item(groups, "FrameContentSequence")
            stack_pos = _int(content, "InStackPositionNumber") if content is not None else None
            instance = stack_pos if stack_pos is not None else frame + 1
        info = SliceInfo(
            path=path,
            frame=frame,
            sop_instance_uid=sop,
            instance_number=instance,
            position_mm=(position[0], position[1], position[2]) if position else None,
            pixel_spacing_mm=(spacing[0], spacing[1]) if spacing else (1.0, 1.0),
            rows=rows,
            columns=columns,
            slice_thickness_mm=thickness,
            native=_native_pixels(ds, params, pixels_at) if frame is None else None,
            encoded=_encoded_pixels(ds, params, pixels_at) if frame is None else None,
        )
        records.append(_Record(info, study, series, _valid_orientation(orientation), tuple(notes)))
    return records


def _valid_orientation(value: tuple[float, ...] | None) -> tuple[float, ...] | None:
    """(0020,0037) with two unit, orthogonal cosine vectors, else None."""
    if value is None:
        return None
    row, col = np.array(value[:3]), np.array(value[3:])
    if np.linalg.norm(np.cross(row, col)) < 0.5:
        return None
    return value


def _read_records(path: str) -> list[_Record]:
    """Header-only read of one file; raises for anything that is not a usable CT image."""
    with _reading(path):
        ds, has_pixels, pixels_at = _read_dataset(path, stop_before_pixels=True)
        _check_image(ds, path, has_pixels)
        if _is_localizer(ds):
            raise NotAnImageError("localizer/scout image ((0008,0008) Image Type)", path=path)
        _check_decoder(ds, path)
        return _records_from_header(ds, path, pixels_at)


# --------------------------------------------------------------------------------------------
# Ordering


def slice_normal(orientation: Sequence[float]) -> np.ndarray:
    """Unit normal n = row cosines x column cosines of (0020,0037) Image Orientation (Patient)."""
    row = np.asarray(orientation[:3], dtype=np.float64)
    col = np.asarray(orientation[3:6], dtype=np.float64)
    normal = np.cross(row, col)
    return normal / np.linalg.norm(normal)


def _names(slices: Sequence[SliceInfo], base: str) -> list[str]:
    out = []
    for s in slices:
        name = os.path.relpath(s.path, base) if base else s.path
        out.append(name if s.frame is None else f"{name}[frame {s.frame}]")
    return out


def _common_dir(slices: Sequence[SliceInfo]) -> str:
    paths = [os.path.dirname(os.path.abspath(s.path)) for s in slices]
    try:
        return os.path.commonpath(paths) if paths else ""
    except ValueError:
        return ""


def order_slices(
    slices: Sequence[SliceInfo],
    orientation: Sequence[float] | None,
    *,
    label: str = "series",
) -> tuple[list[SliceInfo], float | None, list[str]]:
    """Order slices head -> foot; return (slices with ``location_mm``, spacing_mm, warnings).

    Positions are projected on the normal of ``orientation``; the slice with the largest
    patient-superior coordinate (LPS +z) comes first. Raises :class:`SeriesOrderError` for
    duplicate positions, or when a slice of a series of several has no position: ordering by
    (0020,0013) Instance Number would guess the head/foot direction and the spacing.
    """
    slices = list(slices)
    base = _common_dir(slices)
    notes: list[str] = []
    if len(slices) <= 1:
        out = slices
        if slices and slices[0].position_mm is not None and orientation is not None:
            loc = float(np.dot(slices[0].position_mm, slice_normal(orientation)))
            out = [replace(slices[0], location_mm=loc)]
        return out, None, notes
    positions = [s.position_mm for s in slices if s.position_mm is not None]
    if len(positions) == len(slices):
        if orientation is None:
            normal = np.array([0.0, 0.0, 1.0])
            notes.append("no (0020,0037) Image Orientation (Patient): assumed axial")
        else:
            normal = slice_normal(orientation)
            if abs(normal[2]) < 0.5:
                notes.append(
                    f"not an axial series (normal {np.round(normal, 3).tolist()}): "
                    "ordered by decreasing location"
                )
        locations = [float(np.dot(p, normal)) for p in positions]
        sign = -1.0 if normal[2] >= 0 else 1.0
        order = sorted(range(len(slices)), key=lambda i: (sign * locations[i], slices[i].path))
        ordered = [replace(slices[i], location_mm=locations[i]) for i in order]
        _check_duplicates(ordered, base, label)
        steps = np.abs(np.diff([s.location_mm for s in ordered]))
        spacing = float(np.median(steps))
        notes.extend(_gap_warnings(ordered, steps, spacing, base))
        return ordered, spacing, notes
    lacking = [s for s in slices if s.position_mm is None]
    raise SeriesOrderError(
        f"{label}: cannot order {len(slices)} slices safely: (0020,0032) Image Position "
        f"(Patient) missing in {len(lacking)} (e.g. {_names(lacking[:1], base)[0]}); "
        "head/foot direction and spacing would be guesses",
        path=base or None,
    )


def _check_duplicates(ordered: Sequence[SliceInfo], base: str, label: str) -> None:
    for a, b in zip(ordered, ordered[1:], strict=False):
        if abs(a.location_mm - b.location_mm) < SAME_POSITION_MM:
            same = [s for s in ordered if abs(s.location_mm - a.location_mm) < SAME_POSITION_MM]
            raise SeriesOrderError(
                f"{label}: duplicate slice positions at {a.location_mm:.2f} mm: "
                f"files {', '.join(_names(same, base))}",
                path=base or None,
            )


def _gap_warnings(
    ordered: Sequence[SliceInfo], steps: np.ndarray, spacing: float, base: str
) -> list[str]:
    out = []
    for i in (int(k) for k in np.flatnonzero(steps > GAP_FACTOR * spacing)):
        a, b = ordered[i], ordered[i + 1]
        names = _names([a, b], base)
        out.append(
            f"gap of {steps[i]:.3g} mm (median step {spacing:.3g} mm) between slices {i} and "
            f"{i + 1}, at {a.location_mm:.2f} .. {b.location_mm:.2f} mm "
            f"(files {names[0]}, {names[1]})"
        )
    return out


# --------------------------------------------------------------------------------------------
# Grouping into series


def _orientation_clusters(
    records: Sequence[_Record],
) -> list[tuple[tuple[float, ...], list[_Record]]]:
    clusters: list[tuple[tuple[float, ...], list[_Record]]] = []
    for rec in records:
        if rec.orientation is None:
            continue
        for orient, members in clusters:
            if max(abs(x - y) for x, y in zip(orient, rec.orientation, strict=True)) <= (
                ORIENTATION_TOLERANCE
            ):
                members.append(rec)
                break
        else:
            clusters.append((rec.orientation, [rec]))
    return clusters


def _build_series(study: str, series_uid: str, records: Sequence[_Record]) -> Series:
    """One Series from the records of one (study, series) pair; raises SeriesOrderError."""
    label = f"series {series_uid or '(no series UID)'}"
    base = _common_dir([r.info for r in records])
    notes: list[str] = []
    unique: dict[tuple[str, int | None], _Record] = {}
    for rec in sorted(records, key=lambda r: (r.info.path, r.info.frame or 0)):
        key = (rec.info.sop_instance_uid, rec.info.frame)
        if key in unique:
            names = _names([unique[key].info, rec.info], base)
            notes.append(f"same SOP Instance UID twice: kept {names[0]}, dropped {names[1]}")
            continue
        unique[key] = rec
    kept = list(unique.values())
    clusters = _orientation_clusters(kept)
    if len(clusters) > 1:
        parts = [
            f"{np.round(orient, 3).tolist()} in {len(members)} slices "
            f"(e.g. {_names([members[0].info], base)[0]})"
            for orient, members in clusters
        ]
        raise SeriesOrderError(
            f"{label}: mixed orientations: {'; '.join(parts)}", path=base or None
        )
    orientation = clusters[0][0] if clusters else None
    ordered, spacing, order_notes = order_slices([r.info for r in kept], orientation, label=label)
    notes.extend(order_notes)
    sizes = Counter((s.rows, s.columns) for s in ordered)
    if len(sizes) > 1:
        notes.append(f"mixed image sizes (rows, columns): {dict(sizes)}")
    per_note: dict[str, list[str]] = {}
    for rec in kept:
        for note in rec.notes:
            per_note.setdefault(note, []).append(_names([rec.info], base)[0])
    for note, names in per_note.items():
        notes.append(f"{note} ({len(names)} of {len(kept)} slices, e.g. {names[0]})")
    for note in notes:
        logger.info("%s: %s", label, note)
    return Series(
        study_uid=study,
        series_uid=series_uid,
        slices=ordered,
        orientation=tuple(orientation) if orientation is not None else None,
        spacing_mm=spacing,
        warnings=notes,
        source="dicom",
    )


# --------------------------------------------------------------------------------------------
# Finding files


def _is_nifti(path: str) -> bool:
    return path.lower().endswith(_NIFTI_SUFFIXES)


def _walk(root: str) -> Iterator[str]:
    """Every file below ``root`` (sorted, following links, each real folder once)."""
    seen: set[tuple[int, int]] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        try:
            st = os.stat(folder)
        except OSError:
            dirs[:] = []
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:
            dirs[:] = []
            continue
        seen.add(key)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield os.path.join(folder, name)


def _candidates(paths: Sequence[str]) -> Iterator[tuple[str, bool] | InvalidInputError]:
    """(path, named explicitly) for every file to look at, each real file once."""
    seen: set[tuple[int, int]] = set()
    for given in paths:
        if os.path.isdir(given):
            found: Iterable[tuple[str, bool]] = ((p, False) for p in _walk(given))
        elif os.path.lexists(given):
            found = [(given, True)]
        else:
            yield InvalidInputError("no such file or folder", path=given)
            continue
        for path, explicit in found:
            try:
                st = os.stat(path)
            except OSError as err:
                why = err.strerror or "broken link or no permission"
                yield InvalidInputError(f"cannot read: {why}", path=path)
                continue
            key = (st.st_dev, st.st_ino)
            if key not in seen:
                seen.add(key)
                yield path, explicit


# --------------------------------------------------------------------------------------------
# Public entry points


@dataclass
class HeaderRead:
    """What reading one candidate file's header gave: DICOM records, a NIfTI series, or a
    failure (``skipped`` when it is a file to pass over, not an error). Picklable without
    ``error`` (the exception, kept for ``on_error="raise"``; drop it to send a read elsewhere)."""

    path: str
    records: list[_Record] = field(default_factory=list)
    series: Series | None = None
    failure: InputFailure | None = None
    skipped: bool = False
    error: IchInferError | None = field(default=None, repr=False, compare=False)


def _failed(path: str, err: IchInferError, *, skipped: bool = False) -> HeaderRead:
    reason = getattr(err, "reason", str(err))
    return HeaderRead(path, failure=InputFailure(path, reason, type(err).__name__),
                      skipped=skipped, error=err)


def candidates(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
) -> Iterator[tuple[str, bool] | HeaderRead]:
    """The files :func:`scan` looks at, in its order: ``(path, named explicitly)``, or the
    failed :class:`HeaderRead` of a path that does not exist or cannot be read."""
    if isinstance(paths, str | os.PathLike):
        given = [os.fspath(paths)]
    else:
        given = [os.fspath(p) for p in paths]
    for cand in _candidates(given):
        if isinstance(cand, InvalidInputError):
            yield _failed(cand.path or "", cand)
        else:
            yield cand


def read_header(path: str, explicit: bool = True) -> HeaderRead:
    """Header-only read of one candidate file (``explicit``: named, not found in a folder)."""
    try:
        if _is_nifti(path):
            from ichinfer import nifti

            return HeaderRead(path, series=nifti.read_nifti_series(path))
        return HeaderRead(path, records=_read_records(path))
    except (NotAnImageError, NotDicomError) as err:
        named_dicom = isinstance(err, NotDicomError) and path.lower().endswith(_DICOM_SUFFIXES)
        return _failed(path, err, skipped=not (explicit or named_dicom))
    except IchInferError as err:
        return _failed(path, err)


def group_headers(
    reads: Iterable[HeaderRead],
    *,
    on_error: Literal["raise", "collect"] = "raise",
) -> ScanResult:
    """Group header reads (in :func:`candidates` order) into ordered series, as :func:`scan`.

    With ``on_error="raise"`` the first failure is raised (a lazy ``reads`` is consumed no
    further); with ``"collect"`` it is recorded in ``failures`` and grouping goes on.
    """
    if on_error not in ("raise", "collect"):
        raise ValueError(f"on_error must be 'raise' or 'collect', not {on_error!r}")
    result = ScanResult(series=[])

    def fail(failure: InputFailure, err: IchInferError | None) -> None:
        if on_error == "raise":
            raise err if err is not None else InvalidInputError(failure.reason, path=failure.path)
        result.failures.append(failure)
        logger.info("%s: %s", failure.path, failure.reason)

    groups: dict[tuple[str, str], list[_Record]] = {}
    found: list[tuple[str, str] | Series] = []  # DICOM group keys and NIfTI series, as met
    for read in reads:
        if read.failure is not None:
            if read.skipped:
                result.skipped.append(read.failure)
                logger.debug("%s: skipped: %s", read.path, read.failure.reason)
            else:
                fail(read.failure, read.error)
            continue
        if read.series is not None:
            found.append(read.series)
            continue
        for rec in read.records:
            key = (rec.study_uid, rec.series_uid)
            if key not in groups:
                groups[key] = []
                found.append(key)
            groups[key].append(rec)
    for item in found:
        if isinstance(item, Series):
            result.series.append(item)
            continue
        records = groups[item]
        try:
            result.series.append(_build_series(item[0], item[1], records))
        except SeriesOrderError as err:
            path = err.path or records[0].info.path
            fail(InputFailure(path, getattr(err, "reason", str(err)), type(err).__name__), err)
    return result


def scan(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    on_error: Literal["raise", "collect"] = "raise",
) -> ScanResult:
    """Find CT series in files and folders (recursively); read headers only.

    DICOM files are recognised by content, ``.nii``/``.nii.gz`` are read by
    :mod:`ichinfer.nifti`. Non-image objects (SR, dose reports, presentation states, secondary
    captures), localisers and non-DICOM files (other than ``*.dcm``/``*.dicom``/``*.ima``) found
    inside a folder go to ``skipped``; named explicitly they are errors. Hidden files and
    folders (names starting with ".") are not looked at. With ``on_error="raise"`` the first
    error is raised, with ``"collect"`` it is recorded in ``failures`` and the scan goes on.

    The same as :func:`group_headers` over :func:`read_header` of every :func:`candidates`
    item (which ``ichinfer batch`` runs in parallel).
    """
    if on_error not in ("raise", "collect"):
        raise ValueError(f"on_error must be 'raise' or 'collect', not {on_error!r}")
    reads = (c if isinstance(c, HeaderRead) else read_header(*c) for c in candidates(paths))
    return group_headers(reads, on_error=on_error)


def read_series(
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    series_uid: str | None = None,
) -> Series:
    """Scan ``path`` (errors raise) and return its one series, or the one with ``series_uid``.

    Raises :class:`InvalidInputError` when no series, or more than one, matches.
    """
    result = scan(path, on_error="raise")
    found = [s for s in result.series if series_uid is None or s.series_uid == series_uid]
    where = os.fspath(path) if isinstance(path, str | os.PathLike) else None
    if len(found) != 1:
        uids = ", ".join(s.series_uid for s in result.series) or "none"
        wanted = f" with series UID {series_uid}" if series_uid else ""
        raise InvalidInputError(
            f"expected exactly one CT series{wanted}, found {len(found)} (series: {uids})",
            path=where,
        )
    return found[0]
