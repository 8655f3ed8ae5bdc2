"""Tests for the head-CT phantom generator (training/synth.py) and the PNG helpers."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pydicom
import pytest

from training.pngio import read_png, write_png
from training.synth import (
    MIN_LABEL_AREA_MM2,
    RSNA_LABELS,
    Pose,
    generate,
    make_study,
    orientation_for_tilt,
    slice_normal,
    tilted_frame,
    write_study,
)
from training.synth_anatomy import HeadModel, Lattice, sample_head
from training.synth_dicom import ENCODINGS, PADDING_HU


def _hu(ds: pydicom.Dataset) -> np.ndarray:
    """(0028,1053) Rescale Slope and (0028,1052) Rescale Intercept applied to the pixels."""
    return ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


@pytest.fixture(scope="module")
def small_positive():
    return make_study(7, size=64, positive=True, thin=False)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantoms")
    generate(out, 2, 11, size=64, positive_fraction=1.0, thin_fraction=0.0)
    return out


def test_png_roundtrip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for img in (
        rng.integers(0, 256, (17, 23), dtype=np.uint8),
        rng.integers(0, 256, (9, 5, 3), dtype=np.uint8),
    ):
        write_png(tmp_path / "a.png", img)
        np.testing.assert_array_equal(read_png(tmp_path / "a.png"), img)


def test_make_study_is_deterministic(small_positive) -> None:
    again = make_study(7, size=64, positive=True, thin=False)
    np.testing.assert_array_equal(again.hu, small_positive.hu)
    np.testing.assert_array_equal(again.labels, small_positive.labels)
    np.testing.assert_array_equal(again.positions, small_positive.positions)
    assert again.volumes_ml == small_positive.volumes_ml
    other = make_study(8, size=64, positive=True, thin=False)
    assert other.hu.shape != again.hu.shape or not np.array_equal(other.hu, again.hu)


def test_study_k_does_not_depend_on_study_count(tmp_path: Path, generated: Path) -> None:
    generate(tmp_path, 1, 11, size=64, positive_fraction=1.0, thin_fraction=0.0)
    with open(tmp_path / "studies.csv") as a, open(generated / "studies.csv") as b:
        assert next(csv.DictReader(a)) == next(csv.DictReader(b))
    for f in (tmp_path / "stage_2_train").glob("*.dcm"):
        assert f.read_bytes() == (generated / "stage_2_train" / f.name).read_bytes()


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_files_read_back_with_hu_in_range(tmp_path: Path, small_positive, encoding: str) -> None:
    small_positive.params["encoding"] = encoding
    try:
        rec = write_study(small_positive, tmp_path, study_index=3)
    finally:
        small_positive.params["encoding"] = "s16"
    assert len(rec.ids) == small_positive.n_slices
    for k in (0, small_positive.n_slices // 2):
        path = tmp_path / "stage_2_train" / f"{rec.ids[k]}.dcm"
        ds = pydicom.dcmread(path)
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.SOPClassUID == ds.file_meta.MediaStorageSOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
        assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
        for u in (ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID):
            assert pydicom.uid.UID(u).is_valid
        assert ds.Modality == "CT" and ds.PatientID == "PHANTOM-0003"
        assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "AXIAL"]
        assert "ichinfer synthetic phantom" in ds.ImageComments
        assert ds.InstanceNumber == k + 1 and ds.RescaleType == "HU"
        hu = _hu(ds)
        inside = small_positive.in_fov
        assert hu[inside].min() >= -1024 and hu[inside].max() <= 3071
        expected = np.clip(np.rint(small_positive.hu[k]), -1024, 3071)
        np.testing.assert_allclose(hu[inside], expected[inside], atol=1.0)
        outside = hu[~inside]
        if encoding == "u12":
            assert ds.BitsStored == 12 and ds.PixelRepresentation == 0
            assert (outside == -1024).all()
        else:
            assert ds.BitsStored == 16 and ds.PixelRepresentation == 1
            assert (outside == PADDING_HU).all()


def test_label_csv_matches_masks(generated: Path) -> None:
    with open(generated / "stage_2_train.csv") as fh:
        reader = csv.reader(fh)
        assert next(reader) == ["ID", "Label"]
        rows = list(reader)
    labels: dict[str, dict[str, int]] = {}
    for rid, val in rows:
        stem, _, name = rid.rpartition("_")
        labels.setdefault(stem, {})[name] = int(val)
    dcms = sorted((generated / "stage_2_train").glob("*.dcm"))
    assert len(labels) == len(dcms) == len(rows) // 6
    assert [r[0].rpartition("_")[2] for r in rows[:6]] == list(RSNA_LABELS)
    positives = 0
    for f in dcms:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        mask = read_png(generated / "masks" / f"{f.stem}.png")
        assert mask.shape == (ds.Rows, ds.Columns) and mask.max() <= 5
        area = float(ds.PixelSpacing[0]) * float(ds.PixelSpacing[1])
        lab = labels[f.stem]
        for code, name in enumerate(RSNA_LABELS[:5], start=1):
            assert lab[name] == int((mask == code).sum() * area >= MIN_LABEL_AREA_MM2), f.stem
        assert lab["any"] == max(lab[n] for n in RSNA_LABELS[:5])
        positives += lab["any"]
    assert positives > 0


def test_true_volume_matches_mask_count() -> None:
    study = make_study(6, size=128, positive=True, thin=False)
    assert study.thickness_mm >= 2.0 and study.volume_ml > 2.0, study.params
    mask_ml = (study.labels > 0).sum() * study.pixel_spacing.prod() * study.spacing_mm / 1000.0
    assert mask_ml == pytest.approx(study.volume_ml, rel=0.10)
    assert sum(study.volumes_ml.values()) >= study.volume_ml * 0.999


def test_tilted_series_geometry(tmp_path: Path) -> None:
    study = next(
        s
        for s in (make_study(seed, size=32, positive=False) for seed in range(40))
        if s.params["tilt_deg"] > 5.0
    )
    row, col = study.orientation[:3], study.orientation[3:]
    assert (
        abs(row @ col) < 1e-9
        and np.isclose(np.linalg.norm(row), 1)
        and np.isclose(np.linalg.norm(col), 1)
    )
    normal = slice_normal(study.orientation)
    assert abs(normal[2]) < 0.999  # not the identity orientation
    steps = np.diff(study.positions, axis=0)
    np.testing.assert_allclose(steps @ normal, study.spacing_mm, atol=1e-6)
    np.testing.assert_allclose(steps - np.outer(steps @ normal, normal), 0, atol=1e-6)
    rec = write_study(study, tmp_path)
    ds = [
        pydicom.dcmread(tmp_path / "stage_2_train" / f"{i}.dcm", stop_before_pixels=True)
        for i in rec.ids[:2]
    ]
    iop = np.array(ds[0].ImageOrientationPatient, float)
    np.testing.assert_allclose(iop, study.orientation, atol=1e-5)
    d = np.subtract(ds[1].ImagePositionPatient, ds[0].ImagePositionPatient).astype(float)
    np.testing.assert_allclose(np.cross(d, slice_normal(iop)), 0, atol=1e-4)
    assert float(ds[0].SliceThickness) == pytest.approx(study.thickness_mm)


def test_compare_real_table(tmp_path: Path, capsys) -> None:
    """training/compare_real.py: one row per set and slice group; bands add up to 100 %."""
    from training import compare_real

    write_study(make_study(3, size=64, positive=False, thin=False), tmp_path, study_index=0)
    assert compare_real.main([str(tmp_path)]) == 0
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| phantom")]
    assert len(rows) == 1 and "thick" in rows[0]
    cells = [float(c) for c in rows[0].strip("|").split("|")[1:]]
    assert sum(cells[:8]) == pytest.approx(100.0, abs=0.5)
    assert 15.0 <= cells[8] <= 50.0  # the brain peak sits in the brain band


def test_thin_series_cover_part_of_the_head_or_all_of_it():
    """Thin series: 25-40 mm about the middle (the default), or vertex to skull base."""
    part = make_study(5, size=32, positive=False, thin=True)
    whole = make_study(5, size=32, positive=False, thin=True, thin_extent="whole")
    for study in (part, whole):
        assert study.thickness_mm <= 1.25

    def extent(s):
        return s.spacing_mm * (s.n_slices - 1)

    assert extent(part) <= 41
    assert extent(whole) >= 120  # a whole adult head, as the thick series cover
    with pytest.raises(ValueError, match="thin_extent"):
        make_study(5, size=32, thin=True, thin_extent="most")


def _bone_run_mm(model, x: float, y: float, z_from: float, z_to: float) -> float:
    """Length of bone (> 300 HU) along a vertical line through the rendered head."""
    step = 0.05
    n = int(abs(z_to - z_from) / step)
    lat = Lattice(
        np.array([x, y, z_from]), np.array([[0.0, 0.0, step * np.sign(z_to - z_from)]]), (n,)
    )
    return float((model.render(lat) > 300).sum() * step)


def test_skull_base_floors_are_thinner_than_the_vault():
    """The middle fossa's floor is 2-3.5 mm of bone, the vault 3.5-6 (real skulls; the thick plates
    were what made tilted skull-base slabs unlike real ones)."""
    for seed in range(4):
        rng = np.random.default_rng(seed)
        model = HeadModel(sample_head(rng, mimics=False), rng)
        # medians over a few lines: where a ridge slopes, a vertical line crosses more bone
        floor = np.median(
            [_bone_run_mm(model, x, y, -30.0, -65.0) for x in (32, 36, 40) for y in (-4, 0, 4)]
        )
        vault = np.median(
            [_bone_run_mm(model, x, y, 60.0, 95.0) for x in (-4, 0, 4) for y in (-4, 0, 4)]
        )
        assert 0.8 < floor < 0.75 * vault, (seed, floor, vault)


def test_head_roll_is_drawn_and_recorded():
    rolls = [make_study(s, size=32, positive=False).params["roll_deg"] for s in range(6)]
    assert all(-10.0 <= r <= 10.0 for r in rolls)
    assert len({round(r, 3) for r in rolls}) == 6  # drawn per study, not constant
    assert make_study(3, size=32, positive=False).params["roll_deg"] == rolls[3]


def test_a_tilted_gantry_cuts_the_head_along_its_own_axial_plane():
    """The head follows the gantry's tilt (slices along the skull base, as on real tilted
    series), so the slices' row and column map to the head's own x and y."""
    pose = Pose(np.eye(3), np.ones(3), np.zeros(3))
    for tilt in (0.0, 8.5, 25.0):
        orient = orientation_for_tilt(tilt)
        head = tilted_frame(pose, tilt)
        np.testing.assert_allclose(head.vector_to_canonical(orient[:3]), [1, 0, 0], atol=1e-9)
        np.testing.assert_allclose(head.vector_to_canonical(orient[3:]), [0, 1, 0], atol=1e-9)
        # against the table, the head is pitched by the tilt: gravity (world y) leaves its y
        assert np.isclose(np.degrees(np.arccos(head.gravity[1])), tilt, atol=1e-6)


def test_middle_fossa_is_a_bowl_under_the_temporal_lobe():
    """Deepest near its centre and rising towards its rim, so the temporal lobe's tip shrinks
    slice by slice inside the bone instead of vanishing at one flat shelf."""
    for seed in range(3):
        rng = np.random.default_rng(seed)
        model = HeadModel(sample_head(rng, mimics=False), rng)
        for side in (-1.0, 1.0):
            centre = float(model.floor_z(np.float32(side * 36.0), np.float32(-8.0)))
            rim = float(model.floor_z(np.float32(side * 62.0), np.float32(-8.0)))
            assert centre < -42.0 and rim > centre + 8.0, (seed, side, centre, rim)


def test_face_and_neck_are_compartments_not_one_muscle():
    """Below the skull base, soft tissue away from bone and air spans the densities real 5 mm
    slabs show there (CQ500: 32-83 HU, 10th-90th percentile), with fat planes between some
    compartments; one muscle density per head spanned 5-15 HU."""
    for seed in range(3):
        rng = np.random.default_rng(seed)
        model = HeadModel(sample_head(rng, mimics=False), rng)
        lat = Lattice(np.array([-80.0, -100.0, -75.0]), np.eye(3)[:2], (160, 200))
        hu = model.render(lat)
        tissue = hu[(hu > -30.0) & (hu < 200.0)]
        p10, p90 = np.percentile(tissue, [10, 90])
        assert p90 - p10 > 30.0, (seed, p10, p90)
        fat = (hu > -120.0) & (hu < -60.0)
        assert fat.mean() > 0.01, seed  # the fat planes (the plane is below the scalp's fat)


def _runs_mm(mask: np.ndarray, step: float) -> float:
    """Mean length (mm) of the runs of True along the rows of ``mask``."""
    padded = np.pad(mask.astype(np.int8), ((0, 0), (1, 1)))
    edges = np.diff(padded, axis=1)
    starts, ends = np.nonzero(edges == 1), np.nonzero(edges == -1)
    return float((ends[1] - starts[1]).mean() * step) if len(starts[1]) else 0.0


def test_skull_base_bone_is_cancellous_with_thin_walls_and_septa():
    """The vertebrae are marrow (about 180-420 HU) inside a cortex, the clivus is bone in front
    of the brainstem (it lay inside the posterior fossa's bowl), the mastoid
    cells air parted by thin septa, the sinuses lined by a thin wall: on 5 mm slabs these give
    real skull-base slabs' bone in partial volume (CQ500's lowest fifth: 13.5 % of the head at
    90-300 HU, where solid bone and wall-less cavities gave the phantoms 5-8 %)."""
    step = 0.25
    for seed in range(3):
        rng = np.random.default_rng(seed)
        model = HeadModel(sample_head(rng, mimics=False), rng)
        # the atlas ring and dens: mostly marrow, not solid cortical bone
        ring = model.render(Lattice(np.array([-30.0, 0.0, -70.0]), np.eye(3)[:2] * step,
                                    (240, 200)))
        bone = ring[ring > 150.0]
        assert np.mean(bone < 550.0) > 0.25, (seed, np.mean(bone < 550.0))  # solid: 1-4 %
        # a mastoid: mostly air, its bone thin septa (runs under 1.5 mm), not blobs
        mastoid = model.render(Lattice(np.array([44.0, 18.0, -48.0]), np.eye(3)[:2] * step,
                                       (48, 48)))
        air, septa = mastoid < -500.0, mastoid > 500.0
        assert air.mean() > 0.6 and septa.mean() > 0.03, (seed, air.mean(), septa.mean())
        assert _runs_mm(septa, step) < 1.8, (seed, _runs_mm(septa, step))  # blobs: 2.2-3 mm
        # the clivus: bone in front of the brainstem, outside the cranial cavity
        point = [np.array([v], np.float32) for v in (1.0, -8.0, -47.0)]
        assert model.icv_sdf(*point)[0] > 0.0, seed
        # a maxillary sinus: a row through it meets bone on both sides of its air
        row = model.render(Lattice(np.array([8.0, -50.0, -68.0]), np.array([[step, 0, 0]]),
                                   (160,)))
        inside = np.flatnonzero(row < -500.0)
        assert row[inside[0] - 5 : inside[0]].max() > 500.0, seed
        assert row[inside[-1] + 1 : inside[-1] + 6].max() > 500.0, seed


def test_subtype_weights_choose_the_bleeds():
    from training.synth_bleeds import SUBTYPES

    only_epidural = [1, 0, 0, 0, 0]
    for seed in range(8):
        study = make_study(seed, size=32, positive=True, thin=False,
                           subtype_weights=only_epidural)
        assert study.params["subtypes"] == ["epidural"], seed
    two = [0, 0, 1, 0, 1]  # a study carries at most the two subtypes that have a weight
    drawn = {tuple(make_study(s, size=32, positive=True, thin=False,
                              subtype_weights=two).params["subtypes"]) for s in range(12)}
    assert drawn <= {("intraventricular",), ("subdural",), ("intraventricular", "subdural")}
    assert len(drawn) > 1
    assert set().union(*drawn) <= set(SUBTYPES)


@pytest.mark.parametrize("weights", [[1, 1, 1, 1], [0, 0, 0, 0, 0], [1, -1, 1, 1, 1]])
def test_bad_subtype_weights_are_refused_before_anything_is_written(tmp_path, weights, capsys):
    from training.synth import main
    from training.synth_bleeds import subtype_probabilities

    with pytest.raises(ValueError, match="epidural, intraparenchymal"):
        subtype_probabilities(weights)
    with pytest.raises(ValueError, match="subtype weights"):
        generate(tmp_path / "g", 1, 3, size=32, subtype_weights=weights)
    assert not (tmp_path / "g").exists()
    if len(weights) == 5:  # (argparse itself refuses four numbers)
        with pytest.raises(SystemExit):
            main(["--out", str(tmp_path / "c"), "--studies", "1", "--seed", "3",
                  "--size", "32", "--subtype-weights", *map(str, weights)])
        assert "subtype weights must be 5 non-negative numbers" in capsys.readouterr().err
        assert not (tmp_path / "c").exists()
