"""Small synthetic CT DICOM data sets for tests (no real patient data).

``make_ct_dataset(**overrides)`` builds a single-frame CT Image Storage data set holding a
32 x 32 phantom (air, a 40 HU disc, a 1000 HU ring) stored with Rescale Intercept -1024.
Keyword arguments are DICOM keywords that replace the defaults (``None`` deletes the element);
``pixels=`` gives the stored values. ``make_enhanced_ct_dataset`` builds an Enhanced CT
multi-frame data set; ``write(ds, path)`` saves either as a DICOM file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid

ENHANCED_CT = UID("1.2.840.10008.5.1.4.1.1.2.1")
STUDY_UID = "1.2.826.0.1.3680043.8.498.10000000000000000000000000000000001"
SERIES_UID = "1.2.826.0.1.3680043.8.498.10000000000000000000000000000000002"
SIZE = 32


def phantom_hu(size: int = SIZE) -> np.ndarray:
    """Air (-1024), a 40 HU disc and a 1000 HU ring, as int16 HU."""
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    r = np.hypot(yy, xx)
    hu = np.full((size, size), -1024, dtype=np.int16)
    hu[r < size * 0.4] = 1000
    hu[r < size * 0.33] = 40
    return hu


def _set_pixels(ds: Dataset, pixels: np.ndarray) -> None:
    pixels = np.asarray(pixels)
    if pixels.dtype.kind == "f":
        ds.BitsAllocated = 32
        ds.FloatPixelData = pixels.astype("<f4").tobytes()
        for keyword in ("BitsStored", "HighBit", "PixelRepresentation", "PixelData"):
            if keyword in ds:
                delattr(ds, keyword)
    else:
        dtype = "<i2" if int(ds.get("PixelRepresentation", 1)) == 1 else "<u2"
        ds.PixelData = pixels.astype(dtype).tobytes()
    ds.Rows, ds.Columns = int(pixels.shape[-2]), int(pixels.shape[-1])


def make_ct_dataset(*, pixels: np.ndarray | None = None, **overrides: Any) -> Dataset:
    """A single-frame CT data set; keyword overrides replace defaults, ``None`` deletes."""
    sop_uid = overrides.pop("SOPInstanceUID", None) or generate_uid()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = STUDY_UID
    ds.SeriesInstanceUID = SERIES_UID
    ds.Modality = "CT"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.PatientName = "Secret^Patient"
    ds.PatientID = "SECRET-ID-0001"
    ds.AccessionNumber = "SECRET-ACC-01"
    ds.PatientBirthDate = "19000101"
    ds.InstanceNumber = 1
    ds.ImagePositionPatient = [-8.0, -8.0, 0.0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.5, 0.5]
    ds.SliceThickness = 5.0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    for keyword in ("PixelRepresentation", "BitsStored", "BitsAllocated"):
        if keyword in overrides and overrides[keyword] is not None:
            setattr(ds, keyword, overrides[keyword])
    if "BitsStored" in overrides and overrides["BitsStored"] is not None:
        ds.HighBit = int(overrides["BitsStored"]) - 1
    if pixels is None:
        pixels = phantom_hu().astype(np.int32) + 1024
    _set_pixels(ds, pixels)
    for keyword, value in overrides.items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    return ds


def _item(**elements: Any) -> Dataset:
    item = Dataset()
    for keyword, value in elements.items():
        setattr(item, keyword, value)
    return item


def make_enhanced_ct_dataset(
    positions: Sequence[Sequence[float]],
    *,
    intercepts: Sequence[float] | None = None,
    orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
    pixel_spacing: Sequence[float] = (0.5, 0.5),
    frames_hu: np.ndarray | None = None,
) -> Dataset:
    """Enhanced CT with one frame per position; geometry in functional groups.

    Orientation, pixel measures and a default rescale (intercept -1024) are shared;
    ``intercepts`` adds a per-frame Pixel Value Transformation that overrides it.
    Frame k holds ``frames_hu[k]`` (default: the phantom plus 10 * k HU).
    """
    n = len(positions)
    if frames_hu is None:
        frames_hu = np.stack([phantom_hu() + 10 * k for k in range(n)])
    intercept_of = list(intercepts) if intercepts is not None else [-1024.0] * n
    stored = np.stack([frames_hu[k] - intercept_of[k] for k in range(n)])
    ds = make_ct_dataset(pixels=stored[0])
    for keyword in (
        "ImagePositionPatient",
        "ImageOrientationPatient",
        "PixelSpacing",
        "SliceThickness",
        "RescaleIntercept",
        "RescaleSlope",
        "InstanceNumber",
    ):
        delattr(ds, keyword)
    ds.SOPClassUID = ENHANCED_CT
    ds.file_meta.MediaStorageSOPClassUID = ENHANCED_CT
    ds.NumberOfFrames = n
    ds.PixelData = stored.astype("<i2").tobytes()
    shared = _item(
        PlaneOrientationSequence=DicomSequence([_item(ImageOrientationPatient=list(orientation))]),
        PixelMeasuresSequence=DicomSequence(
            [_item(PixelSpacing=list(pixel_spacing), SliceThickness=2.0)]
        ),
        PixelValueTransformationSequence=DicomSequence(
            [_item(RescaleIntercept=-1024, RescaleSlope=1, RescaleType="HU")]
        ),
    )
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    per_frame = []
    for k, position in enumerate(positions):
        item = _item(
            PlanePositionSequence=DicomSequence([_item(ImagePositionPatient=list(position))]),
            FrameContentSequence=DicomSequence([_item(InStackPositionNumber=k + 1)]),
        )
        if intercepts is not None:
            item.PixelValueTransformationSequence = DicomSequence(
                [_item(RescaleIntercept=intercepts[k], RescaleSlope=1, RescaleType="HU")]
            )
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    return ds


def write(ds: Dataset, path: str | os.PathLike[str], *, preamble: bool = True) -> str:
    """Save ``ds`` at ``path`` (as a DICOM file, or a bare data set when ``preamble=False``)."""
    name = os.fspath(path)
    os.makedirs(os.path.dirname(name) or ".", exist_ok=True)
    if preamble:
        ds.save_as(name, enforce_file_format=True)
    else:
        bare = ds.copy()
        del bare.file_meta
        bare.save_as(name, implicit_vr=True, little_endian=True)
    return name
