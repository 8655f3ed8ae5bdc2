"""Tests of ichinfer.nifti: HU scaling, geometry, orientation and errors of NIfTI volumes."""

from __future__ import annotations

import struct
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from dicom_factory import make_ct_dataset, write
from nibabel.orientations import axcodes2ornt, ornt_transform

from ichinfer import dicom, nifti
from ichinfer.errors import InvalidInputError

ZOOMS = (0.5, 0.6, 2.0)
OFFSET = (-10.0, 20.0, 30.0)


def _ras_affine() -> np.ndarray:
    affine = np.diag([*ZOOMS, 1.0])
    affine[:3, 3] = OFFSET
    return affine


def _raw_volume() -> np.ndarray:
    """int16 stored values (x, y, z) = (6, 5, 4); each voxel unique, one marker voxel."""
    raw = (np.arange(6 * 5 * 4, dtype=np.int16).reshape(6, 5, 4) + 520).astype(np.int16)
    raw[1, 3, 2] = 1000
    return raw


def _write_scaled(
    path: Path, raw: np.ndarray, affine: np.ndarray, slope: float, inter: float
) -> Path:
    """Save ``raw`` unscaled, then patch scl_slope / scl_inter (bytes 112..119) in the header."""
    nib.save(nib.Nifti1Image(raw, affine), path)
    data = bytearray(path.read_bytes())
    struct.pack_into("<ff", data, 112, slope, inter)
    path.write_bytes(bytes(data))
    return path


def test_round_trip_hu_geometry_and_scaling(tmp_path: Path) -> None:
    path = _write_scaled(tmp_path / "vol.nii", _raw_volume(), _ras_affine(), 2.0, -1024.0)
    series = dicom.read_series(path)
    assert series.source == "nifti" and len(series.slices) == 4
    assert series.orientation == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    assert series.spacing_mm == pytest.approx(2.0)
    first = series.slices[0]
    assert (first.rows, first.columns) == (5, 6)
    assert first.pixel_spacing_mm == pytest.approx((0.6, 0.5))
    assert first.slice_thickness_mm == pytest.approx(2.0)
    assert [s.frame for s in series.slices] == [3, 2, 1, 0]  # head first
    assert [s.sop_instance_uid for s in series.slices] == ["vol.3", "vol.2", "vol.1", "vol.0"]
    np.testing.assert_allclose(series.locations_mm, [36, 34, 32, 30])
    # (row 0, col 0) is anterior-right: RAS (x_max, y_max) -> LPS (-x_max, -y_max)
    assert first.position_mm == pytest.approx((10 - 2.5, -20 - 2.4, 36.0))
    expected = _raw_volume().astype(np.float64) * 2 - 1024
    images = list(series.iter_hu())
    for k, image in enumerate(images):
        assert image.dtype == np.float32 and image.shape == (5, 6)
        stored = series.slices[k].frame
        # rows run anterior -> posterior (y descending), columns right -> left (x descending)
        np.testing.assert_allclose(image, expected[::-1, ::-1, stored].T)
        np.testing.assert_array_equal(series.load_hu(k), image)
    marker = np.argwhere(images[1] == 1000 * 2 - 1024)
    assert marker.tolist() == [[1, 4]]  # RAS (-9.5, 21.8, 34) = LPS (9.5, -21.8, 34)
    pos = series.slices[1].position_mm
    assert pos is not None
    assert pos[0] + 4 * 0.5 == pytest.approx(9.5) and pos[1] + 1 * 0.6 == pytest.approx(-21.8)


@pytest.mark.parametrize("axcodes", [("L", "P", "S"), ("S", "A", "R"), ("P", "I", "L")])
def test_stored_orientation_does_not_change_the_images(
    tmp_path: Path, axcodes: tuple[str, str, str]
) -> None:
    raw = _raw_volume()
    canonical = nib.Nifti1Image(raw, _ras_affine())
    nib.save(canonical, tmp_path / "ras.nii")
    transform = ornt_transform(axcodes2ornt(("R", "A", "S")), axcodes2ornt(axcodes))
    other = canonical.as_reoriented(transform)
    assert not np.allclose(other.affine, canonical.affine)
    nib.save(other, tmp_path / "other.nii.gz")
    a, b = dicom.read_series(tmp_path / "ras.nii"), dicom.read_series(tmp_path / "other.nii.gz")
    assert b.orientation == pytest.approx(a.orientation)
    np.testing.assert_allclose(b.locations_mm, a.locations_mm)
    for sa, sb in zip(a.slices, b.slices, strict=True):
        assert sb.position_mm == pytest.approx(sa.position_mm)
        assert sb.pixel_spacing_mm == pytest.approx(sa.pixel_spacing_mm)
    for ia, ib in zip(a.iter_hu(), b.iter_hu(), strict=True):
        np.testing.assert_array_equal(ia, ib)
    np.testing.assert_array_equal(a.load_hu(2), b.load_hu(2))


def test_float_volume_is_cleaned(tmp_path: Path) -> None:
    vol = np.full((4, 4, 2), 40.0, dtype=np.float32)
    vol[0, 0, 0], vol[1, 1, 1] = -3024.0, 5000.0
    nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / "f.nii")
    images = list(dicom.read_series(tmp_path / "f.nii").iter_hu())
    assert min(i.min() for i in images) == -1024 and max(i.max() for i in images) == 3071
    vol[2, 2, 0] = np.nan
    nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / "nan.nii")
    series = dicom.read_series(tmp_path / "nan.nii")
    with pytest.raises(InvalidInputError, match="nan.nii.*NaN"):
        list(series.iter_hu())
    with pytest.raises(InvalidInputError, match="NaN"):
        series.load_hu(1)  # z index 0 is the inferior slice


def test_four_d(tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3, 1), np.int16), np.eye(4)), tmp_path / "one.nii")
    series = dicom.read_series(tmp_path / "one.nii")
    assert len(series.slices) == 3 and series.load_hu(0).shape == (4, 4)
    assert len(list(series.iter_hu())) == 3
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3, 2), np.int16), np.eye(4)), tmp_path / "two.nii")
    with pytest.raises(InvalidInputError, match=r"two.nii: NIfTI shape \(4, 4, 3, 2\)"):
        dicom.scan(tmp_path / "two.nii")


def test_broken_header(tmp_path: Path) -> None:
    (tmp_path / "broken.nii").write_bytes(b"\x00" * 400)
    (tmp_path / "broken2.nii.gz").write_bytes(b"not gzip at all")
    for name in ("broken.nii", "broken2.nii.gz"):
        with pytest.raises(InvalidInputError, match=name):
            dicom.scan(tmp_path / name)
    result = dicom.scan(tmp_path, on_error="collect")
    assert len(result.failures) == 2 and result.series == []


def test_uids_are_deterministic_and_valid(tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 2), np.int16), np.eye(4)), tmp_path / "a.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 2), np.int16), np.eye(4)), tmp_path / "b.nii.gz")
    a1 = nifti.read_nifti_series(tmp_path / "a.nii.gz")
    a2 = dicom.read_series(tmp_path / "a.nii.gz")
    b = nifti.read_nifti_series(tmp_path / "b.nii.gz")
    assert (a1.study_uid, a1.series_uid) == (a2.study_uid, a2.series_uid)
    assert a1.series_uid != b.series_uid and a1.study_uid != a1.series_uid
    for uid in (a1.study_uid, a1.series_uid):
        assert uid.startswith("2.25.") and len(uid) <= 64 and uid.replace(".", "").isdigit()
    assert a1.slices[0].sop_instance_uid == "a.1"


def test_folder_with_nifti_and_dicom(tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 2), np.int16), np.eye(4)), tmp_path / "v.nii.gz")
    write(make_ct_dataset(), tmp_path / "d" / "a.dcm")
    result = dicom.scan(tmp_path)
    assert sorted(s.source for s in result.series) == ["dicom", "nifti"]
    assert nifti.is_nifti_path("x/SCAN.NII.GZ") and not nifti.is_nifti_path("x.nii.txt")


def test_without_nibabel_a_nifti_file_fails_alone_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """nibabel is the [nifti] extra: without it a NIfTI file fails, naming the file and the
    extra, and the DICOM beside it is still read."""
    import sys

    import ichinfer
    from ichinfer.errors import MissingDependencyError

    nib.save(nib.Nifti1Image(np.zeros((4, 4, 2), np.int16), np.eye(4)), tmp_path / "v.nii.gz")
    write(make_ct_dataset(), tmp_path / "d" / "a.dcm")
    monkeypatch.setitem(sys.modules, "nibabel", None)  # import nibabel raises ImportError
    monkeypatch.delitem(sys.modules, "ichinfer.nifti")
    monkeypatch.delattr(ichinfer, "nifti")
    result = dicom.scan(tmp_path, on_error="collect")
    assert [s.source for s in result.series] == ["dicom"]
    (failure,) = result.failures
    assert failure.path.endswith("v.nii.gz") and "pip install 'ichinfer[nifti]'" in failure.reason
    with pytest.raises(MissingDependencyError, match="ichinfer\\[nifti\\]"):
        dicom.scan(tmp_path / "v.nii.gz")
