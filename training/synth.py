"""Realistic head-CT phantom generator with known haemorrhage masks and true volumes.

Writes the RSNA 2019 Kaggle layout (``stage_2_train/ID_*.dcm`` + ``stage_2_train.csv``) plus
per-slice label PNGs (``masks/``) and a per-study table (``studies.csv``), so training code reads
phantoms and real RSNA data the same way. See ``training/SYNTH.md``.

    python -m training.synth --out DIR --studies N --seed S [--size 512] [--montage PATH]

The library functions never print; only ``main`` does.
"""

from __future__ import annotations

import argparse
import csv
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from training.pngio import write_png
from training.synth_anatomy import F32, Fields, HeadModel, Lattice, sample_head
from training.synth_bleeds import (
    SUBTYPE_WEIGHTS,
    SUBTYPES,
    Bleed,
    paint_bleeds,
    sample_bleeds,
    subtype_probabilities,
    true_volumes_ml,
)
from training.synth_dicom import (
    ENCODINGS,
    SliceHeader,
    encode_pixels,
    encoding_spec,
    file_id,
    uid,
    write_slice,
)
from training.synth_scanner import (
    Holder,
    band,
    correlated_noise,
    gaussian_blur,
    streaks,
    upsample2,
)

#: RSNA label order in stage_2_train.csv (five subtypes, then "any").
RSNA_LABELS = (*SUBTYPES, "any")
#: Noise grows as thickness ** -NOISE_EXPONENT (0.5 is pure photon statistics; 0.35 matches the
#: CQ500 0.625 mm series against RSNA 5 mm slices, thin series being reconstructed smoother).
NOISE_EXPONENT = 0.35
HALO_FRACTION = (0.04, 0.10)  # share of the signal in the PSF's wide tail
#: A slice is labelled positive for a subtype when its painted mask covers at least this area.
MIN_LABEL_AREA_MM2 = 10.0
WINDOW_PRESETS = (
    ([36.0, 36.0], [80.0, 80.0]),
    ([40.0, 40.0], [80.0, 80.0]),
    ([40.0], [80.0]),
    ([30.0], [80.0]),
    ([35.0], [100.0]),
    ([40.0, 600.0], [80.0, 2800.0]),
)


# --------------------------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pose:
    """Head placement: world (DICOM patient, mm) = offset + rot @ (scale * canonical)."""

    rot: np.ndarray  # (3, 3)
    scale: np.ndarray  # (3,)
    offset: np.ndarray  # (3,)

    def to_world(self, p: np.ndarray) -> np.ndarray:
        return self.offset + (self.rot @ (self.scale * np.asarray(p, float)).T).T

    def to_canonical(self, p: np.ndarray) -> np.ndarray:
        return (self.rot.T @ (np.asarray(p, float) - self.offset).T).T / self.scale

    def vector_to_canonical(self, v: np.ndarray) -> np.ndarray:
        return (self.rot.T @ np.asarray(v, float)) / self.scale

    @property
    def gravity(self) -> np.ndarray:
        """Canonical coefficients of world y (posterior = down for a supine patient)."""
        return (self.rot @ np.diag(self.scale))[1]


def _rot_z(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])


def _rot_y(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def _rot_x(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


def orientation_for_tilt(tilt_deg: float) -> np.ndarray:
    """(0020,0037) Image Orientation (Patient) of a gantry tilted about the patient x axis."""
    t = np.deg2rad(tilt_deg)
    return np.array([1.0, 0.0, 0.0, 0.0, np.cos(t), -np.sin(t)])


def slice_normal(orientation: np.ndarray) -> np.ndarray:
    """Unit normal (row x column) of an (0020,0037) Image Orientation (Patient)."""
    n = np.cross(orientation[:3], orientation[3:])
    return n / np.linalg.norm(n)


def plane_affine(
    pose: Pose,
    center_w: np.ndarray,
    row: np.ndarray,
    col: np.ndarray,
    spacing_mm: float,
    size: int,
    factor: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Canonical origin and (row-index, column-index) steps of a slice's pixel grid."""
    first = (factor - 1) / 2.0 - (size - 1) / 2.0  # full-res pixel coordinate of sample 0
    origin_w = center_w + first * spacing_mm * (row + col)
    steps = np.stack(
        [
            pose.vector_to_canonical(factor * spacing_mm * col),
            pose.vector_to_canonical(factor * spacing_mm * row),
        ]
    )
    return pose.to_canonical(origin_w), steps


def plane_lattice(
    pose: Pose,
    center_w: np.ndarray,
    row: np.ndarray,
    col: np.ndarray,
    spacing_mm: float,
    size: int,
    factor: int = 1,
) -> Lattice:
    """Canonical-coordinate lattice of a slice; `factor` 2 gives the half-resolution grid."""
    origin, steps = plane_affine(pose, center_w, row, col, spacing_mm, size, factor)
    return Lattice(origin, steps, (size // factor, size // factor))


# --------------------------------------------------------------------------------------------
# the study
# --------------------------------------------------------------------------------------------
@dataclass
class Study:
    """One phantom series in memory.

    `hu` is (Z, H, W) float32 in HU after thickness averaging and noise (before integer
    encoding); `labels` is (Z, H, W) uint8 (0 none, 1 epidural, 2 intraparenchymal,
    3 intraventricular, 4 subarachnoid, 5 subdural) on each slice's centre plane.
    """

    seed: int
    hu: np.ndarray
    labels: np.ndarray
    positions: np.ndarray  # (Z, 3) (0020,0032) Image Position (Patient), mm
    orientation: np.ndarray  # (6,) (0020,0037)
    pixel_spacing: np.ndarray  # (2,) (0028,0030), mm
    thickness_mm: float
    spacing_mm: float
    in_fov: np.ndarray  # (H, W) bool: inside the circular scan field
    volume_ml: float
    volumes_ml: dict[str, float]
    params: dict = field(default_factory=dict)
    bleeds: list[Bleed] = field(default_factory=list)
    pose: Pose | None = None

    @property
    def n_slices(self) -> int:
        return int(self.hu.shape[0])


def study_seed(seed: int, index: int) -> int:
    """Seed of study `index` in a run seeded with `seed` (independent of the study count)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint32)[0])


def _sample_pose(
    rng: np.random.Generator, roll_rng: np.random.Generator
) -> tuple[Pose, float, float, float]:
    s0 = rng.uniform(0.9, 1.1)
    scale = s0 * rng.uniform(0.97, 1.03, 3)
    u = rng.random()
    if u < 0.88:
        yaw = float(np.clip(rng.normal(0, 8), -20, 20))
    elif u < 0.95:
        yaw = float(rng.choice([-1, 1]) * rng.uniform(20, 35))
    else:
        yaw = float(rng.choice([-90, 90]) + rng.normal(0, 5))
    pitch = float(np.clip(rng.normal(0, 6), -15, 15))
    # roll (the head leaning towards a shoulder): a few degrees on most real scans, so one
    # petrous ridge and orbit come into the slices before the other and the vertex is cut off
    # centre; its own stream keeps the draws above as they were
    roll = float(np.clip(roll_rng.normal(0, 4), -10, 10))
    rot = _rot_z(yaw) @ _rot_x(pitch) @ _rot_y(roll)
    offset = np.array([rng.uniform(-12, 12), rng.uniform(-15, 10), rng.uniform(-150, 350)])
    return Pose(rot, scale, offset), yaw, pitch, roll


def tilted_frame(pose: Pose, tilt_deg: float) -> Pose:
    """The head placed in a gantry tilted by ``tilt_deg``, its pose relative to the slices.

    A gantry is tilted to lay the slices along the skull base (the orbitomeatal line): the head
    sits in the tilted slices as it would in upright ones, pitched by the tilt against the
    table (and gravity). Real tilted series (CQ500's, 8.5 degrees) show orbits, temporal lobes
    and cerebellum in one slice; a head left level under a tilted gantry would be cut 5-25
    degrees off that plane, which real skull-base slices seldom are."""
    return Pose(_rot_x(-tilt_deg) @ pose.rot, pose.scale, pose.offset)


def _head_extent(pose: Pose, model: HeadModel, normal: np.ndarray) -> tuple[float, float]:
    """Range of the head's projection on the slice normal (skull base at C1 to the vertex)."""
    g = np.arange(-100, 101, 5.0)
    xx, yy, zz = np.meshgrid(g, g, np.arange(-85, 101, 4.0), indexing="ij")
    pts = np.stack([xx.ravel(), yy.ravel(), zz.ravel()], 1).astype(F32)
    d = model.icv_sdf(pts[:, 0], pts[:, 1], pts[:, 2])
    keep = (d < model.p.skull_mm + model.p.scalp_mm) | (pts[:, 2] < -40) & (
        np.abs(pts[:, 0]) < 60
    ) & (np.abs(pts[:, 1] + 5) < 80)
    proj = pose.to_world(pts[keep]) @ normal
    return float(proj.min()), float(proj.max())


def make_study(
    seed: int,
    *,
    size: int = 512,
    positive: bool | None = None,
    thin: bool | None = None,
    subtypes: tuple[str, ...] | None = None,
    mimics: bool | None = None,
    thin_extent: str = "partial",
    subtype_weights=None,
) -> Study:
    """Generate one phantom series in memory (deterministic for `seed`).

    `positive`/`thin`/`mimics` default to random draws (55% positive, 25% thin, mimics on all
    negatives and 40% of positives); `subtypes` forces the bleeds (names as in `SUBTYPES`);
    `subtype_weights` (one per subtype) replaces how often each is drawn (`SUBTYPE_WEIGHTS`).
    A thin series covers 25-40 mm about the bleed or the middle of the head, or with
    `thin_extent="whole"` the whole head, vertex to skull base, as real thin series do (and
    slower to make: 150-250 slices).
    """
    if thin_extent not in ("partial", "whole"):
        raise ValueError(f"thin_extent must be 'partial' or 'whole', not {thin_extent!r}")
    if size % 2:
        raise ValueError(f"size must be even, got {size}")
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)]
    r_flag, r_head, r_geo, r_bleed, r_scan = streams
    u_pos, u_thin, u_mim = r_flag.random(3)
    if subtypes:
        positive = True
    positive = bool(u_pos < 0.55) if positive is None else positive
    thin = bool(u_thin < 0.25) if thin is None else thin
    mimics = (not positive or u_mim < 0.4) if mimics is None else mimics

    model = HeadModel(sample_head(r_head, mimics=mimics), r_head)
    pose, yaw, pitch, roll = _sample_pose(r_geo, np.random.default_rng([seed, 78]))
    tilt = 0.0 if r_geo.random() < 0.4 else float(r_geo.uniform(5, 25))
    pose = tilted_frame(pose, tilt)
    bleeds = (
        sample_bleeds(r_bleed, model, pose.gravity, subtypes, subtype_weights) if positive else []
    )
    det = float(np.prod(pose.scale))
    volume_ml, volumes_ml = true_volumes_ml(bleeds, model, voxel_scale=det)

    orient = orientation_for_tilt(tilt)
    row, col = orient[:3], orient[3:]
    normal = slice_normal(orient)
    head_len = 2 * 102 * float(pose.scale[1])
    fov = max(float(r_geo.uniform(0.39, 0.5)) * 512, head_len * 1.06)
    if r_geo.random() < 0.04:
        fov = float(r_geo.uniform(0.39, 0.5)) * 512  # sometimes the head is clipped
    ps = fov / size
    if thin and thin_extent == "whole":
        thickness = float(r_geo.choice([0.625, 0.625, 0.8, 1.0, 1.25]))
        spacing = thickness
        lo, hi = _head_extent(pose, model, normal)
        start = lo + r_geo.uniform(-2, 4)
        n_slices = int(np.floor((hi - start) / spacing)) + 1
    elif thin:
        thickness = float(r_geo.choice([0.625, 0.625, 0.8, 1.0, 1.25]))
        spacing = thickness
        length = float(r_geo.uniform(25, 40))
        if bleeds:
            target = pose.to_world(np.array(bleeds[0].center)) @ normal
        else:
            target = pose.to_world(np.array([0.0, 0.0, r_geo.uniform(-30, 50)])) @ normal
        start = target - length / 2 + r_geo.uniform(-6, 6)
        n_slices = int(round(length / spacing)) + 1
    else:
        thickness = float(r_geo.choice([5.0] * 14 + [4.8, 4.0, 3.0, 2.5]))
        spacing = thickness
        lo, hi = _head_extent(pose, model, normal)
        start = lo + r_geo.uniform(-2, 4)
        n_slices = int(np.floor((hi - start) / spacing)) + 1
    fov_offset = np.array([r_geo.uniform(-10, 10), r_geo.uniform(-10, 10), 0.0])
    base = pose.offset + fov_offset
    base = base - (base @ normal) * normal  # the line of slice centres, through the FOV centre
    centers = base + np.outer(start + spacing * np.arange(n_slices), normal)

    holder = _sample_holder(r_geo, pose, yaw)
    scanner = {
        "noise_sigma_hu": float(r_scan.uniform(2.5, 5.0) * (5.0 / thickness) ** NOISE_EXPONENT),
        "psf_sigma_mm": float(r_scan.uniform(0.3, 0.6)),
        "metal": _sample_metal(r_scan) if r_scan.random() < 0.07 else None,
        "petrous_bar_hu": float(r_scan.uniform(8.0, 30.0)),
    }
    # the reconstruction kernel's wide tail (bone "bloom"): a few per cent of the signal spread
    # over 1-3 mm, so brain next to the inner table reads brighter for millimetres, as in
    # real scans (SYNTH.md, "brain next to bone"); its own stream keeps the draws above as they were
    r_halo = np.random.default_rng([seed, 77])
    scanner["halo_fraction"] = float(r_halo.uniform(HALO_FRACTION[0], HALO_FRACTION[1]))
    scanner["halo_sigma_mm"] = float(r_halo.uniform(1.0, 3.0))
    stack = np.empty((n_slices, size, size), F32)
    labels = np.zeros((n_slices, size, size), np.uint8)
    u = (np.arange(size) - (size - 1) / 2.0) * ps
    uu, vv = np.meshgrid(u, u)  # vv: along the column direction (rows of the image)
    in_fov = uu**2 + vv**2 <= (fov / 2.0) ** 2
    for k, c in enumerate(centers):
        slice_rng = np.random.default_rng([seed, 99, k])
        hu, lab = _render_slice(model, bleeds, pose, c, row, col, normal, ps, size, thickness)
        wx = (c[0] + uu * row[0] + vv * col[0]).astype(F32)
        wy = (c[1] + uu * row[1] + vv * col[1]).astype(F32)
        holder.paint(wx, wy, hu)
        hu = _scanner_effects(hu, model, pose, c, row, col, ps, size, scanner, slice_rng)
        hu[~in_fov] = -1024.0
        stack[k], labels[k] = hu, lab
    positions = centers - (size - 1) / 2.0 * ps * (row + col)
    encoding = str(r_scan.choice(ENCODINGS, p=[0.45, 0.45, 0.10]))
    window = WINDOW_PRESETS[int(r_scan.integers(len(WINDOW_PRESETS)))]
    params = {
        "positive": positive,
        "thin": thin,
        "mimics": mimics,
        "tilt_deg": tilt,
        "rotation_deg": yaw,
        "pitch_deg": pitch,
        "roll_deg": roll,
        "head_scale": float(pose.scale.mean()),
        "fov_mm": fov,
        "encoding": encoding,
        "window": window,
        "kvp": float(r_scan.choice([120.0, 120.0, 100.0, 140.0])),
        "atrophy": model.p.atrophy,
        "subtypes": sorted({b.name for b in bleeds}, key=SUBTYPES.index),
        "bleeds": [f"{b.name}:{b.variant}" for b in bleeds],
        **{k: v for k, v in scanner.items() if k != "metal"},
        "metal": scanner["metal"] is not None,
    }
    return Study(
        seed,
        stack,
        labels,
        positions,
        orient,
        np.array([ps, ps]),
        thickness,
        spacing,
        in_fov,
        volume_ml,
        volumes_ml,
        params,
        bleeds,
        pose,
    )


def _sample_holder(rng: np.random.Generator, pose: Pose, yaw: float) -> Holder:
    a = np.deg2rad(yaw)
    back = np.hypot(100 * pose.scale[1] * np.cos(a), 78 * pose.scale[0] * np.sin(a))
    radius = float(rng.uniform(95, 130))
    bottom = pose.offset[1] + back + rng.uniform(4, 14)
    return Holder(
        (float(pose.offset[0] + rng.uniform(-6, 6)), float(bottom - radius)),
        radius,
        float(rng.uniform(1.2, 3.0)),
        float(rng.uniform(-150, 400)),
        bool(rng.random() < 0.4),
        float(rng.uniform(-900, -600)),
    )


def _sample_metal(rng: np.random.Generator) -> tuple[float, float, float]:
    side = float(rng.choice([-1.0, 1.0]))
    spots = [(side * 20.0, -60.0, -80.0), (side * 18.0, -12.0, -16.0), (side * 45, -20.0, 35.0)]
    return spots[int(rng.integers(len(spots)))]


def _render_slice(
    model: HeadModel,
    bleeds: list[Bleed],
    pose: Pose,
    center: np.ndarray,
    row: np.ndarray,
    col: np.ndarray,
    normal: np.ndarray,
    ps: float,
    size: int,
    thickness: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Thickness-averaged anatomy + bleeds; labels from the centre plane."""
    lat = plane_lattice(pose, center, row, col, ps, size)
    f = Fields(model, lat.x, lat.y, lat.z)
    hu = model.render(lat, f)
    labels = np.zeros((size, size), np.uint8)
    paint_bleeds(bleeds, model, lat, f, hu, labels)
    if thickness < 2.0:
        return hu, labels
    # five planes across the slice: partial volume where surfaces cross it obliquely
    acc = hu / F32(5.0)
    for off in (-0.4 * thickness, -0.2 * thickness, 0.2 * thickness, 0.4 * thickness):
        sub_lat = plane_lattice(pose, center + off * normal, row, col, ps, size, factor=2)
        sf = Fields(model, sub_lat.x, sub_lat.y, sub_lat.z)
        sub = model.render(sub_lat, sf)
        paint_bleeds(bleeds, model, sub_lat, sf, sub)
        acc += upsample2(sub) / F32(5.0)
    return acc, labels


def _pixel_of(
    affine: tuple[np.ndarray, np.ndarray], p_canonical: np.ndarray
) -> tuple[tuple[float, float], float]:
    """Pixel (row, column) position of a canonical point and its distance (mm) from the plane."""
    origin, steps = affine
    rel = np.asarray(p_canonical) - origin
    idx = np.linalg.lstsq(steps.T, rel, rcond=None)[0]
    return (float(idx[0]), float(idx[1])), float(np.linalg.norm(steps.T @ idx - rel))


def _scanner_effects(
    hu: np.ndarray,
    model: HeadModel,
    pose: Pose,
    center: np.ndarray,
    row: np.ndarray,
    col: np.ndarray,
    ps: float,
    size: int,
    scanner: dict,
    rng: np.random.Generator,
) -> np.ndarray:
    """Blur, beam-hardening/metal streaks and quantum noise on one slice."""
    lat_pts = plane_affine(pose, center, row, col, ps, size)
    shape = (size, size)
    out = gaussian_blur(hu, scanner["psf_sigma_mm"] / ps)
    halo = scanner["halo_fraction"]
    out = (1.0 - halo) * out + halo * gaussian_blur(hu, scanner["halo_sigma_mm"] / ps)
    # Hounsfield bar and bone streaks between the petrous ridges
    (pa, da), (pb, db) = (_pixel_of(lat_pts, np.array([s * 33.0, 8.0, -36.0])) for s in (-1, 1))
    near = float(np.exp(-((max(da, db) / 14.0) ** 2)))
    if near > 0.05:
        out += band(
            shape,
            pa,
            pb,
            amplitude_hu=-scanner["petrous_bar_hu"] * near,
            width_px=rng.uniform(3.0, 7.0) / ps,
        )
        for pt in (pa, pb):
            out += near * streaks(
                shape, pt, rng, n_lines=5, amplitude_hu=25.0, width_px=0.8 / ps, decay_px=60.0 / ps
            )
    if scanner["metal"] is not None:
        pm, dm = _pixel_of(lat_pts, np.array(scanner["metal"]))
        if dm < 8.0:
            out += streaks(
                shape,
                pm,
                rng,
                n_lines=int(rng.integers(12, 30)),
                amplitude_hu=rng.uniform(150, 500) * (1 - dm / 8.0),
                width_px=0.9 / ps,
                decay_px=45.0 / ps,
            )
            ii, jj = np.mgrid[0:size, 0:size]
            blob = (ii - pm[0]) ** 2 + (jj - pm[1]) ** 2 < (2.5 * (1 - dm / 8.0) / ps) ** 2
            out[blob] = 3071.0
    out += correlated_noise(rng, shape, scanner["noise_sigma_hu"])
    return np.clip(out, -1024.0, 3071.0)


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StudyRecord:
    """What `write_study` wrote: file stems and per-slice RSNA labels, plus the summary row."""

    ids: list[str]
    slice_labels: np.ndarray  # (Z, 6) in RSNA_LABELS order
    row: dict


def slice_label_vector(labels: np.ndarray, pixel_spacing_mm: float) -> np.ndarray:
    """Six RSNA labels of one slice from its painted mask (>= MIN_LABEL_AREA_MM2 per subtype)."""
    counts = np.bincount(labels.ravel(), minlength=6)[1:6]
    sub = (counts * pixel_spacing_mm**2 >= MIN_LABEL_AREA_MM2).astype(np.uint8)
    return np.append(sub, sub.max())


def write_study(study: Study, out_dir: str | Path, *, study_index: int = 0) -> StudyRecord:
    """Write one study's DICOM files and mask PNGs under `out_dir` (RSNA Kaggle layout)."""
    out = Path(out_dir)
    (out / "stage_2_train").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    p = study.params
    enc = encoding_spec(p["encoding"])
    study_uid, series_uid = uid(study.seed, "study"), uid(study.seed, "series")
    ids, vecs = [], []
    ps = float(study.pixel_spacing[0])
    for k in range(study.n_slices):
        sop = uid(study.seed, "sop", k)
        stem = file_id(sop)
        header = SliceHeader(
            study_uid,
            series_uid,
            sop,
            f"PHANTOM-{study_index:04d}",
            k + 1,
            study.positions[k],
            study.orientation,
            ps,
            study.thickness_mm,
            study.spacing_mm,
            p["tilt_deg"],
            p["window"],
            p["kvp"],
            study_index,
        )
        raw = encode_pixels(study.hu[k], study.in_fov, enc)
        write_slice(out / "stage_2_train" / f"{stem}.dcm", raw, header, enc)
        write_png(out / "masks" / f"{stem}.png", study.labels[k])
        ids.append(stem)
        vecs.append(slice_label_vector(study.labels[k], ps))
    row = {
        "study_index": study_index,
        "StudyInstanceUID": study_uid,
        "SeriesInstanceUID": series_uid,
        "seed": study.seed,
        "n_slices": study.n_slices,
        "slice_thickness_mm": study.thickness_mm,
        "spacing_mm": study.spacing_mm,
        "pixel_spacing_mm": round(ps, 6),
        "tilt_deg": round(p["tilt_deg"], 3),
        "rotation_deg": round(p["rotation_deg"], 3),
        "encoding": p["encoding"],
        "subtypes": " ".join(p["subtypes"]),
        "bleeds": " ".join(p["bleeds"]),
        "volume_ml": round(study.volume_ml, 3),
        **{f"{name}_ml": round(study.volumes_ml[name], 3) for name in SUBTYPES},
    }
    return StudyRecord(ids, np.array(vecs, np.uint8).reshape(-1, 6), row)


def iter_studies(
    n_studies: int,
    seed: int,
    *,
    size: int = 512,
    positive_fraction: float = 0.55,
    thin_fraction: float = 0.25,
    thin_extent: str = "partial",
    subtype_weights=None,
) -> Iterator[tuple[int, Study]]:
    """Yield (index, study); study k depends only on (seed, k) and the settings."""
    for k in range(n_studies):
        u_pos, u_thin = np.random.default_rng([seed, k, 7]).random(2)
        positive, thin = bool(u_pos < positive_fraction), bool(u_thin < thin_fraction)
        yield (
            k,
            make_study(
                study_seed(seed, k),
                size=size,
                positive=positive,
                thin=thin,
                thin_extent=thin_extent,
                subtype_weights=subtype_weights,
            ),
        )


def generate(
    out_dir: str | Path,
    n_studies: int,
    seed: int,
    *,
    size: int = 512,
    positive_fraction: float = 0.55,
    thin_fraction: float = 0.25,
    thin_extent: str = "partial",
    subtype_weights=None,
) -> list[StudyRecord]:
    """Write `n_studies` phantoms plus stage_2_train.csv and studies.csv under `out_dir`."""
    if subtype_weights is not None:
        subtype_probabilities(subtype_weights)  # a bad option fails before anything is written
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for k, study in iter_studies(
        n_studies,
        seed,
        size=size,
        positive_fraction=positive_fraction,
        thin_fraction=thin_fraction,
        thin_extent=thin_extent,
        subtype_weights=subtype_weights,
    ):
        records.append(write_study(study, out, study_index=k))
    write_label_csv(records, out / "stage_2_train.csv")
    write_studies_csv(records, out / "studies.csv")
    return records


def write_label_csv(records: list[StudyRecord], path: str | Path) -> None:
    """RSNA-style ``ID,Label`` file with six rows per slice."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ID", "Label"])
        for rec in records:
            for stem, vec in zip(rec.ids, rec.slice_labels, strict=True):
                for name, val in zip(RSNA_LABELS, vec, strict=True):
                    w.writerow([f"{stem}_{name}", int(val)])


def write_studies_csv(records: list[StudyRecord], path: str | Path) -> None:
    with open(path, "w", newline="") as fh:
        if not records:
            return
        w = csv.DictWriter(fh, fieldnames=list(records[0].row))
        w.writeheader()
        for rec in records:
            w.writerow(rec.row)


# --------------------------------------------------------------------------------------------
# montage
# --------------------------------------------------------------------------------------------
def render_overlay(
    hu: np.ndarray, labels: np.ndarray, *, center_hu: float = 40.0, width_hu: float = 80.0
) -> np.ndarray:
    """Brain-window RGB image with bleed pixels tinted blue and outlined."""
    g = np.clip((hu - (center_hu - width_hu / 2)) / width_hu * 255.0, 0, 255).astype(np.uint8)
    rgb = np.repeat(g[..., None], 3, axis=2).astype(np.float32)
    m = labels > 0
    rgb[m] = rgb[m] * 0.6 + np.array([0.0, 60.0, 255.0]) * 0.4
    edge = m & ~(np.roll(m, 1, 0) & np.roll(m, -1, 0) & np.roll(m, 1, 1) & np.roll(m, -1, 1))
    rgb[edge] = (0.0, 90.0, 255.0)
    return rgb.astype(np.uint8)


MONTAGE_CASES = (
    ("epidural", {"subtypes": ("epidural",), "thin": False}),
    ("subdural", {"subtypes": ("subdural",), "thin": False}),
    ("intraparenchymal", {"subtypes": ("intraparenchymal",), "thin": False}),
    ("intraventricular", {"subtypes": ("intraventricular",), "thin": False}),
    ("subarachnoid", {"subtypes": ("subarachnoid",), "thin": False}),
    ("negative-mimics", {"positive": False, "mimics": True, "thin": False}),
    ("skull-base", {"positive": False, "mimics": True, "thin": False}),
    ("thin", {"subtypes": ("intraparenchymal",), "thin": True}),
)


def make_montage(path: str | Path, seed: int, *, size: int = 512) -> None:
    """Write a 4x2 montage of typical phantom slices (brain window 40/80, bleeds in blue)."""
    tiles = []
    for i, (name, kw) in enumerate(MONTAGE_CASES):
        study = make_study(study_seed(seed, 1000 + i), size=size, **kw)
        if name == "skull-base":
            z = np.array([plane_z(study, k) for k in range(study.n_slices)])
            k = int(np.argmin(np.abs(z + 30.0)))
        elif name == "negative-mimics":
            z = np.array([plane_z(study, k) for k in range(study.n_slices)])
            k = int(np.argmin(np.abs(z - 2.0)))
        else:
            k = int(np.argmax((study.labels > 0).sum(axis=(1, 2))))
        tiles.append(render_overlay(study.hu[k], study.labels[k]))
    rows = [np.concatenate(tiles[r * 4 : r * 4 + 4], axis=1) for r in range(2)]
    write_png(path, np.concatenate(rows, axis=0))


def plane_z(study: Study, k: int) -> float:
    """Canonical head height (mm above the foramen of Monro) at the centre of slice k."""
    half = (study.hu.shape[1] - 1) / 2.0 * float(study.pixel_spacing[0])
    center = study.positions[k] + half * (study.orientation[:3] + study.orientation[3:])
    return float(study.pose.to_canonical(center)[2]) if study.pose is not None else 0.0


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m training.synth", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--out", type=Path, required=True, help="output folder (RSNA layout)")
    ap.add_argument("--studies", type=int, required=True, help="number of studies")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--size", type=int, default=512, help="rows = columns (default 512)")
    ap.add_argument("--positive-fraction", type=float, default=0.55)
    ap.add_argument("--thin-fraction", type=float, default=0.25)
    ap.add_argument(
        "--thin-extent",
        choices=("partial", "whole"),
        default="partial",
        help="thin series: 25-40 mm about the bleed or mid-head (default), or the whole head",
    )
    ap.add_argument(
        "--subtype-weights",
        type=float,
        nargs=len(SUBTYPES),
        metavar="W",
        help="how often each subtype is drawn, in the order " + ", ".join(SUBTYPES)
        + " (default " + " ".join(map(str, SUBTYPE_WEIGHTS)) + "); e.g. 1 1 1 1 1 for a "
        "validation seed with the rare subtypes in more studies",
    )
    ap.add_argument("--montage", type=Path, help="also write a montage PNG here")
    args = ap.parse_args(argv)
    if args.subtype_weights is not None:
        try:
            subtype_probabilities(args.subtype_weights)
        except ValueError as exc:
            ap.error(str(exc))
    t0 = time.perf_counter()
    records = generate(
        args.out,
        args.studies,
        args.seed,
        size=args.size,
        positive_fraction=args.positive_fraction,
        thin_fraction=args.thin_fraction,
        thin_extent=args.thin_extent,
        subtype_weights=args.subtype_weights,
    )
    if args.montage:
        make_montage(args.montage, args.seed, size=args.size)
    n_slices = sum(len(r.ids) for r in records)
    n_pos = sum(int(r.slice_labels[:, 5].sum()) for r in records)
    print(
        f"wrote {len(records)} studies, {n_slices} slices ({n_pos} with bleed) to {args.out} "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
