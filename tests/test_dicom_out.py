"""DICOM SEG and Secondary Capture outputs: read back with pydicom and highdicom, references
checked slice by slice, and validated with dciodvfy (dicom3tools) when it is installed.

Assertion messages name tags, never the values of patient attributes.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from ichinfer.cli import app
from ichinfer.dicom_out import NOT_FOR_DIAGNOSIS, patient_orientation, write_dicom_outputs
from ichinfer.segmentation import Segmenter

PATIENT_STUDY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                 "StudyInstanceUID", "StudyDate", "StudyTime", "AccessionNumber", "StudyID")


def _check_outputs(segmentation, done, source_folder_first: Path) -> None:
    import highdicom as hd

    src = pydicom.dcmread(source_folder_first, stop_before_pixels=True)
    seg_ds = pydicom.dcmread(done.seg)
    # patient and study modules copied, so the PACS files the SEG with the study
    for kw in PATIENT_STUDY:
        if kw in src:
            assert seg_ds.get(kw) == src.get(kw), f"{kw} not copied into the SEG"
    assert seg_ds.SeriesInstanceUID != src.SeriesInstanceUID
    assert seg_ds.Modality == "SEG" and seg_ds.SegmentationType == "BINARY"
    assert "DERIVED" in seg_ds.ImageType
    assert seg_ds.SeriesDescription == NOT_FOR_DIAGNOSIS
    segment = seg_ds.SegmentSequence[0]
    assert segment.SegmentLabel == "Hemorrhage"
    assert segment.SegmentedPropertyTypeCodeSequence[0].CodeValue == "50960005"
    assert segment.SegmentedPropertyTypeCodeSequence[0].CodingSchemeDesignator == "SCT"
    assert seg_ds.ReferencedSeriesSequence[0].SeriesInstanceUID == segmentation.series_uid

    # highdicom reads it back; every frame maps to the right source slice and mask
    seg = hd.seg.segread(done.seg)
    referenced = {uid for _, _, uid in seg.get_source_image_uids()}
    bleeding = {sl.sop_instance_uid for sl in segmentation.slices if sl.mask.any()}
    assert bleeding <= referenced <= {sl.sop_instance_uid for sl in segmentation.slices}
    by_uid = {sl.sop_instance_uid: sl for sl in segmentation.slices}
    for frame in seg_ds.PerFrameFunctionalGroupsSequence[:400]:
        uid = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        assert uid in by_uid
    uids = sorted(bleeding)
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids,
                                               segment_numbers=[1])
    for k, uid in enumerate(uids):
        np.testing.assert_array_equal(pixels[k, ..., 0] > 0, by_uid[uid].mask > 0)
    # the SEG's plane positions are the source slices' (0020,0032) Image Position (Patient)
    for frame in seg_ds.PerFrameFunctionalGroupsSequence[:50]:
        uid = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        pos = [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient]
        src_ds = pydicom.dcmread(by_uid[uid].path, stop_before_pixels=True)
        np.testing.assert_allclose(pos, [float(v) for v in src_ds.ImagePositionPatient],
                                   atol=1e-3)

    # the overlay series: one SC image per bleeding slice, RGB, derived, same study
    assert len(done.overlays) == len(bleeding)
    sc_uids = set()
    for path in done.overlays[:20]:
        sc = pydicom.dcmread(path)
        assert sc.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
        assert list(sc.ImageType) == ["DERIVED", "SECONDARY"]
        assert sc.BurnedInAnnotation == "YES"
        assert sc.PhotometricInterpretation == "RGB" and sc.SamplesPerPixel == 3
        assert sc.SeriesDescription == NOT_FOR_DIAGNOSIS and "NOT FOR DIAGNOSIS" in sc.ImageComments
        assert sc.StudyInstanceUID == src.StudyInstanceUID
        assert sc.SeriesInstanceUID not in (src.SeriesInstanceUID, seg_ds.SeriesInstanceUID)
        for kw in PATIENT_STUDY:
            if kw in src:
                assert sc.get(kw) == src.get(kw), f"{kw} not copied into the overlay"
        ref = sc.SourceImageSequence[0].ReferencedSOPInstanceUID
        sl = by_uid[ref]
        assert sc.InstanceNumber == sl.index + 1
        rgb = sc.pixel_array
        assert rgb.shape == (*sl.mask.shape, 3)
        blue = (rgb[..., 2] > rgb[..., 0] + 40)
        assert blue[sl.mask > 0].mean() > 0.5  # the bleed is drawn where the mask is
        sc_uids.add(sc.SeriesInstanceUID)
    assert len(sc_uids) <= 1


def _dciodvfy_errors(path: Path) -> list[str]:
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
    lines = (run.stdout + run.stderr).splitlines()
    # only the Error lines are reported; they name attributes, not patient values
    return [line for line in lines if line.startswith("Error")]


def test_phantom_seg_and_overlays(phantom_study, tiny_model_dir, tmp_path):
    segmentation = Segmenter(model_dir=tiny_model_dir).segment(phantom_study.folder).series[0]
    assert any(sl.mask.any() for sl in segmentation.slices)
    done = write_dicom_outputs(segmentation, tmp_path, stem="s00")
    first = Path(segmentation.slices[0].path)
    _check_outputs(segmentation, done, first)
    if shutil.which("dciodvfy"):
        assert _dciodvfy_errors(done.seg) == []
        assert _dciodvfy_errors(done.overlays[0]) == []


@pytest.mark.skipif(shutil.which("dciodvfy") is None,
                    reason="dciodvfy (Debian package dicom3tools) is not installed")
def test_dciodvfy_accepts_outputs(phantom_study, tiny_model_dir, tmp_path):
    """CI installs dicom3tools, so there this always runs."""
    segmentation = Segmenter(model_dir=tiny_model_dir).segment(phantom_study.folder).series[0]
    done = write_dicom_outputs(segmentation, tmp_path, overlays="all")
    assert _dciodvfy_errors(done.seg) == []
    assert _dciodvfy_errors(done.overlays[0]) == []
    assert _dciodvfy_errors(done.overlays[-1]) == []


def test_cli_segment_dicom_out(phantom_study, tiny_model_dir, tmp_path):
    out, dcm = tmp_path / "seg", tmp_path / "dicom"
    res = CliRunner().invoke(app, ["segment", str(phantom_study.folder), "--out", str(out),
                                   "--model-dir", str(tiny_model_dir), "--dicom-out", str(dcm),
                                   "--subtypes", "--quiet"])
    assert res.exit_code == 0, res.output
    assert (dcm / "s00_seg.dcm").is_file()
    assert any((dcm / "s00_overlays").glob("*.dcm"))
    import json

    summary = json.loads((out / "summary.json").read_text())
    m = summary["series"][0]["measurements"]
    assert m["by_subtype"] is not None and m["n_bleeds"] >= 1
    # an existing SEG is not replaced without --overwrite
    again = CliRunner().invoke(app, ["segment", str(phantom_study.folder), "--out",
                                     str(tmp_path / "seg2"), "--model-dir", str(tiny_model_dir),
                                     "--dicom-out", str(dcm), "--quiet"])
    assert again.exit_code == 2


def test_empty_masks_still_make_a_valid_seg(phantom_study, tiny_model_dir, tmp_path):
    segmentation = Segmenter(model_dir=tiny_model_dir).segment(phantom_study.folder).series[0]
    for sl in segmentation.slices:
        sl.mask = np.zeros_like(sl.mask)
    done = write_dicom_outputs(segmentation, tmp_path)
    assert done.overlays == [] and done.sc_series_uid is None
    ds = pydicom.dcmread(done.seg)
    assert ds.NumberOfFrames == len(segmentation.slices)


def test_patient_orientation_letters():
    assert patient_orientation([1, 0, 0]) == "L"
    assert patient_orientation([0, 0.96, -0.28]) == "P"
    assert patient_orientation([0, -1, 0]) == "A"


@pytest.mark.shared_data
@pytest.mark.slow
def test_cq500_seg_references_tilted_series(shared_data, tiny_model_dir, tmp_path):
    """238 tilted, JPEG-lossless slices without a Frame of Reference UID: the SEG must refer
    to each slice's own SOP Instance UID, in the series' head-to-foot order."""
    folder = shared_data / "cq500-ct0"
    segmentation = Segmenter(model_dir=tiny_model_dir).segment(folder).series[0]
    assert len(segmentation.slices) == 238
    done = write_dicom_outputs(segmentation, tmp_path)
    _check_outputs(segmentation, done, Path(segmentation.slices[0].path))
    seg_ds = pydicom.dcmread(done.seg, stop_before_pixels=True)
    # frames follow the series order: their positions run head to foot along the slice normal
    o = np.array([float(v) for v in seg_ds.SharedFunctionalGroupsSequence[0]
                  .PlaneOrientationSequence[0].ImageOrientationPatient])
    normal = np.cross(o[:3], o[3:])
    z = [np.dot(normal, [float(v) for v in f.PlanePositionSequence[0].ImagePositionPatient])
         for f in seg_ds.PerFrameFunctionalGroupsSequence]
    assert np.all(np.diff(z) != 0) and (np.all(np.diff(z) > 0) or np.all(np.diff(z) < 0))
    assert "FrameOfReferenceUID" in seg_ds
    if shutil.which("dciodvfy"):
        assert _dciodvfy_errors(done.seg) == []
        assert _dciodvfy_errors(done.overlays[0]) == []


def test_dicom_out_without_highdicom_is_one_clear_error(phantom_study, tiny_model_dir, tmp_path,
                                                        monkeypatch):
    """highdicom is the [seg] extra: without it --dicom-out stops before any work, exit 2."""
    import sys

    monkeypatch.setitem(sys.modules, "highdicom", None)  # import highdicom -> ImportError
    out = tmp_path / "seg"
    res = CliRunner().invoke(app, ["segment", str(phantom_study.folder), "--out", str(out),
                                   "--model-dir", str(tiny_model_dir), "--dicom-out",
                                   str(tmp_path / "dicom")])
    assert res.exit_code == 2, res.output
    assert "pip install 'ichinfer[seg]'" in res.output
    assert not (out / "summary.json").exists() and not (tmp_path / "dicom").exists()


def test_highdicom_module_table_is_the_standard_s_one_parsed_lazily() -> None:
    """ichinfer points highdicom at a lazy table of the standard's modules (its full parse held
    ~60 MiB for the life of the process): every module must read as in the full parse."""
    import json
    import pkgutil

    from ichinfer.dicom_out import require_highdicom
    from ichinfer.highdicom_table import ModuleTable

    hd = require_highdicom()
    import highdicom.base
    from highdicom import _standard_utils

    raw = pkgutil.get_data("highdicom", "_standard/module_attribute_map.json").decode("utf-8")
    full = json.loads(raw)
    table = _standard_utils.get_module_attribute_map()
    assert isinstance(table, ModuleTable)
    assert highdicom.base.get_module_attribute_map() is table and hd is highdicom
    assert list(table) == list(full) and len(table) == len(full)
    assert all(table[k] == full[k] for k in full)
    assert "no-such-module" not in table
