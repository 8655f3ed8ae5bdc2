"""Tests of ichinfer.dicom: HU conversion, file checks, series grouping and ordering."""

from __future__ import annotations

import logging
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from dicom_factory import (
    SERIES_UID,
    make_ct_dataset,
    make_enhanced_ct_dataset,
    phantom_hu,
    write,
)
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import UID, JPEG2000Lossless, JPEGLSLossless, RLELossless, generate_uid

from ichinfer import dicom
from ichinfer.errors import (
    InvalidInputError,
    NotAnImageError,
    NotDicomError,
    SeriesOrderError,
    UnsupportedTransferSyntaxError,
)

PHANTOM = phantom_hu().astype(np.float32)
SECRETS = ("Secret", "SECRET-ID", "SECRET-ACC", "19000101")


def _series_files(folder: Path, zs: list[float], **overrides: Any) -> list[str]:
    """One axial slice per z, written in shuffled file order."""
    paths = []
    for k, z in enumerate(zs):
        fields: dict[str, Any] = {
            "ImagePositionPatient": [-8.0, -8.0, z],
            "InstanceNumber": k + 1,
            **overrides,
        }
        ds = make_ct_dataset(**fields)
        paths.append(write(ds, folder / f"f{(k * 7) % len(zs):03d}_{k}.dcm"))
    return paths


# ---------------------------------------------------------------------------------------------
# HU conversion


def test_read_hu_phantom(tmp_path: Path) -> None:
    hu = dicom.read_hu(write(make_ct_dataset(), tmp_path / "a.dcm"))
    assert hu.dtype == np.float32 and hu.shape == (32, 32)
    np.testing.assert_array_equal(hu, PHANTOM)


def test_multi_valued_and_padded_rescale_strings(tmp_path: Path) -> None:
    ds = make_ct_dataset(pixels=(PHANTOM + 1024) / 2)
    ds.add_new(0x00281053, "DS", ["2.000000", "2"])  # Rescale Slope, multi-valued
    ds.add_new(0x00281052, "DS", " -1024.00 ")  # Rescale Intercept, padded
    np.testing.assert_array_equal(dicom.read_hu(write(ds, tmp_path / "a.dcm")), PHANTOM)


def test_missing_rescale_defaults_with_warning(tmp_path: Path) -> None:
    ds = make_ct_dataset(pixels=phantom_hu(), RescaleSlope=None, RescaleIntercept=None)
    path = write(ds, tmp_path / "a.dcm")
    np.testing.assert_array_equal(dicom.read_hu(path), PHANTOM)
    series = dicom.read_series(path)
    assert any("Rescale Slope" in w and "assumed 1 / 0" in w for w in series.warnings)


def test_unsigned_12bit_ignores_unused_high_bits(tmp_path: Path) -> None:
    stored = (PHANTOM + 1024).astype(np.uint16) | 0xF000  # garbage above bit 11
    ds = make_ct_dataset(pixels=stored, BitsStored=12, PixelRepresentation=0)
    np.testing.assert_array_equal(dicom.read_hu(write(ds, tmp_path / "a.dcm")), PHANTOM)


def test_signed_12bit_is_sign_extended(tmp_path: Path) -> None:
    stored = (PHANTOM.astype(np.int16) & 0x0FFF).astype(np.uint16)  # 12-bit two's complement
    ds = make_ct_dataset(pixels=stored.view(np.int16), BitsStored=12, RescaleIntercept=0)
    np.testing.assert_array_equal(dicom.read_hu(write(ds, tmp_path / "a.dcm")), PHANTOM)


def test_rsna_12bit_wrap_quirk_is_fixed(tmp_path: Path) -> None:
    hu = np.maximum(PHANTOM, -1000)  # the wrap can only represent -1000 .. 3095 HU
    hu[0, :4] = [-100, -1, 0, 3000]
    wrapped = np.mod(hu.astype(np.int32), 4096)  # what the scanner stored with intercept 0
    ds = make_ct_dataset(pixels=wrapped, BitsStored=12, PixelRepresentation=0, RescaleIntercept=0)
    path = write(ds, tmp_path / "a.dcm")
    np.testing.assert_array_equal(dicom.read_hu(path), hu)
    assert any("RSNA quirk" in w for w in dicom.read_series(path).warnings)


def test_already_hu_signed_with_intercept_zero_is_not_fixed(tmp_path: Path) -> None:
    stored = PHANTOM.astype(np.int16)
    stored[:2] = -3024  # outside-of-scan padding, already in HU
    ds = make_ct_dataset(pixels=stored, RescaleIntercept=0)
    path = write(ds, tmp_path / "a.dcm")
    expected = PHANTOM.copy()
    expected[:2] = -1024
    np.testing.assert_array_equal(dicom.read_hu(path), expected)
    assert not any("quirk" in w for w in dicom.read_series(path).warnings)


def test_padding_value_range_and_clipping(tmp_path: Path) -> None:
    stored = np.full((32, 32), 1064, dtype=np.int16)  # 40 HU
    stored[0] = -2000  # padding value
    stored[1, :3] = [5, 9, 11]  # 5 and 9 inside the padding range 0..10
    stored[2, 0] = 6000  # far above 3071 HU
    ds = make_ct_dataset(pixels=stored, RescaleIntercept=-1000)
    ds.add_new(0x00280120, "SS", 0)  # Pixel Padding Value
    ds.add_new(0x00280121, "SS", 10)  # Pixel Padding Range Limit
    hu = dicom.read_hu(write(ds, tmp_path / "a.dcm"))
    assert (hu[0] == -1024).all()  # -2000 - 1000 is below air
    assert hu[1, :3].tolist() == [-1024, -1024, -989]
    assert hu[2, 0] == 3071
    assert hu.min() >= -1024


def test_stored_to_hu_is_pure() -> None:
    stored = np.array([[-2000, 0, 1064, 9000]], dtype=np.int16)
    hu = dicom.stored_to_hu(stored, slope=1.0, intercept=-1024.0, padding=(-2000, -2000))
    assert hu.tolist() == [[-1024, -1024, 40, 3071]]


def _stored_to_hu_reference(stored, *, padding, **params):
    """stored_to_hu as it was: every sample in the padding range, by float comparison, set to
    air (the conversion without padding is unchanged)."""
    hu = dicom.stored_to_hu(stored, padding=None, **params)
    low, high = sorted(padding)
    hu[(stored >= low) & (stored <= high)] = -1024.0
    return hu


def test_stored_to_hu_padding_shortcuts_give_the_same_hu() -> None:
    """Padding that is air anyway is left to the clip, and the mask compares in the samples'
    integer type: the same HU as the mask built with float bounds, whatever the type, slope,
    intercept and padding (random cases, and the edges of each type)."""
    rng = np.random.default_rng(7)
    for case in range(400):
        dtype = np.dtype(rng.choice(["<i2", "<u2", "<i4", "u1", "<f4"]))
        lo_v, hi_v = ((-3000, 5000) if dtype.kind == "f"
                      else (max(np.iinfo(dtype).min, -70000), min(np.iinfo(dtype).max, 70000)))
        px = rng.integers(lo_v, hi_v, size=(6, 7), endpoint=True).astype(dtype)
        slope = float(rng.choice([1.0, 0.5, 2.0, -1.0, 1.0000001]))
        intercept = float(rng.choice([-1024.0, -1000.0, 0.0, -3000.5, 24.0]))
        pad = sorted(rng.choice([lo_v, hi_v, -2000, -3024, 0, 4095, 10.5, -2000.5, 70000, -70000],
                                size=2).tolist())
        if case % 5 == 0:
            px.flat[:4] = np.array([pad[0], pad[1], lo_v, hi_v]).clip(lo_v, hi_v).astype(dtype)
        bits = int(rng.choice([12, 16]))
        rep = 0 if dtype.kind == "u" else int(rng.choice([0, 1]))
        got = dicom.stored_to_hu(px, slope=slope, intercept=intercept, bits_stored=bits,
                                 pixel_representation=rep, padding=tuple(pad))
        want = _stored_to_hu_reference(px, slope=slope, intercept=intercept, bits_stored=bits,
                                       pixel_representation=rep, padding=tuple(pad))
        np.testing.assert_array_equal(got, want, err_msg=f"case {case}")


def test_nan_in_float_pixel_data_raises(tmp_path: Path) -> None:
    pixels = PHANTOM.copy()
    pixels[3, 3] = math.nan
    path = write(make_ct_dataset(pixels=pixels, RescaleIntercept=0), tmp_path / "a.dcm")
    with pytest.raises(InvalidInputError, match="NaN"):
        dicom.read_hu(path)


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless])
def test_compressed_syntaxes_round_trip(tmp_path: Path, syntax: str) -> None:
    ds = make_ct_dataset()
    try:
        ds.compress(syntax)
    except (NotImplementedError, RuntimeError) as err:
        pytest.skip(f"no encoder installed for {syntax}: {err}")
    path = write(ds, tmp_path / "c.dcm")
    series = dicom.read_series(path)
    np.testing.assert_array_equal(series.load_hu(0), PHANTOM)


def test_unsupported_transfer_syntax(tmp_path: Path) -> None:
    ds = make_ct_dataset()
    ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.100")  # MPEG2, no decoder
    ds.PixelData = encapsulate([b"\x00" * 64])
    path = write(ds, tmp_path / "mpeg.dcm")
    with pytest.raises(UnsupportedTransferSyntaxError, match="mpeg.dcm.*MPEG2"):
        dicom.scan(path)
    with pytest.raises(UnsupportedTransferSyntaxError, match="MPEG2"):
        dicom.read_hu(path)


# ---------------------------------------------------------------------------------------------
# Uncompressed slices read straight from the file (dicom.NativePixels)


def _native_cases() -> dict[str, tuple[Any, bool]]:
    """name -> (data set, whether the scan may read its pixels without pydicom)."""
    unsigned = make_ct_dataset(pixels=(PHANTOM + 1024).astype(np.uint16) | 0xF000,
                               BitsStored=12, PixelRepresentation=0)
    signed12 = make_ct_dataset(
        pixels=(PHANTOM.astype(np.int16) & 0x0FFF).astype(np.uint16).view(np.int16),
        BitsStored=12, RescaleIntercept=0)
    wrapped = make_ct_dataset(pixels=np.mod(np.maximum(PHANTOM, -1000).astype(np.int32), 4096),
                              BitsStored=12, PixelRepresentation=0, RescaleIntercept=0)
    padded = make_ct_dataset(
        pixels=np.where(PHANTOM < -500, -2000, PHANTOM + 1000).astype(np.int16))
    padded.add_new(0x00280120, "SS", -2000)  # Pixel Padding Value
    scaled = make_ct_dataset(pixels=((PHANTOM + 1024) // 2).astype(np.int16), RescaleSlope=2)
    implicit = make_ct_dataset()
    implicit.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2")
    eight = make_ct_dataset(BitsAllocated=8, BitsStored=8, PixelRepresentation=0,
                            RescaleIntercept=-100)
    eight.PixelData = np.clip(PHANTOM + 100, 0, 255).astype(np.uint8).tobytes()
    wide = make_ct_dataset(BitsAllocated=32, BitsStored=20)
    wide.PixelData = ((PHANTOM.astype(np.int32) + 1024) | (0x7FF << 20)).astype("<i4").tobytes()
    big = make_ct_dataset()
    big.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.2")  # Explicit VR Big Endian
    lut = make_ct_dataset(RescaleSlope=None, RescaleIntercept=None)
    lut.ModalityLUTSequence = [Dataset()]
    lut.ModalityLUTSequence[0].LUTDescriptor = [4096, 0, 16]
    lut.ModalityLUTSequence[0].ModalityLUTType = "HU"
    lut.ModalityLUTSequence[0].add_new(0x00283006, "US", list(range(4096)))  # LUT Data
    return {
        "signed 16-bit": (make_ct_dataset(), True),
        "unsigned 12-bit, garbage above bit 11": (unsigned, True),
        "signed 12-bit": (signed12, True),
        "RSNA 12-bit wrap": (wrapped, True),
        "padding value": (padded, True),
        "rescale slope 2": (scaled, True),
        "implicit VR": (implicit, True),
        "8-bit": (eight, True),
        "32-bit, 20 stored": (wide, True),
        "big endian": (big, False),
        "float pixel data": (make_ct_dataset(pixels=PHANTOM, RescaleIntercept=0), False),
        "modality LUT": (lut, False),
    }


@pytest.mark.parametrize("case", list(_native_cases()))
def test_scanned_slice_reads_as_read_hu(tmp_path: Path, case: str) -> None:
    ds, native = _native_cases()[case]
    path = write(ds, tmp_path / "a.dcm")
    (series,) = dicom.scan(path).series
    info = series.slices[0]
    assert (info.native is not None) == native
    expected = dicom.read_hu(path)
    got = dicom.read_slice_hu(info)
    assert got.dtype == expected.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(series.load_hu(0), expected)


def test_file_changed_since_the_scan_is_read_again(tmp_path: Path) -> None:
    path = write(make_ct_dataset(), tmp_path / "a.dcm")
    info = dicom.scan(path).series[0].slices[0]
    assert info.native is not None
    ds = make_ct_dataset(pixels=PHANTOM + 1024 + 7)
    ds.add_new(0x00091010, "LO", "a private element that moves the pixels")
    write(ds, path)
    os.utime(path, ns=(info.native.mtime_ns + 10**9, info.native.mtime_ns + 10**9))
    np.testing.assert_array_equal(dicom.read_slice_hu(info), PHANTOM + 7)
    os.remove(path)
    with pytest.raises(InvalidInputError, match="a.dcm.*cannot read file"):
        dicom.read_slice_hu(info)


# ---------------------------------------------------------------------------------------------
# Compressed single-frame slices decoded from the bytes the scan found (dicom.EncodedPixels)


def _compressed(ds: Dataset, syntax: str) -> Dataset:
    """``ds`` compressed: pydicom's encoders (RLE, JPEG 2000), else imagecodecs' (JPEG
    Lossless, JPEG-LS); skips where neither is installed for ``syntax``."""
    from pydicom import uid as uids

    if syntax in (uids.JPEGLosslessSV1, uids.JPEGLSLossless):
        imagecodecs = pytest.importorskip("imagecodecs", reason="no imagecodecs ([test] extra)")
        bits = int(ds.BitsStored)
        raw = (ds.pixel_array.astype(np.int64) & ((1 << bits) - 1)).astype(np.uint16)
        frame = (imagecodecs.jpeg8_encode(raw, lossless=True, bitspersample=bits)
                 if syntax == uids.JPEGLosslessSV1 else imagecodecs.jpegls_encode(raw, level=0))
        ds.PixelData = encapsulate([bytes(frame)])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = UID(syntax)
        return ds
    try:
        ds.compress(syntax)
    except (NotImplementedError, RuntimeError) as err:
        pytest.skip(f"no encoder installed for {syntax}: {err}")
    return ds


_ENCODED_SYNTAXES = ["1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", RLELossless,
                     JPEG2000Lossless]


@pytest.mark.parametrize("syntax", _ENCODED_SYNTAXES)
@pytest.mark.parametrize("case", ["signed 16-bit", "signed 12-bit", "RSNA 12-bit wrap",
                                  "padding value", "rescale slope 2"])
def test_scanned_compressed_slice_reads_as_read_hu(tmp_path: Path, monkeypatch, case: str,
                                                   syntax: str) -> None:
    """After the scan, a compressed slice is decoded from its bytes alone, to read_hu's HU."""
    ds, _ = _native_cases()[case]
    path = write(_compressed(ds, syntax), tmp_path / "a.dcm")
    (series,) = dicom.scan(path).series
    info = series.slices[0]
    assert info.native is None and info.encoded is not None
    expected = dicom.read_hu(path)
    monkeypatch.setattr(dicom, "read_hu", None)  # the full read is not what reads it
    got = dicom.read_slice_hu(info)
    assert got.dtype == expected.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


def test_compressed_slices_read_the_full_way_where_the_scan_cannot_help(tmp_path: Path) -> None:
    """A Modality LUT: no EncodedPixels, pydicom's full read."""
    lut, _ = _native_cases()["modality LUT"]
    path = write(_compressed(lut, RLELossless), tmp_path / "lut.dcm")
    (info,) = dicom.scan(path).series[0].slices
    assert info.encoded is None
    np.testing.assert_array_equal(dicom.read_slice_hu(info), dicom.read_hu(path))


def test_compressed_file_changed_or_broken_since_the_scan_is_read_again(tmp_path: Path) -> None:
    path = write(_compressed(make_ct_dataset(), RLELossless), tmp_path / "a.dcm")
    info = dicom.scan(path).series[0].slices[0]
    assert info.encoded is not None
    ds = _compressed(make_ct_dataset(pixels=(PHANTOM + 1024 + 7).astype(np.int16)), RLELossless)
    ds.add_new(0x00091010, "LO", "a private element that moves the pixels")
    write(ds, path)
    mtime = info.encoded.mtime_ns + 10**9
    os.utime(path, ns=(mtime, mtime))
    np.testing.assert_array_equal(dicom.read_slice_hu(info), PHANTOM + 7)
    # same size and time as scanned, pixel bytes garbled: the full read says why it fails
    path2 = write(_compressed(make_ct_dataset(), RLELossless), tmp_path / "b.dcm")
    info2 = dicom.scan(path2).series[0].slices[0]
    raw = bytearray(Path(path2).read_bytes())
    start = info2.encoded.offset + 8  # past the basic offset table's item header
    raw[start : info2.encoded.offset + info2.encoded.length] = b"\xff" * (
        info2.encoded.length - 8)
    Path(path2).write_bytes(bytes(raw))
    os.utime(path2, ns=(info2.encoded.mtime_ns, info2.encoded.mtime_ns))
    with pytest.raises(InvalidInputError, match="b.dcm.*cannot decode pixel data"):
        dicom.read_slice_hu(info2)


_HEADER_KEYWORDS = {
    "floats": ["RescaleSlope", "RescaleIntercept", "ImagePositionPatient", "PixelSpacing",
               "ImageOrientationPatient", "SliceThickness", "InstanceNumber", "Rows",
               "BitsStored", "PixelRepresentation", "NumberOfFrames", "PixelPaddingValue"],
    "uid": ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"],
    "code": ["Modality", "PhotometricInterpretation"],
    "strings": ["ImageType"],
}


def _header_values(ds) -> dict[str, Any]:
    read = {"floats": dicom._floats, "uid": dicom._uid, "code": dicom._code,
            "strings": dicom._strings}
    return {k: read[kind](ds, k) for kind, keys in _HEADER_KEYWORDS.items() for k in keys}


@pytest.mark.parametrize("case", ["explicit", "implicit", "odd strings"])
def test_header_values_read_from_bytes_as_pydicom_converts_them(tmp_path: Path,
                                                                case: str) -> None:
    """dicom._text reads elements pydicom has not converted from their bytes: the same
    values as after pydicom's conversion."""
    import pydicom

    ds = make_ct_dataset(ImageType=["ORIGINAL", "PRIMARY", "AXIAL", "HELICAL"])
    if case == "implicit":
        ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2")
    if case == "odd strings":
        ds.add_new(0x00281053, "DS", ["2.000000", "2"])  # Rescale Slope, multi-valued
        ds.add_new(0x00281052, "DS", " -1024.00 ")  # Rescale Intercept, padded
        ds.add_new(0x00200013, "IS", " 7")  # Instance Number
        ds.add_new(0x00280120, "SS", -2000)  # Pixel Padding Value
    path = write(ds, tmp_path / "a.dcm")
    raw = pydicom.dcmread(path, stop_before_pixels=True)
    converted = pydicom.dcmread(path, stop_before_pixels=True)
    list(converted)  # iterating converts every element
    assert _header_values(raw) == _header_values(converted)
    assert _header_values(raw)["RescaleSlope"] == ([2.0, 2.0] if case == "odd strings" else [1.0])


# ---------------------------------------------------------------------------------------------
# Multi-frame


def test_enhanced_multiframe_frames_become_ordered_slices(tmp_path: Path) -> None:
    zs = [4.0, 0.0, 6.0, 2.0]
    ds = make_enhanced_ct_dataset([(-8, -8, z) for z in zs], intercepts=[-1024, -1000] * 2)
    series = dicom.read_series(write(ds, tmp_path / "mf.dcm"))
    assert [s.frame for s in series.slices] == [2, 0, 3, 1]
    assert all(s.native is None for s in series.slices)  # frames are read by pydicom
    assert series.locations_mm.tolist() == [6.0, 4.0, 2.0, 0.0]
    assert series.spacing_mm == 2.0 and series.orientation == (1, 0, 0, 0, 1, 0)
    assert series.slices[0].pixel_spacing_mm == (0.5, 0.5)
    assert series.slices[0].slice_thickness_mm == 2.0
    images = list(series.iter_hu())
    for k, frame in enumerate([2, 0, 3, 1]):
        np.testing.assert_array_equal(images[k], phantom_hu() + 10 * frame)
        np.testing.assert_array_equal(series.load_hu(k), images[k])
    np.testing.assert_array_equal(dicom.read_hu(series.slices[0].path, frame=2), images[0])
    with pytest.raises(InvalidInputError, match="give a frame"):
        dicom.read_hu(series.slices[0].path)


# ---------------------------------------------------------------------------------------------
# Errors and skipped files


def test_not_dicom(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello, not an image\n" * 20)
    with pytest.raises(NotDicomError, match="notes.txt"):
        dicom.scan(text)
    result = dicom.scan(tmp_path)
    assert result.series == [] and result.failures == []
    assert [s.kind for s in result.skipped] == ["NotDicomError"]


def test_dicom_recognised_by_content_without_extension_or_preamble(tmp_path: Path) -> None:
    write(make_ct_dataset(), tmp_path / "IMG0001")
    write(make_ct_dataset(ImagePositionPatient=[-8, -8, 5]), tmp_path / "raw", preamble=False)
    series = dicom.read_series(tmp_path)
    assert len(series.slices) == 2
    np.testing.assert_array_equal(series.load_hu(1), PHANTOM)


def test_truncated_files(tmp_path: Path) -> None:
    data = Path(write(make_ct_dataset(), tmp_path / "whole.dcm")).read_bytes()
    (tmp_path / "cut_pixels.dcm").write_bytes(data[:-100])
    (tmp_path / "cut_header.dcm").write_bytes(data[:140])
    (tmp_path / "empty.dcm").write_bytes(b"")
    with pytest.raises(InvalidInputError, match="cut_pixels.dcm: truncated"):
        dicom.scan(tmp_path / "cut_pixels.dcm")
    with pytest.raises(InvalidInputError, match="cut_header.dcm"):
        dicom.scan(tmp_path / "cut_header.dcm")
    result = dicom.scan(tmp_path, on_error="collect")
    failed = sorted(Path(f.path).name for f in result.failures)
    assert failed == ["cut_header.dcm", "cut_pixels.dcm", "empty.dcm"]
    assert len(result.series) == 1


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"Modality": "MR"}, "modality MR, not CT"),
        ({"PixelData": None}, r"no \(7FE0,0010\) Pixel Data"),
        ({"SamplesPerPixel": 3, "PhotometricInterpretation": "RGB"}, "colour image"),
    ],
)
def test_invalid_images(tmp_path: Path, overrides: dict[str, Any], match: str) -> None:
    path = write(make_ct_dataset(**overrides), tmp_path / "bad.dcm")
    with pytest.raises(InvalidInputError, match=f"bad.dcm: {match}"):
        dicom.scan(path)
    result = dicom.scan(tmp_path, on_error="collect")
    assert result.series == [] and len(result.failures) == 1
    assert result.failures[0].kind == "InvalidInputError"


def test_non_image_sop_class_and_localizer_are_skipped_in_folders(tmp_path: Path) -> None:
    _series_files(tmp_path, [0.0, 5.0])
    sr = make_ct_dataset(SOPClassUID="1.2.840.10008.5.1.4.1.1.88.67", Modality="SR")
    sr_path = write(sr, tmp_path / "dose.dcm")
    scout = make_ct_dataset(ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"])
    write(scout, tmp_path / "scout.dcm")
    result = dicom.scan(tmp_path)
    assert len(result.series) == 1 and len(result.series[0].slices) == 2
    skipped = {Path(s.path).name: s for s in result.skipped}
    assert set(skipped) == {"dose.dcm", "scout.dcm"}
    assert "Radiation Dose SR" in skipped["dose.dcm"].reason
    assert "localizer" in skipped["scout.dcm"].reason
    with pytest.raises(NotAnImageError, match="dose.dcm"):
        dicom.scan(sr_path)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no such file"):
        dicom.scan(tmp_path / "nope")
    result = dicom.scan([tmp_path / "nope"], on_error="collect")
    assert result.failures[0].path.endswith("nope")


def test_messages_never_name_the_patient(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    _series_files(tmp_path / "a", [0.0, 5.0, 20.0])  # a gap
    write(make_ct_dataset(Modality="MR"), tmp_path / "mr.dcm")
    write(make_ct_dataset(RescaleSlope=None), tmp_path / "b" / "x.dcm")
    write(make_ct_dataset(), tmp_path / "b" / "y.dcm")  # duplicate position
    result = dicom.scan(tmp_path, on_error="collect")
    texts = [f.reason for f in result.failures] + [w for s in result.series for w in s.warnings]
    texts.append(caplog.text)
    assert len(texts) >= 3
    for text in texts:
        assert not any(secret in text for secret in SECRETS), text


# ---------------------------------------------------------------------------------------------
# Grouping and ordering


def test_two_series_in_nested_folders(tmp_path: Path) -> None:
    _series_files(tmp_path / "x" / "y" / "z", [0.0, 10.0, 5.0])
    other = str(generate_uid())
    _series_files(tmp_path / "w", [3.0, 1.0], SeriesInstanceUID=other)
    result = dicom.scan(tmp_path)
    by_uid = {s.series_uid: s for s in result.series}
    assert set(by_uid) == {SERIES_UID, other}
    assert by_uid[SERIES_UID].locations_mm.tolist() == [10.0, 5.0, 0.0]
    assert by_uid[SERIES_UID].spacing_mm == 5.0
    assert [s.instance_number for s in by_uid[SERIES_UID].slices] == [2, 3, 1]
    assert by_uid[other].locations_mm.tolist() == [3.0, 1.0]
    with pytest.raises(InvalidInputError, match="found 2"):
        dicom.read_series(tmp_path)
    assert dicom.read_series(tmp_path, series_uid=other).series_uid == other


def test_symlink_loop_does_not_hang(tmp_path: Path) -> None:
    _series_files(tmp_path / "d", [0.0, 5.0])
    os.symlink(tmp_path, tmp_path / "d" / "loop")
    os.symlink(tmp_path / "d" / "f000_0.dcm", tmp_path / "d" / "alias.dcm")
    series = dicom.read_series(tmp_path)
    assert len(series.slices) == 2 and series.warnings == []


def test_ordering_uses_projection_on_tilted_normal(tmp_path: Path) -> None:
    tilt = math.radians(30)
    row = np.array([1.0, 0.0, 0.0])
    col = np.array([0.0, math.cos(tilt), -math.sin(tilt)])
    normal = np.cross(row, col)
    shifts = [0.0, 9.0, -9.0, 4.0]  # in-plane shifts scramble the raw z order
    for k, shift in enumerate(shifts):
        pos = k * 2.0 * normal + shift * col
        ds = make_ct_dataset(
            ImagePositionPatient=pos.round(6).tolist(),
            ImageOrientationPatient=[*row, *col.round(8)],
            InstanceNumber=k + 1,
        )
        write(ds, tmp_path / f"{k}.dcm")
    series = dicom.read_series(tmp_path)
    assert [s.instance_number for s in series.slices] == [4, 3, 2, 1]
    np.testing.assert_allclose(series.locations_mm, [6, 4, 2, 0], atol=1e-5)
    assert series.spacing_mm == pytest.approx(2.0)


def test_gap_warning_names_the_location(tmp_path: Path) -> None:
    _series_files(tmp_path, [0.0, 1.0, 2.0, 3.0, 5.0, 6.0])
    series = dicom.read_series(tmp_path)
    assert series.spacing_mm == 1.0
    (gap,) = series.warnings
    assert "gap of 2 mm" in gap and "5.00 .. 3.00 mm" in gap


def test_duplicate_sop_instance_kept_once(tmp_path: Path) -> None:
    uid = str(generate_uid())
    write(make_ct_dataset(SOPInstanceUID=uid), tmp_path / "a.dcm")
    write(make_ct_dataset(SOPInstanceUID=uid), tmp_path / "copy" / "a.dcm")
    write(make_ct_dataset(ImagePositionPatient=[-8, -8, 5]), tmp_path / "b.dcm")
    series = dicom.read_series(tmp_path)
    assert len(series.slices) == 2
    assert any("same SOP Instance UID twice" in w for w in series.warnings)


def test_different_images_at_same_position(tmp_path: Path) -> None:
    _series_files(tmp_path, [0.0, 5.0, 5.005])
    with pytest.raises(SeriesOrderError, match=r"duplicate slice positions at 5\.0\d mm: files"):
        dicom.scan(tmp_path)
    result = dicom.scan(tmp_path, on_error="collect")
    assert result.series == [] and result.failures[0].kind == "SeriesOrderError"
    assert result.failures[0].path == str(tmp_path)


def test_missing_positions_are_reported_not_guessed(tmp_path: Path) -> None:
    _series_files(tmp_path, [0.0, 5.0, 10.0], ImagePositionPatient=None)
    with pytest.raises(SeriesOrderError, match="cannot order 3 slices safely.*missing in 3"):
        dicom.scan(tmp_path)
    _series_files(tmp_path / "some", [0.0, 5.0])
    os.remove(_series_files(tmp_path / "some", [0.0, 5.0])[1])
    write(make_ct_dataset(ImagePositionPatient=None), tmp_path / "some" / "nopos.dcm")
    result = dicom.scan(tmp_path / "some", on_error="collect")
    assert result.series == [] and result.failures[0].kind == "SeriesOrderError"
    assert "nopos.dcm" in result.failures[0].reason


def test_no_positions_and_no_instance_numbers(tmp_path: Path) -> None:
    _series_files(tmp_path, [0.0, 5.0], ImagePositionPatient=None, InstanceNumber=None)
    with pytest.raises(SeriesOrderError, match="cannot order 2 slices"):
        dicom.scan(tmp_path)


def test_single_slice_needs_no_position(tmp_path: Path) -> None:
    write(make_ct_dataset(ImagePositionPatient=None, InstanceNumber=None), tmp_path / "a.dcm")
    series = dicom.read_series(tmp_path)
    assert len(series.slices) == 1 and series.spacing_mm is None


def test_mixed_orientations_are_reported(tmp_path: Path) -> None:
    _series_files(tmp_path, [0.0, 5.0])
    coronal = make_ct_dataset(ImageOrientationPatient=[1, 0, 0, 0, 0, -1])
    write(coronal, tmp_path / "coronal.dcm")
    with pytest.raises(SeriesOrderError, match="mixed orientations"):
        dicom.scan(tmp_path)


# ---------------------------------------------------------------------------------------------
# Real scans (../shared/data)

RSNA_NAMES = [
    "ID_0000aee4b", "ID_0000f1657", "ID_000a050f3", "ID_000a18499", "ID_000a33979",
    "ID_000a631d3", "ID_000a67924", "ID_000a70199", "ID_000a8ee70", "ID_000a901b7",
    "ID_000aa2bce", "ID_000abce0a", "ID_000ada5fc", "ID_000b11513", "ID_000b53a57",
    "ID_000b64471", "ID_000b76199", "ID_000b98b60", "ID_000bd98e8", "ID_52c9913b1",
    "ID_63eb1e259", "ID_7eb52350d", "ID_c3378ddd1",
]  # fmt: skip


@pytest.mark.shared_data
@pytest.mark.parametrize("name", RSNA_NAMES)
def test_rsna_sample_hu(shared_data: Path, name: str) -> None:
    hu = dicom.read_hu(shared_data / "rsna-samples" / f"{name}.dcm")
    assert hu.dtype == np.float32 and hu.shape == (512, 512)
    assert hu.min() >= -1024 and hu.max() <= 3071
    centre = hu[128:384, 128:384]
    soft = centre[(centre > -100) & (centre < 150)]
    assert soft.size > 1000
    assert 0 <= np.median(soft) <= 60
    assert np.median(hu[:8]) < -900  # top rows: air or padding


@pytest.mark.shared_data
def test_rsna_samples_read_straight_from_the_file(shared_data: Path) -> None:
    """Both RSNA pixel layouts, Implicit and Explicit VR: every sample is read without pydicom
    after the scan, to the same HU as pydicom's full read, and its header values read from
    their bytes are those pydicom converts."""
    import pydicom

    result = dicom.scan(shared_data / "rsna-samples")
    for series in result.series:
        (info,) = series.slices
        assert info.native is not None, info.path
        np.testing.assert_array_equal(dicom.read_slice_hu(info), dicom.read_hu(info.path))
        raw = pydicom.dcmread(info.path, stop_before_pixels=True)
        converted = pydicom.dcmread(info.path, stop_before_pixels=True)
        with warnings.catch_warnings():  # RSNA's "ID_..." UIDs are not valid UIDs
            warnings.simplefilter("ignore")
            list(converted)  # iterating converts every element
        assert _header_values(raw) == _header_values(converted), info.path


@pytest.mark.shared_data
def test_cq500_slices_decode_from_the_scanned_bytes(shared_data: Path, monkeypatch) -> None:
    """Every slice of the real JPEG Lossless series: decoded from the bytes the scan found, to
    the HU of pydicom's full read, whichever JPEG Lossless decoder is installed first."""
    folder = shared_data / "cq500-ct0"
    if not folder.is_dir():
        pytest.skip("no CQ500 series in ../shared/data")
    monkeypatch.delenv(dicom.JPEG_LOSSLESS_DECODER_ENV, raising=False)
    (series,) = dicom.scan(folder).series
    assert len(series.slices) == 238
    full = {info.path: dicom.read_hu(info.path) for info in series.slices}
    monkeypatch.setattr(dicom, "read_hu", None)  # the full read is not what reads them
    for info in series.slices:
        assert info.encoded is not None, info.path
        np.testing.assert_array_equal(dicom.read_slice_hu(info), full[info.path],
                                      err_msg=info.path)


@pytest.mark.shared_data
def test_rsna_already_hu_file(shared_data: Path) -> None:
    hu = dicom.read_hu(shared_data / "rsna-samples" / "ID_000aa2bce.dcm")
    assert 25 <= np.median(hu[200:300, 200:300]) <= 40  # brain
    assert (hu == -1024).mean() > 0.1  # the -3024 padding became air


@pytest.mark.shared_data
def test_rsna_folder_scan(shared_data: Path) -> None:
    result = dicom.scan(shared_data / "rsna-samples")
    assert len(result.series) == 23 and not result.failures and not result.skipped
    assert all(len(s.slices) == 1 for s in result.series)


@pytest.mark.shared_data
def test_cq500_series(shared_data: Path) -> None:
    result = dicom.scan(shared_data / "cq500-ct0")
    assert not result.failures and not result.skipped
    (series,) = result.series
    assert len(series.slices) == 238
    locations = series.locations_mm
    assert np.all(np.diff(locations) < 0)  # head first, strictly monotonic
    z = [s.position_mm[2] for s in series.slices if s.position_mm is not None]
    assert z[0] == max(z) and z[-1] == min(z)
    # 0.625 mm table steps; along the tilted (8.5 deg) normal that is 0.625 * cos(8.5 deg)
    assert series.spacing_mm == pytest.approx(0.625, abs=0.01)
    gaps = [w for w in series.warnings if w.startswith("gap")]
    assert len(gaps) == 1 and len(series.warnings) == 1
    hu = series.load_hu(120)
    assert hu.shape == (512, 512) and hu.min() >= -1024
    assert 0 <= np.median(hu[200:300, 200:300]) <= 60
