"""DICOM outputs a PACS files with the study: a DICOM SEG of the bleed masks and a Secondary
Capture series of the blue overlays.

The only importer of highdicom (imported on first use, so ``import ichinfer`` stays light). It
also reads the source headers with pydicom (``stop_before_pixels=True``), because a SEG must
reference and copy from them.

Both outputs carry the source's patient and study modules, so a PACS files them under the same
study: the identifiers are copied into the files and nowhere else (never logged, never
returned). Each output gets a new (0020,000E) Series Instance UID, is marked derived, and says
"NOT FOR DIAGNOSIS" in (0008,103E) Series Description.

* SEG: (0062,0001) Segmentation Type BINARY, one segment "Hemorrhage" (SCT 50960005, category
  SCT 49755003 Morphologically Abnormal Structure), algorithm type AUTOMATIC; every frame refers
  to its source image through (0008,9124) Derivation Image Sequence → (0008,2112) Source Image
  Sequence → (0008,1155) Referenced SOP Instance UID.
* Secondary Capture: RGB, (0008,0008) Image Type DERIVED\\SECONDARY, (0028,0301) Burned In
  Annotation YES, (0008,2111) Derivation Description, (0008,2112) Source Image Sequence naming
  the CT image, (0020,0013) Instance Number = slice index + 1 (head to foot).
"""

from __future__ import annotations

import copy
import io
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ichinfer import __version__
from ichinfer.errors import InvalidInputError, MissingDependencyError
from ichinfer.highdicom_table import lazy_module_table
from ichinfer.results import SeriesSegmentation, atomic_write_bytes

logger = logging.getLogger(__name__)


def require_highdicom():
    """highdicom, or :class:`MissingDependencyError` naming the extra that installs it; its
    table of the standard's modules made lazy (:mod:`ichinfer.highdicom_table`)."""
    try:
        import highdicom
    except ImportError as err:
        raise MissingDependencyError(
            "DICOM SEG / Secondary Capture output needs highdicom, an optional extra: "
            "pip install 'ichinfer[seg]'"
        ) from err
    lazy_module_table()
    return highdicom


NOT_FOR_DIAGNOSIS = "ichinfer - NOT FOR DIAGNOSIS"
SEG_SERIES_OFFSET = 9000
SC_SERIES_OFFSET = 9100
DERIVATION = ("Bleed overlay (blue) computed by ichinfer, an automated research tool. "
              "NOT FOR DIAGNOSIS.")

#: +x, +y, +z of the DICOM patient coordinate system as (0020,0020) Patient Orientation letters
_AXIS_LETTERS = (("L", "R"), ("P", "A"), ("H", "F"))


@dataclass(frozen=True)
class DicomOutputs:
    """Files written for one series."""

    seg: Path
    overlays: list[Path]
    seg_series_uid: str
    sc_series_uid: str | None


def _pydicom():
    import pydicom

    return pydicom


def read_source_headers(segmentation: SeriesSegmentation, source: Any = None) -> list[Any]:
    """The source CT headers, one per slice in the segmentation's order (head first)."""
    pydicom = _pydicom()
    source = source if source is not None else segmentation.source
    if source is not None and getattr(source, "source", "dicom") != "dicom":
        raise InvalidInputError("DICOM outputs need DICOM input (this series is NIfTI)",
                                path=segmentation.slices[0].path if segmentation.slices else None)
    headers = []
    for sl in segmentation.slices:
        if sl.frame is not None:
            raise InvalidInputError("DICOM outputs for multi-frame sources are not supported",
                                    path=sl.path)
        try:
            ds = pydicom.dcmread(sl.path, stop_before_pixels=True)
        except (OSError, ValueError, pydicom.errors.InvalidDicomError) as err:
            raise InvalidInputError(f"cannot re-read the source header: {err}",
                                    path=sl.path) from err
        if str(ds.get("SOPInstanceUID", "")) != sl.sop_instance_uid:
            raise InvalidInputError("the file changed since it was read (SOP Instance UID)",
                                    path=sl.path)
        headers.append(ds)
    return headers


def patient_orientation(direction: Sequence[float]) -> str:
    """The (0020,0020) Patient Orientation letter of a direction cosine: its largest axis."""
    k = int(np.argmax(np.abs(direction)))
    return _AXIS_LETTERS[k][0 if direction[k] > 0 else 1]


def with_frame_of_reference(headers: Sequence[Any]) -> list[Any]:
    """``headers``, or copies given a (0020,0052) Frame of Reference UID where they have none.

    Some scanners' exports (CQ500 among them) omit the Frame of Reference UID that a SEG must
    carry. The UID given is derived from the series UID, so reruns produce the same one, and
    it is set on copies only: the source files are never touched.
    """
    if all("FrameOfReferenceUID" in ds for ds in headers):
        return list(headers)
    from pydicom.uid import generate_uid

    series_uids = {str(ds.get("SeriesInstanceUID", "")) for ds in headers}
    uid = generate_uid(entropy_srcs=["ichinfer frame of reference", *sorted(series_uids)])
    out = []
    for ds in headers:
        if "FrameOfReferenceUID" not in ds:
            ds = copy.deepcopy(ds)
            ds.FrameOfReferenceUID = uid
        out.append(ds)
    return out


def copy_deidentification(target: Any, header: Any) -> None:
    """Carry (0012,0062) Patient Identity Removed's companions: (0012,0063) De-identification
    Method and (0012,0064) its Code Sequence, which are required (1C) when it is YES. A source
    that says YES without naming a method gets a method saying so."""
    if str(header.get("PatientIdentityRemoved", "")).upper() != "YES":
        return
    target.PatientIdentityRemoved = "YES"
    for keyword in ("DeidentificationMethod", "DeidentificationMethodCodeSequence"):
        if keyword in header:
            setattr(target, keyword, copy.deepcopy(header[keyword].value))
    named = ("DeidentificationMethod", "DeidentificationMethodCodeSequence")
    if not any(keyword in target for keyword in named):
        target.DeidentificationMethod = "not recorded in the source images"


@contextmanager
def _quiet_highdicom() -> Iterator[None]:
    """highdicom's warnings can quote header values such as (0010,0010) Patient's Name; keep
    them out of the output and log only that there were some."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    if caught:
        logger.debug("highdicom raised %d warning(s); not shown, they may quote patient data",
                     len(caught))


def _encode(ds: Any) -> bytes:
    buf = io.BytesIO()
    _pydicom().dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def _series_number(ds: Any, offset: int) -> int:
    try:
        return offset + int(ds.get("SeriesNumber") or 0)
    except (TypeError, ValueError):
        return offset


def build_seg(segmentation: SeriesSegmentation, headers: Sequence[Any], *,
              model_version: str = "") -> Any:
    """A highdicom ``Segmentation`` of the series' masks referencing ``headers``.

    Only the slices with a bleed become frames and are referenced (a SEG's omitted frames are
    empty, so it says the same), and only their masks are stacked: highdicom copies the whole
    stack it is given. With no bleed at all, every slice is an empty frame."""
    hd = require_highdicom()
    from pydicom.sr.codedict import codes

    shapes = {sl.mask.shape for sl in segmentation.slices}
    if len(shapes) != 1:
        raise InvalidInputError("slices of different sizes cannot share one DICOM SEG",
                                path=segmentation.slices[0].path)
    keep = [k for k, sl in enumerate(segmentation.slices) if sl.mask.any()]
    keep = keep or list(range(len(segmentation.slices)))
    masks = np.stack([segmentation.slices[k].mask.astype(bool) for k in keep])
    headers = with_frame_of_reference([headers[k] for k in keep])
    version = f"{__version__} model {model_version}".strip()
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="Hemorrhage",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Hemorrhage,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="ichinfer", version=version[:64],
            family=codes.cid7162.ArtificialIntelligence),
    )
    try:
        with _quiet_highdicom():
            seg = hd.seg.Segmentation(
                source_images=list(headers),
                pixel_array=masks,
                segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
                segment_descriptions=[description],
                series_instance_uid=hd.UID(),
                series_number=_series_number(headers[0], SEG_SERIES_OFFSET),
                sop_instance_uid=hd.UID(),
                instance_number=1,
                manufacturer="ichinfer",
                manufacturer_model_name="ichinfer",
                software_versions=version[:64],
                device_serial_number="none",
                content_label="HEMORRHAGE",
                content_description=NOT_FOR_DIAGNOSIS,
                series_description=NOT_FOR_DIAGNOSIS,
                omit_empty_frames=bool(masks.any()),
            )
    except (ValueError, TypeError, AttributeError) as err:
        raise InvalidInputError(f"cannot build a DICOM SEG: {err}",
                                path=segmentation.slices[0].path) from err
    copy_deidentification(seg, headers[0])
    return seg


def _sc_image(hd: Any, rgb: np.ndarray, header: Any, orientation: list[float], spacing: Any,
              series_uid: str, instance_number: int, sop_instance_uid: str | None) -> Any:
    return hd.sc.SCImage.from_ref_dataset(
        ref_dataset=header,
        pixel_array=np.ascontiguousarray(rgb, dtype=np.uint8),
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        series_instance_uid=series_uid,
        series_number=_series_number(header, SC_SERIES_OFFSET),
        sop_instance_uid=sop_instance_uid or hd.UID(),
        instance_number=instance_number,
        manufacturer="ichinfer",
        pixel_spacing=tuple(float(v) for v in spacing) if spacing else None,
        patient_orientation=(patient_orientation(orientation[:3]),
                             patient_orientation(orientation[3:])),
        series_description=NOT_FOR_DIAGNOSIS,
        transfer_syntax_uid="1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    )


def build_overlay(rgb: np.ndarray, header: Any, *, series_uid: str, instance_number: int,
                  sop_instance_uid: str | None = None) -> Any:
    """A Secondary Capture image of an RGB overlay, filed with ``header``'s patient and study."""
    hd = require_highdicom()
    from pydicom.dataset import Dataset

    orientation = [float(v) for v in header.get("ImageOrientationPatient") or (1, 0, 0, 0, 1, 0)]
    spacing = header.get("PixelSpacing")
    with _quiet_highdicom():
        sc = _sc_image(hd, rgb, header, orientation, spacing, series_uid, instance_number,
                       sop_instance_uid)
    copy_deidentification(sc, header)
    sc.ImageType = ["DERIVED", "SECONDARY"]
    sc.BurnedInAnnotation = "YES"
    sc.ImageComments = NOT_FOR_DIAGNOSIS
    sc.DerivationDescription = DERIVATION
    ref = Dataset()
    ref.ReferencedSOPClassUID = header.SOPClassUID
    ref.ReferencedSOPInstanceUID = header.SOPInstanceUID
    sc.SourceImageSequence = [ref]
    if "Laterality" not in sc:
        sc.Laterality = ""  # (0020,0060) type 2C: a head is not a paired structure
    return sc


def write_dicom_outputs(
    segmentation: SeriesSegmentation,
    folder: str | os.PathLike,
    *,
    overlays: str = "bleeding",
    model_version: str = "",
    stem: str = "s00",
    source: Any = None,
) -> DicomOutputs:
    """Write ``<stem>_seg.dcm`` and ``<stem>_overlays/NNNN.dcm`` (Secondary Capture) in
    ``folder``. ``overlays``: ``bleeding`` (slices with a mask), ``all`` or ``none``.
    ``source`` is the :class:`ichinfer.dicom.Series` (default: the segmentation's own)."""
    hd = require_highdicom()

    from ichinfer.overlay import blue_overlay

    if overlays not in ("bleeding", "all", "none"):
        raise ValueError(f"overlays must be bleeding, all or none, not {overlays!r}")
    if not segmentation.slices:
        raise InvalidInputError("no slices to write", path=str(folder))
    folder = Path(folder)
    source = source if source is not None else segmentation.source
    headers = read_source_headers(segmentation, source)
    seg = build_seg(segmentation, headers, model_version=model_version)
    seg_path = folder / f"{stem}_seg.dcm"
    atomic_write_bytes(seg_path, _encode(seg))
    written: list[Path] = []
    sc_uid = None
    chosen = [sl for sl in segmentation.slices
              if overlays == "all" or (overlays == "bleeding" and sl.mask.any())]
    if chosen and source is None:
        raise InvalidInputError("no image source to render the overlays from",
                                path=segmentation.slices[0].path)
    if chosen:
        sc_uid = str(hd.UID())
        for sl in chosen:
            rgb = blue_overlay(source.load_hu(sl.index), sl.mask)
            sc = build_overlay(rgb, headers[sl.index], series_uid=sc_uid,
                               instance_number=sl.index + 1)
            path = folder / f"{stem}_overlays" / f"{sl.index + 1:04d}.dcm"
            atomic_write_bytes(path, _encode(sc))
            written.append(path)
    return DicomOutputs(seg=seg_path, overlays=written, seg_series_uid=str(seg.SeriesInstanceUID),
                        sc_series_uid=sc_uid)
