"""Bleed measurements against known truth: analytic shapes and phantoms with true volumes.

The phantom tests measure the phantoms' own label volumes (not a model's masks), so they test
the measurement code: volume from positions and pixel spacing, components, ABC/2, subtypes.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from ichinfer.labels import LABELS
from ichinfer.measure import diameters_mm, label_components, measure_masks
from ichinfer.pipeline import slice_extents_mm
from ichinfer.results import SliceMask

SUBTYPE_CODES = {"epidural": 1, "intraparenchymal": 2, "intraventricular": 3,
                 "subarachnoid": 4, "subdural": 5}


def _slices(masks, locations_mm, spacing_mm=(0.5, 0.5), fallback_mm=None):
    ext = slice_extents_mm(np.asarray(locations_mm, float), fallback_mm)
    return [SliceMask(index=k, path=f"{k}.dcm", frame=None, sop_instance_uid=f"1.2.{k}",
                      location_mm=float(loc), pixel_spacing_mm=spacing_mm,
                      mask=np.asarray(m, np.uint8), thickness_mm=float(ext[k]))
            for k, (m, loc) in enumerate(zip(masks, locations_mm, strict=True))]


def _ellipsoid(a, b, c, *, angle_deg=30.0, ps=0.5, dz=1.0, size=160):
    """Masks of an ellipsoid with semi-axes a, b (in-plane, rotated) and c (along z), in mm."""
    u = (np.arange(size) - size / 2 + 0.5) * ps
    xx, yy = np.meshgrid(u, u)
    th = np.deg2rad(angle_deg)
    xr, yr = xx * np.cos(th) + yy * np.sin(th), -xx * np.sin(th) + yy * np.cos(th)
    z = np.arange(-c - 2 * dz, c + 2 * dz + 1e-9, dz) + dz / 2
    masks = [((xr / a) ** 2 + (yr / b) ** 2 + (zk / c) ** 2 <= 1.0) for zk in z]
    return masks, -z  # head first: decreasing z


def test_ellipsoid_volume_abc2_and_axes():
    a, b, c = 20.0, 12.0, 9.0
    masks, loc = _ellipsoid(a, b, c)
    m = measure_masks(_slices(masks, loc))
    true_ml = 4.0 / 3.0 * math.pi * a * b * c / 1000.0
    assert m.n_bleeds == 1
    assert m.volume_ml == pytest.approx(true_ml, rel=0.03)
    bleed = m.largest
    assert bleed.a_mm == pytest.approx(2 * a, abs=1.0)  # edge to edge, within a pixel or two
    assert bleed.b_mm == pytest.approx(2 * b, abs=1.0)
    assert bleed.c_mm == pytest.approx(bleed.n_slices * 1.0)
    assert bleed.c_mm == pytest.approx(2 * c, abs=1.0)
    # ABC/2 = 4abc against 4/3·π·abc: 4.5 % under for a perfect ellipsoid
    assert bleed.abc2_ml == pytest.approx(true_ml, rel=0.10)
    k = m.largest_area_index
    assert abs(loc[k]) <= 1.0  # the widest slice is at the centre
    assert m.largest_area_mm2 == pytest.approx(math.pi * a * b, rel=0.03)


def test_diameters_of_a_rectangle_follow_pixel_spacing():
    mask = np.zeros((40, 40), np.uint8)
    mask[10:14, 5:35] = 1  # 4 rows x 30 columns
    a, b = diameters_mm(mask, (2.0, 0.5))  # rows 2 mm apart, columns 0.5 mm apart
    # a 15 mm x 8 mm rectangle: A is its diagonal (17 mm); B the chord across it through the
    # centre, 8 / cos(angle of the diagonal) = 8 * 17 / 15
    assert a == pytest.approx(math.hypot(15.0, 8.0), abs=0.01)
    assert b == pytest.approx(8.0 * 17.0 / 15.0, abs=0.3)


def _components_by_search(masks):
    """The reference: 26-connected components of a (Z, H, W) stack by breadth-first search,
    as sets of (z, y, x) voxels."""
    vol = np.asarray(masks, bool)
    seen = np.zeros_like(vol)
    parts = []
    for start in zip(*np.nonzero(vol), strict=True):
        if seen[start]:
            continue
        seen[start] = True
        part, todo = set(), [start]
        while todo:
            z, y, x = todo.pop()
            part.add((z, y, x))
            for dz, dy, dx in itertools.product((-1, 0, 1), repeat=3):
                q = (z + dz, y + dy, x + dx)
                if all(0 <= c < n for c, n in zip(q, vol.shape, strict=True)) and vol[q] \
                        and not seen[q]:
                    seen[q] = True
                    todo.append(q)
        parts.append(frozenset(part))
    return set(parts)


@pytest.mark.parametrize("seed", range(6))
def test_label_components_matches_a_search_of_random_stacks(seed):
    """Random stacks, from specks to regions that merge across slices through chains of
    touches (the union-find, its label pairs, the boxes), against a breadth-first search."""
    rng = np.random.default_rng(seed)
    density = (0.01, 0.03, 0.06, 0.12, 0.16, 0.2)[seed]  # sparse: small boxes, apart or not
    stack = rng.random((6, 24, 24)) < density
    labels, n = label_components(list(stack.astype(np.uint8)))
    lab = np.stack(labels)
    found = {frozenset(zip(*np.nonzero(lab == k), strict=True)) for k in range(1, n + 1)}
    assert found == _components_by_search(stack)
    assert set(np.unique(lab)) == set(range(n + 1))  # labels 1..n, none missing


def test_separate_bleeds_and_26_connectivity():
    z = np.zeros((30, 30), np.uint8)
    s0, s1, s2 = z.copy(), z.copy(), z.copy()
    s0[2:6, 2:6] = 1
    s1[6:9, 6:9] = 1  # touches s0's blob only diagonally: one bleed
    s2[20:25, 20:25] = 1  # far away: a second bleed
    labels, n = label_components([s0, s1, s2])
    assert n == 2
    assert labels[0][3, 3] == labels[1][7, 7] != labels[2][22, 22]
    m = measure_masks(_slices([s0, s1, s2], [10.0, 5.0, 0.0], spacing_mm=(1.0, 1.0)),
                      min_bleed_ml=0.0)
    assert m.n_bleeds == 2
    assert [b.n_slices for b in m.bleeds] == [2, 1]  # ordered by volume: 16+9 px, then 25 px
    assert m.bleeds[0].volume_ml == pytest.approx(25 * 5 / 1000)
    # a speck below min_bleed_ml counts in the volume, not as a bleed
    m2 = measure_masks(_slices([s0, s1, s2], [10.0, 5.0, 0.0], spacing_mm=(1.0, 1.0)),
                       min_bleed_ml=0.1)
    assert m2.n_bleeds == 2 and m2.volume_ml == pytest.approx(50 * 5 / 1000)
    m3 = measure_masks(_slices([s0, s1, s2], [10.0, 5.0, 0.0], spacing_mm=(1.0, 1.0)),
                       min_bleed_ml=0.13)
    assert m3.n_bleeds == 0 and m3.volume_ml == pytest.approx(0.25)


def test_single_slice_without_thickness_has_no_volume_but_has_area():
    mask = np.zeros((20, 20), np.uint8)
    mask[5:10, 5:10] = 1
    m = measure_masks(_slices([mask], [0.0], spacing_mm=(1.0, 1.0)))
    assert m.volume_ml is None and m.largest.abc2_ml is None
    assert m.largest_area_mm2 == 25.0 and m.n_bleeds == 1
    assert measure_masks(_slices([mask], [0.0], fallback_mm=5.0)).volume_ml is not None


def test_empty_series():
    m = measure_masks(_slices([np.zeros((8, 8))] * 3, [0.0, 5.0, 10.0]))
    assert m.volume_ml == 0.0 and m.n_bleeds == 0 and m.largest is None
    assert m.largest_area_index is None
    assert m.to_dict()["largest_bleed_abc2_ml"] is None


# --- phantoms with known volumes ---------------------------------------------------------------


def _phantom_slices(study, codes=None):
    """SliceMasks from a phantom's true labels, head first, geometry from its DICOM values."""
    o = np.asarray(study.orientation, float)
    normal = np.cross(o[:3], o[3:])
    loc = np.asarray(study.positions, float) @ normal
    order = np.argsort(-loc, kind="stable")
    labels = study.labels[order]
    sel = labels > 0 if codes is None else np.isin(labels, codes)
    ps = tuple(float(v) for v in study.pixel_spacing)
    return _slices(list(sel), list(loc[order]), spacing_mm=ps), labels


PHANTOMS = {20: ("epidural",), 22: ("intraparenchymal",), 28: ("subdural",),
            30: ("epidural", "subdural")}


@pytest.fixture(scope="module")
def phantoms():
    from training.synth import make_study

    return {seed: make_study(seed, size=128, positive=True, thin=False) for seed in PHANTOMS}


@pytest.mark.parametrize("seed", sorted(PHANTOMS))
def test_phantom_volume_within_10_percent(phantoms, seed):
    study = phantoms[seed]
    assert tuple(study.params["subtypes"]) == PHANTOMS[seed]
    slices, labels = _phantom_slices(study)
    m = measure_masks(slices)
    assert m.volume_ml == pytest.approx(study.volume_ml, rel=0.10)
    # each subtype's own mask against its true volume
    for name in PHANTOMS[seed]:
        sub, _ = _phantom_slices(study, [SUBTYPE_CODES[name]])
        assert measure_masks(sub).volume_ml == pytest.approx(study.volumes_ml[name], rel=0.10)


@pytest.mark.parametrize("seed", [20, 22, 28])
def test_phantom_subtype_attribution_from_slice_calls(phantoms, seed):
    """A classifier that calls exactly the true subtype on the slices that hold it."""
    study = phantoms[seed]
    (name,) = PHANTOMS[seed]
    slices, labels = _phantom_slices(study)
    probs = []
    for lab in labels:
        on = {k: float((lab == c).any()) for k, c in SUBTYPE_CODES.items()}
        probs.append({"any": float((lab > 0).any()), **on})
    m = measure_masks(slices, probabilities=probs, thresholds=dict.fromkeys(LABELS, 0.5))
    assert m.by_subtype is not None
    assert m.by_subtype[name].volume_ml == pytest.approx(study.volumes_ml[name], rel=0.10)
    assert m.by_subtype[name].n_bleeds == m.n_bleeds >= 1
    for other in set(SUBTYPE_CODES) - {name}:
        assert m.by_subtype[other].volume_ml == 0.0 and m.by_subtype[other].n_bleeds == 0
    assert m.largest.subtypes == (name,)
    # a classifier that calls nothing attributes nothing
    none = measure_masks(slices, probabilities=[dict.fromkeys(LABELS, 0.0)] * len(slices),
                         thresholds=dict.fromkeys(LABELS, 0.5))
    assert all(v.volume_ml == 0.0 for v in none.by_subtype.values())
    assert none.largest.subtypes == ()


def test_probabilities_must_match_slices():
    slices = _slices([np.zeros((4, 4))] * 2, [0.0, 5.0])
    with pytest.raises(ValueError):
        measure_masks(slices, probabilities=[dict.fromkeys(LABELS, 0.0)],
                      thresholds=dict.fromkeys(LABELS, 0.5))
