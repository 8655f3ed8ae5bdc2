"""DICOM encoding and writing for phantom slices (pydicom only).

Three pixel encodings seen in the RSNA 2019 data:

* ``u12``: (0028,0101) Bits Stored 12, (0028,0103) Pixel Representation 0,
  (0028,1052) Rescale Intercept -1024; no padding (air outside the scan circle is stored as 0).
* ``s16``: Bits Stored 16, Pixel Representation 1, intercept -1024; outside the circular scan
  field the stored value is -2000 (HU -3024), as many scanners write.
* ``s16_i0``: Bits Stored 16, Pixel Representation 1, intercept 0: stored values are HU, padding
  -3024.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)

ENCODINGS = ("u12", "s16", "s16_i0")
PADDING_HU = -3024.0
PHANTOM_NOTE = "ichinfer synthetic phantom"


@dataclass(frozen=True)
class Encoding:
    name: str
    bits_stored: int
    pixel_representation: int
    intercept: float
    padding_raw: int | None  # None: no padding value (the scan circle is filled with air)


def encoding_spec(name: str) -> Encoding:
    if name == "u12":
        return Encoding(name, 12, 0, -1024.0, None)
    if name == "s16":
        return Encoding(name, 16, 1, -1024.0, -2000)
    if name == "s16_i0":
        return Encoding(name, 16, 1, 0.0, -3024)
    raise ValueError(f"unknown pixel encoding {name!r}; choose from {ENCODINGS}")


def encode_pixels(hu: np.ndarray, in_fov: np.ndarray, enc: Encoding) -> np.ndarray:
    """HU image -> stored values, inverting (0028,1053) Rescale Slope 1 and (0028,1052) Intercept.

    Pixels outside the circular scan field (`in_fov` False) get the encoding's padding value.
    """
    raw = np.rint(np.clip(hu, -1024.0, 3071.0) - enc.intercept)
    if enc.pixel_representation == 0:
        raw = np.clip(raw, 0, 2**enc.bits_stored - 1)
        out = raw.astype(np.uint16)
        out[~in_fov] = 0
        return out
    out = raw.astype(np.int16)
    if enc.padding_raw is not None:
        out[~in_fov] = enc.padding_raw
    return out


def uid(*parts: object) -> str:
    """Deterministic valid UID under pydicom's root, hashed from the given entropy parts.

    (pydicom ignores `entropy_srcs` when `prefix` is None, so the default prefix is kept.)
    """
    return str(generate_uid(entropy_srcs=["ichinfer-phantom", *map(str, parts)]))


def file_id(sop_uid: str) -> str:
    """Kaggle-style file stem ``ID_<9 lowercase hex>`` derived from the SOP Instance UID."""
    return "ID_" + hashlib.sha1(sop_uid.encode()).hexdigest()[:9]


def _ds(values) -> list[str] | str:
    strs = [f"{float(v):.6f}".rstrip("0").rstrip(".") or "0" for v in np.atleast_1d(values)]
    return strs if len(strs) > 1 else strs[0]


@dataclass(frozen=True)
class SliceHeader:
    """Per-slice values the writer needs besides the pixels."""

    study_uid: str
    series_uid: str
    sop_uid: str
    patient_id: str
    instance_number: int
    position: np.ndarray  # (3,) (0020,0032)
    orientation: np.ndarray  # (6,) (0020,0037)
    pixel_spacing_mm: float
    thickness_mm: float
    spacing_mm: float
    tilt_deg: float
    window: tuple[list[float], list[float]]
    kvp: float
    study_index: int


def build_dataset(raw: np.ndarray, h: SliceHeader, enc: Encoding) -> Dataset:
    """A CT Image Storage dataset with file meta for one encoded slice."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = h.sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "ICHINFER_SYNTH"

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = h.sop_uid
    ds.StudyDate = "20190101"
    ds.StudyTime = "120000"
    ds.AccessionNumber = ""
    ds.Modality = "CT"
    ds.Manufacturer = "ichinfer"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "CT HEAD WO CONTRAST (phantom)"
    ds.SeriesDescription = f"AXIAL {h.thickness_mm:g}mm (phantom)"
    ds.DerivationDescription = PHANTOM_NOTE
    ds.ImageComments = f"{PHANTOM_NOTE}; study {h.study_index}"
    ds.PatientName = "PHANTOM^HEAD"
    ds.PatientID = h.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.BodyPartExamined = "HEAD"
    ds.SliceThickness = _ds(h.thickness_mm)
    ds.SpacingBetweenSlices = _ds(h.spacing_mm)
    ds.KVP = _ds(h.kvp)
    ds.GantryDetectorTilt = _ds(h.tilt_deg)
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = h.study_uid
    ds.SeriesInstanceUID = h.series_uid
    ds.StudyID = f"{h.study_index}"
    ds.SeriesNumber = 2
    ds.InstanceNumber = h.instance_number
    ds.ImagePositionPatient = _ds(h.position)
    ds.ImageOrientationPatient = _ds(h.orientation)
    ds.FrameOfReferenceUID = uid(h.study_uid, "for")
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = _ds(float(h.position[2]))
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = raw.shape
    ds.PixelSpacing = _ds([h.pixel_spacing_mm, h.pixel_spacing_mm])
    ds.BitsAllocated = 16
    ds.BitsStored = enc.bits_stored
    ds.HighBit = enc.bits_stored - 1
    ds.PixelRepresentation = enc.pixel_representation
    if enc.padding_raw is not None:
        ds.PixelPaddingValue = enc.padding_raw
    centers, widths = h.window
    ds.WindowCenter = _ds(centers)
    ds.WindowWidth = _ds(widths)
    ds.RescaleIntercept = _ds(enc.intercept)
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.PixelData = raw.astype("<u2" if enc.pixel_representation == 0 else "<i2").tobytes()
    ds["PixelData"].VR = "OW"
    return ds


def write_slice(path: Path, raw: np.ndarray, h: SliceHeader, enc: Encoding) -> None:
    """Write one slice as an Explicit VR Little Endian Part 10 file."""
    ds = build_dataset(raw, h, enc)
    ds.save_as(path, enforce_file_format=True)
