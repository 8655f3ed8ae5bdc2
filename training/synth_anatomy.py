"""Analytic 3-D head model for the phantom generator (numpy only).

Everything is an implicit function of canonical head coordinates in mm: x to the patient's left,
y posterior, z superior (DICOM LPS axes), origin near the foramen of Monro. The model is evaluated
on any affine lattice of sample points (an image plane, or a fine 3-D grid for true volumes), so
nothing ever builds a whole voxel volume. Small structures are evaluated only inside the lattice
window that can reach them (`Lattice.window`), which keeps a 512^2 plane cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

F32 = np.float32


# --------------------------------------------------------------------------------------------
# sample lattices
# --------------------------------------------------------------------------------------------
@dataclass
class Lattice:
    """Points ``origin + sum_d idx_d * steps[d]`` for idx in ``shape`` (canonical head mm)."""

    origin: np.ndarray  # (3,)
    steps: np.ndarray  # (D, 3)
    shape: tuple[int, ...]
    x: np.ndarray = field(init=False, repr=False)
    y: np.ndarray = field(init=False, repr=False)
    z: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.origin = np.asarray(self.origin, np.float64)
        self.steps = np.asarray(self.steps, np.float64)
        grids = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in self.shape], indexing="ij")
        pts = self.origin + sum(g[..., None] * s for g, s in zip(grids, self.steps, strict=True))
        self.x, self.y, self.z = (pts[..., k].astype(F32) for k in range(3))
        self._pinv = np.linalg.pinv(self.steps.T)  # (D, 3)
        self._row_norm = np.linalg.norm(self._pinv, axis=1)

    def window(self, center: np.ndarray, radius: float) -> tuple[slice, ...] | None:
        """Index window holding every lattice point within `radius` mm of `center`, or None."""
        rel = np.asarray(center, np.float64) - self.origin
        idx = self._pinv @ rel
        if np.linalg.norm(self.steps.T @ idx - rel) > radius:
            return None
        out = []
        for d, n in enumerate(self.shape):
            span = radius * self._row_norm[d] + 1.0
            lo, hi = int(np.floor(idx[d] - span)), int(np.ceil(idx[d] + span)) + 1
            lo, hi = max(lo, 0), min(hi, n)
            if lo >= hi:
                return None
            out.append(slice(lo, hi))
        return tuple(out)

    def pts(self, win: tuple[slice, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.x[win], self.y[win], self.z[win]


# --------------------------------------------------------------------------------------------
# implicit-function helpers
# --------------------------------------------------------------------------------------------
def ellipsoid_sdf(x, y, z, center, axes) -> np.ndarray:
    """Approximate signed distance (mm, negative inside) to an axis-aligned ellipsoid."""
    ax, ay, az = (F32(a) for a in axes)
    px, py, pz = x - F32(center[0]), y - F32(center[1]), z - F32(center[2])
    k0 = np.sqrt((px / ax) ** 2 + (py / ay) ** 2 + (pz / az) ** 2)
    k1 = np.sqrt((px / (ax * ax)) ** 2 + (py / (ay * ay)) ** 2 + (pz / (az * az)) ** 2)
    return k0 * (k0 - 1.0) / np.maximum(k1, F32(1e-6))


def rotated_ellipsoid_sdf(x, y, z, center, axes, rot: np.ndarray) -> np.ndarray:
    """Ellipsoid SDF with orientation `rot` (3x3, columns are the ellipsoid's axes)."""
    px, py, pz = x - F32(center[0]), y - F32(center[1]), z - F32(center[2])
    r = rot.astype(F32)
    u = px * r[0, 0] + py * r[1, 0] + pz * r[2, 0]
    v = px * r[0, 1] + py * r[1, 1] + pz * r[2, 1]
    w = px * r[0, 2] + py * r[1, 2] + pz * r[2, 2]
    return ellipsoid_sdf(u, v, w, (0.0, 0.0, 0.0), axes)


def sigmoid(t) -> np.ndarray:
    return F32(0.5) + F32(0.5) * np.tanh(F32(0.5) * t)


def segment_distance_2d(x, y, a, b) -> np.ndarray:
    """Distance in the x-y plane from points to the segment a-b."""
    ax, ay = a
    dx, dy = b[0] - ax, b[1] - ay
    t = np.clip(((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    return np.sqrt((x - ax - t * dx) ** 2 + (y - ay - t * dy) ** 2)


@dataclass(frozen=True)
class WaveField:
    """Band-limited random field: a sum of plane waves (cheap on any point set, coherent in 3-D)."""

    k: np.ndarray  # (K, 3) rad/mm
    phase: np.ndarray  # (K,)
    amp: np.ndarray  # (K,)

    @staticmethod
    def random(rng: np.random.Generator, n: int, wavelength_mm: tuple[float, float]) -> WaveField:
        dirs = rng.normal(size=(n, 3))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        lam = rng.uniform(*wavelength_mm, size=n)
        amp = rng.uniform(0.6, 1.0, size=n)
        amp /= np.sqrt(np.sum(amp**2) / 2.0)  # unit RMS
        return WaveField(
            (dirs * (2 * np.pi / lam)[:, None]).astype(F32),
            rng.uniform(0, 2 * np.pi, size=n).astype(F32),
            amp.astype(F32),
        )

    def __call__(self, x, y, z) -> np.ndarray:
        out = np.zeros(np.shape(x), F32)
        for (kx, ky, kz), ph, a in zip(self.k, self.phase, self.amp, strict=True):
            out += a * np.sin(kx * x + ky * y + kz * z + ph)
        return out

    @property
    def grad_rms(self) -> float:
        """RMS gradient magnitude, so |f| / grad_rms approximates distance to the zero set."""
        return float(np.sqrt(np.sum(self.amp**2 * np.sum(self.k**2, axis=1)) / 2.0))


# --------------------------------------------------------------------------------------------
# head parameters
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HeadParams:
    """Per-head anatomy parameters (canonical mm and HU)."""

    icv_axes: tuple[float, float, float, float]  # half-width, half-length, up, down
    skull_mm: float
    scalp_mm: float
    atrophy: float  # 0 young .. 1 old: wider sulci and ventricles
    wm_hu: float
    gm_hu: float
    csf_hu: float
    bone_hu: float
    diploe_hu: float
    sinus_hu: float  # dural venous sinus density (dense = mimic)
    falx_hu: float
    pineal_calc_hu: float  # 0 = not calcified
    choroid_calc_hu: float
    falx_calc: tuple[tuple[float, float, float], ...]  # centres of falx plaques
    frontal_sinus: bool
    ventricle_scale: float
    # young brains fill the skull: extra-axial CSF down to nothing, sulci effaced
    csf_offset_mm: float = 0.0  # added to the extra-axial CSF width (can close it in places)
    sulcal_scale: float = 1.0  # sulcal half-width factor (0.3 = nearly effaced)
    # beam hardening ("cupping"): brain next to the inner table reads brighter than at the centre
    cupping_hu: float = 0.0
    cupping_mm: float = 8.0
    # dural folds up to 2.6 mm thick and 78 HU, and extracranial muscle at the densities of
    # unenhanced muscle: blood-like on 5 mm slabs, as the real ones (stage C's segmenter marked
    # the falx, tentorium and skull-base muscle of the real CQ500 series as blood)
    falx_mm: float = 0.8  # falx and tentorium thickness
    muscle_hu: float = 40.0  # temporalis, masseter, pterygoids, neck


def sample_head(rng: np.random.Generator, *, mimics: bool) -> HeadParams:
    atrophy = float(np.clip(rng.beta(1.6, 3.0), 0, 1))
    wm = rng.uniform(22.0, 34.0)  # scanners differ by several HU (real CQ500 brain: ~33 median)
    calc_p = 0.75 if mimics else 0.3
    falx_calc: tuple[tuple[float, float, float], ...] = ()
    if rng.random() < (0.5 if mimics else 0.1):
        falx_calc = tuple(
            (0.0, float(rng.uniform(-50, 40)), float(rng.uniform(25, 60)))
            for _ in range(rng.integers(1, 4))
        )
    return HeadParams(
        icv_axes=(
            rng.uniform(63, 69),
            rng.uniform(80, 87),
            rng.uniform(68, 75),
            rng.uniform(72, 78),
        ),
        skull_mm=rng.uniform(4.5, 7.5),
        scalp_mm=rng.uniform(3.5, 7.0),
        atrophy=atrophy,
        wm_hu=wm,
        gm_hu=wm + rng.uniform(6.0, 12.0),
        csf_hu=rng.uniform(2.0, 10.0),
        bone_hu=rng.uniform(1200.0, 1700.0),
        diploe_hu=rng.uniform(350.0, 750.0),
        sinus_hu=rng.uniform(55.0, 68.0) if mimics and rng.random() < 0.5 else rng.uniform(38, 50),
        falx_hu=rng.uniform(45.0, 78.0),
        pineal_calc_hu=rng.uniform(100, 300) if rng.random() < calc_p else 0.0,
        choroid_calc_hu=rng.uniform(80, 220) if rng.random() < calc_p else 0.0,
        falx_calc=falx_calc,
        frontal_sinus=bool(rng.random() < 0.8),
        ventricle_scale=float(0.8 + 0.7 * atrophy + rng.uniform(-0.08, 0.08)),
        csf_offset_mm=float(rng.uniform(-1.0, 0.6) * (1.0 - atrophy)),
        sulcal_scale=float(np.clip(rng.uniform(0.25, 1.1) + atrophy, 0.25, 1.2)),
        cupping_hu=float(rng.uniform(2.0, 20.0)),
        cupping_mm=float(rng.uniform(3.0, 15.0)),
        falx_mm=float(rng.uniform(0.8, 2.6)),
        muscle_hu=float(rng.uniform(42.0, 66.0)),
    )


# fixed canonical landmarks ------------------------------------------------------------------
ICV_Y0 = 5.0  # centre of the cranial ellipsoid (posterior offset)
PETROUS = ((15.0, -4.0), (55.0, 24.0))  # apex, lateral end of the right-side ridge (|x|)
FM_CENTER = (0.0, 20.0)  # foramen magnum centre (x, y)
MIDDLE_FOSSA = (36.0, -8.0, 26.0)  # centre (|x|, y) and radius of each middle fossa's bowl


def lateral_ventricle_parts(side: float, scale: float) -> list[tuple[tuple, tuple]]:
    """Ellipsoids (centre, axes) forming one lateral ventricle; `side` is +1 (left) or -1."""
    s = scale
    parts = [
        ((side * 9.0, -24.0, 9.0), (4.0 * s, 13.0, 7.0 * s)),  # frontal horn
        ((side * 11.0, -4.0, 14.0), (4.5 * s, 18.0, 4.5 * s)),  # body
        ((side * 15.0, 14.0, 12.0), (5.0 * s, 10.0, 5.0 * s)),  # body/atrium junction
        ((side * 20.0, 26.0, 5.0), (6.5 * s, 9.0, 8.0 * s)),  # atrium (trigone)
        ((side * 19.0, 41.0, 2.0), (3.5 * s, 11.0, 3.5 * s)),  # occipital horn
        ((side * 28.0, 2.0, -14.0), (3.0 * s, 14.0, 3.0 * s)),  # temporal horn
    ]
    return parts


THIRD_VENTRICLE = ((0.0, 2.0, -4.0), (1.6, 13.0, 9.0))
FOURTH_VENTRICLE = ((0.0, 17.0, -37.0), (6.0, 3.5, 8.0))
SUPRASELLAR = ((0.0, -10.0, -18.0), (12.0, 9.0, 5.0))
DEEP_GREY = [
    ((13.0, -17.0, 9.0), (5.0, 8.0, 9.0)),  # caudate head
    ((23.0, -3.0, -2.0), (6.0, 13.0, 8.5)),  # lentiform
    ((10.0, 9.0, 1.0), (8.0, 12.0, 8.0)),  # thalamus
]
ATRIUM = (20.0, 26.0, 5.0)
PINEAL = (0.0, 21.0, -1.0)
SULCUS_HALF_MM = 0.7
COMPARTMENTS = 16  # densities per head in the face and neck
COMPARTMENT_LEVELS = 1.2  # levels per unit of each compartment field
AIR_CELL_LEVELS = 0.5  # levels per unit of the air-cell field (mastoid, ethmoid)
# the clivus's axes (columns): across, front to back, and down its slope (20° off vertical)
CLIVUS_AXES = np.array([[1.0, 0.0, 0.0], [0.0, 0.949, 0.316], [0.0, 0.316, -0.949]]).T


# --------------------------------------------------------------------------------------------
# the head model
# --------------------------------------------------------------------------------------------
class HeadModel:
    """Implicit head: call the field methods on canonical coordinates, or `render` a lattice."""

    def __init__(self, params: HeadParams, rng: np.random.Generator) -> None:
        self.p = params
        self.gyri = WaveField.random(rng, 12, (20.0, 30.0))
        self.folia = WaveField.random(rng, 8, (6.0, 9.0))
        self.texture = WaveField.random(rng, 6, (8.0, 25.0))
        self.bone_noise = WaveField.random(rng, 8, (3.0, 7.0))
        self.wobble = WaveField.random(rng, 6, (40.0, 90.0))
        # the inner table is not smooth: orbital roofs and the middle fossae ridged by the
        # gyri above them (juga), the vault dimpled; on slabs cut obliquely through them these
        # give the islands of bone among brain that real skull-base and vertex slices show
        # (drawn last, so the fields above keep their values for a seed)
        self.floor_relief = WaveField.random(rng, 10, (10.0, 20.0))
        self.vault_relief = WaveField.random(rng, 8, (10.0, 24.0))
        self.relief_mm = (float(rng.uniform(1.0, 2.5)), float(rng.uniform(0.2, 0.7)))
        # the face and neck are not one muscle: compartments (muscles, glands, vessels, lymphoid
        # tissue) at 28-88 HU, some parted by fat planes, with fragments of thin bone (pterygoid
        # plates, styloid, hyoid) among them; measured on CQ500's 5 mm slabs below the skull
        # base, soft tissue away from bone spans 32-83 HU (10th-90th percentile) where one
        # muscle density per head spanned 10-16 HU (drawn last, as the relief above)
        self.compartments = (
            WaveField.random(rng, 6, (50.0, 90.0)),
            WaveField.random(rng, 6, (50.0, 90.0)),
        )
        self.compartment_hu = rng.uniform(28.0, 88.0, size=COMPARTMENTS).astype(F32)
        self.fat_plane = rng.random((2, COMPARTMENTS)) < 0.5
        self.fat_plane_mm = float(rng.uniform(0.6, 1.6))
        self.fragments = WaveField.random(rng, 10, (6.0, 12.0))
        self.fragment_hu = float(rng.uniform(300.0, 1000.0))
        # the skull base is not solid cortical bone: the clivus, sphenoid body and vertebrae
        # are cancellous bone (marrow, 180-420 HU) inside a 0.8-1.8 mm cortex, and the mastoid
        # and ethmoid air cells are parted by septa of 0.3-0.8 mm; on 5 mm slabs both give
        # the bone in partial volume (90-300 HU) that real skull-base slabs are full of
        # (drawn last, as the relief above)
        self.marrow_hu = float(rng.uniform(180.0, 420.0))
        self.cortex_mm = float(rng.uniform(0.8, 1.8))
        self.air_cells = WaveField.random(rng, 8, (5.0, 10.0))
        self.septum_mm = float(rng.uniform(0.3, 0.8))
        self.wall_mm = float(rng.uniform(0.6, 1.4))  # the sinuses' and orbits' bony walls
        ax, ay, au, ad = params.icv_axes
        self.icv_axes = (ax, ay, au, ad)

    # ---- cranial cavity -------------------------------------------------------------------
    def floor_z(self, x, y) -> np.ndarray:
        """Height of the inner table of the skull base (anterior, middle, posterior fossae)."""
        ax_ = np.abs(x)
        ant = F32(-20.0) - F32(6.0) * np.exp(-((x / F32(8.0)) ** 2))
        mid = F32(-30.0) + F32(-16.0) * sigmoid((ax_ - F32(12.0)) / F32(3.0))
        # each middle fossa is a bowl under its temporal lobe (deepest near its centre, rising
        # 14 mm to its rim), not a flat shelf: cut across, the lobe's tip is an oval island
        # that shrinks slice by slice inside the bone, as on real scans
        rho2 = ((ax_ - F32(MIDDLE_FOSSA[0])) / F32(MIDDLE_FOSSA[2])) ** 2 + (
            (y - F32(MIDDLE_FOSSA[1])) / F32(MIDDLE_FOSSA[2])
        ) ** 2
        mid = np.maximum(mid, F32(-47.0) + F32(14.0) * np.minimum(rho2, F32(1.0)))
        post = F32(-64.0) + F32(12.0) * ((x / F32(48.0)) ** 2 + ((y - F32(40.0)) / F32(48.0)) ** 2)
        (x0, y0), (x1, y1) = PETROUS
        ridge_y = F32(y0) + (ax_ - F32(x0)) * F32((y1 - y0) / (x1 - x0))
        s1 = sigmoid((y + F32(20.0) + np.minimum(F32(0.006) * x * x, F32(18.0))) / F32(3.0))
        s2 = sigmoid((y - ridge_y) / F32(2.5))
        zf = ant + (mid - ant) * s1
        zf = zf + (post - zf) * s2
        d_ridge = segment_distance_2d(ax_, y, PETROUS[0], PETROUS[1])
        zf = np.maximum(zf, F32(-30.0) - F32(1.4) * d_ridge)
        # ridges of the anterior and middle fossae, gentler in the posterior fossa
        amp = F32(self.relief_mm[0]) * (F32(1.0) - F32(0.6) * s2)
        zf = zf + amp * self.floor_relief(x, y, F32(0.0))
        fm = (x / F32(14.0)) ** 2 + ((y - F32(FM_CENTER[1])) / F32(17.0)) ** 2
        return np.where(fm < 1.0, F32(-200.0), zf)

    def icv_sdf(self, x, y, z, dimples: np.ndarray | None = None,
                clivus: np.ndarray | None = None) -> np.ndarray:
        """Signed distance to the inner table (negative inside the cranial cavity);
        ``dimples``: :meth:`vault_dimples`, ``clivus``: :meth:`clivus_sdf` on the same points,
        if already computed."""
        ax, ay, au, ad = self.icv_axes
        yy = y - F32(ICV_Y0)
        axx = F32(ax) * (F32(1.0) + F32(0.07) * yy / F32(ay))
        az = np.where(z > 0, F32(au), F32(ad))
        k0 = np.sqrt((x / axx) ** 2 + (yy / F32(ay)) ** 2 + (z / az) ** 2)
        k1 = np.sqrt((x / axx**2) ** 2 + (yy / F32(ay) ** 2) ** 2 + (z / az**2) ** 2)
        d_ell = k0 * (k0 - 1.0) / np.maximum(k1, F32(1e-6))
        d_ell = d_ell - (self.vault_dimples(x, y, z) if dimples is None else dimples)
        d_floor = (self.floor_z(x, y) - z) * F32(0.9)
        clivus = self.clivus_sdf(x, y, z) if clivus is None else clivus
        d = np.maximum(np.maximum(d_ell, d_floor), -clivus)
        canal = np.sqrt((x / F32(13.0)) ** 2 + ((y - F32(FM_CENTER[1])) / F32(15.0)) ** 2)
        d_canal = np.maximum((canal - 1.0) * F32(13.0), z - F32(-55.0))
        return np.minimum(d, d_canal)

    def clivus_sdf(self, x, y, z) -> np.ndarray:
        """The clivus: a plate sloping from the dorsum sellae down to the basion, the anterior
        wall of the posterior fossa (the brainstem lies just behind it)."""
        return rotated_ellipsoid_sdf(x, y, z, (0.0, -8.0, -48.0), (11.0, 6.0, 20.0), CLIVUS_AXES)

    def vault_dimples(self, x, y, z) -> np.ndarray:
        """How far (mm) the vault's inner table is pushed outwards (negative: inwards)."""
        upper = sigmoid((z - F32(25.0)) / F32(8.0))
        return F32(self.relief_mm[1]) * upper * self.vault_relief(x, y, z)

    def tentorium_z(self, x, y) -> np.ndarray:
        return F32(-10.0) - F32(0.25) * np.maximum(y, F32(0.0)) - F32(0.006) * x * x

    def infratentorial(self, x, y, z) -> np.ndarray:
        (x0, y0), (x1, y1) = PETROUS
        ridge_y = F32(y0) + (np.abs(x) - F32(x0)) * F32((y1 - y0) / (x1 - x0))
        return (z < self.tentorium_z(x, y)) & (y > ridge_y - 4.0) & (z < -8.0)

    def brainstem_sdf(self, x, y, z) -> np.ndarray:
        bulge = np.exp(-(((z + F32(28.0)) / F32(11.0)) ** 2))
        yc = F32(8.0) - F32(9.0) * bulge
        rx = F32(10.0) + F32(6.0) * bulge
        ry = F32(8.5) + F32(4.0) * bulge
        r = np.sqrt((x / rx) ** 2 + ((y - yc) / ry) ** 2)
        d = (r - 1.0) * F32(9.0)
        return np.maximum(d, np.maximum(z - F32(-4.0), F32(-75.0) - z))

    def ventricle_sdf(self, x, y, z, *, sides: tuple[float, ...] = (-1.0, 1.0)) -> np.ndarray:
        """Union of the lateral ventricles on `sides` (signed distance, mm)."""
        d = np.full(np.shape(x), 1e3, F32)
        for side in sides:
            for c, a in lateral_ventricle_parts(side, self.p.ventricle_scale):
                d = np.minimum(d, ellipsoid_sdf(x, y, z, c, a))
        return d

    def midline_ventricles_sdf(self, x, y, z) -> np.ndarray:
        c3, a3 = THIRD_VENTRICLE
        a3 = (a3[0] * self.p.ventricle_scale, a3[1], a3[2])
        return np.minimum(ellipsoid_sdf(x, y, z, c3, a3), ellipsoid_sdf(x, y, z, *FOURTH_VENTRICLE))

    def fissure_floor_z(self, y) -> np.ndarray:
        return F32(-40.0) + F32(62.0) * sigmoid((F32(32.0) - np.abs(y - F32(2.0))) / F32(3.0))

    def sylvian_dist(self, x, y, z) -> np.ndarray:
        d = segment_distance_2d(np.abs(x), y, (30.0, -16.0), (62.0, -2.0))
        zr = np.abs(z + F32(8.0)) - F32(9.0)
        return np.maximum(d, zr * 2.0)

    # ---- the picture --------------------------------------------------------------------------
    def render(self, lat: Lattice, reg: Fields | None = None) -> np.ndarray:
        """HU image of the anatomy on a lattice (no bleeds, no scanner effects)."""
        p = self.p
        x, y, z = lat.x, lat.y, lat.z
        reg = Fields(self, x, y, z) if reg is None else reg
        d_icv, depth = reg["d_icv"], reg["depth"]
        hu = np.full(lat.shape, -1000.0, F32)

        # soft tissues: scalp over the vault, face and neck below
        bn = self.bone_noise(x, y, z)
        t_skull = F32(p.skull_mm) * (F32(1.0) + F32(0.25) * np.tanh(np.abs(y) / F32(40.0) - 1.0))
        temporal = sigmoid((np.abs(x) - F32(50.0)) / F32(4.0)) * sigmoid((F32(15.0) - z) / F32(6))
        t_skull = t_skull * (F32(1.0) - F32(0.45) * temporal) + F32(0.4) * bn
        # the floors of the anterior and middle fossae (orbital roofs, greater sphenoid wings)
        # are 2-3.5 mm of bone, not the vault's 3.5-6 (the petrous pyramids are drawn below)
        floor = sigmoid((F32(-14.0) - z) / F32(4.0)) * sigmoid((F32(25.0) - y) / F32(6.0))
        t_skull = t_skull * (F32(1.0) - F32(0.6) * floor)
        # the dimples are the inner table's: the outer table stays smooth (at least 1 mm of bone)
        t_skull = np.maximum(t_skull - reg["dimples"], F32(1.0))
        scalp = F32(p.scalp_mm) + F32(7.0) * temporal  # temporalis muscle
        face = ellipsoid_sdf(x, y, z, (0.0, -4.0, -55.0), (68.0, 92.0, 60.0))
        face = np.maximum(face, z - F32(-12.0))
        neck = ellipsoid_sdf(x, y, z, (0.0, 10.0, -95.0), (62.0, 70.0, 60.0))
        d_head = np.minimum(np.minimum(d_icv - t_skull - scalp, face), neck)
        soft = d_head < 0
        fat = soft & (d_head > -F32(p.scalp_mm) * 0.7) & (d_head < -1.2) & (z > -20.0)
        # scalp (galea, ~40 HU) over the vault; muscle (temporalis, face, neck) at its own density
        muscle = F32(p.muscle_hu - 40.0) * np.maximum(temporal, sigmoid((F32(-12.0) - z) / F32(4)))
        tex = self.texture(x, y, z)
        hu[soft] = (F32(40.0) + muscle + F32(4.0) * tex)[soft]
        hu[fat] = F32(-95.0)
        subq = soft & (face < 0) & (z < -12.0) & (face > -8.0) & (face < -1.5)
        hu[subq] = F32(-90.0)
        deep = soft & (z < -10.0) & (d_head < -4.0) & ~subq
        if deep.any():
            hu[deep] = self._deep_soft_tissue(x[deep], y[deep], z[deep], hu[deep], tex[deep])

        # bone: vault with tables and diploe; skull base as a thicker slab
        bone = (d_icv >= 0) & (d_icv < t_skull)
        rel = d_icv / np.maximum(t_skull, F32(1e-3))
        table = (rel < 0.3) | (rel > 0.72)
        bone_hu = np.where(table, F32(p.bone_hu), F32(p.diploe_hu) + F32(150.0) * bn)
        petrous = segment_distance_2d(np.abs(x), y, PETROUS[0], PETROUS[1]) < 11.0
        bone_hu = np.where(petrous & (z < -24.0), F32(p.bone_hu + 300.0), bone_hu)
        hu[bone] = bone_hu[bone]

        self._paint_base_of_skull(lat, hu, d_icv, soft | bone, reg["clivus"])

        # intracranial contents
        inside = reg["inside"]
        gm_mm = 2.6
        sulcus_mm = SULCUS_HALF_MM * p.sulcal_scale + 1.2 * p.atrophy
        near_sulcus = (reg["sulcal_s"] < sulcus_mm + gm_mm) & (depth < 16.0 + gm_mm)
        cortex = (depth - reg["csf_w"] < gm_mm) | near_sulcus
        brain = np.where(cortex, F32(p.gm_hu), F32(p.wm_hu))
        brain = np.where(reg["infra"], F32(p.gm_hu - 3.0), brain)
        brain = np.where(reg["brainstem"], F32(p.wm_hu + 4.0), brain)
        brain = brain + F32(1.5) * tex
        hu = np.where(inside, brain, hu)
        self._paint_deep(lat, hu)
        hu[reg["csf_space"] | reg["ventricle"]] = F32(p.csf_hu)
        self._paint_dura(lat, hu, reg)
        self._paint_calcifications(lat, hu)
        if p.cupping_hu > 0:
            cup = F32(p.cupping_hu) * np.exp(-np.maximum(depth, F32(0.0)) / F32(p.cupping_mm))
            hu = np.where(inside, hu + cup, hu)
        return hu

    def _deep_soft_tissue(self, x, y, z, hu, tex) -> np.ndarray:
        """Face and neck below the cranial floor: compartments of their own density, fat
        planes between some of them and fragments of thin bone (points given flat)."""
        idx = np.zeros(np.shape(x), np.int64)
        planes = np.zeros(np.shape(x), bool)
        for k, field_ in enumerate(self.compartments):
            t = field_(x, y, z) * F32(COMPARTMENT_LEVELS)
            level = np.floor(t).astype(np.int64)
            idx = idx * 7 + level
            # distance (mm) to the nearer border between levels
            gap = np.minimum(t - level, level + 1 - t) / F32(COMPARTMENT_LEVELS * field_.grad_rms)
            border = np.where(t - level < 0.5, level, level + 1) % COMPARTMENTS
            planes |= (gap < F32(self.fat_plane_mm / 2)) & self.fat_plane[k][border]
        new = self.compartment_hu[idx % COMPARTMENTS] + F32(4.0) * tex
        new = np.where(planes, F32(-90.0), new)
        new = np.where(self.fragments(x, y, z) > F32(2.0), F32(self.fragment_hu), new)
        # fade in from about the level of the orbital roofs (z -10 to -22 mm) downwards
        w = sigmoid((F32(-16.0) - z) / F32(2.5))
        return (F32(1.0) - w) * hu + w * new

    def _paint_deep(self, lat: Lattice, hu: np.ndarray) -> None:
        p = self.p
        for (cx, cy, cz), axes in DEEP_GREY:
            for side in (-1.0, 1.0):
                c = (side * cx, cy, cz)
                win = lat.window(np.array(c), max(axes))
                if win is None:
                    continue
                d = ellipsoid_sdf(*lat.pts(win), c, axes)
                sub = hu[win]
                sub[d < 0] = F32(p.gm_hu - 2.0)
        # cerebellar white matter core
        for side in (-1.0, 1.0):
            c = (side * 15.0, 40.0, -40.0)
            win = lat.window(np.array(c), 12.0)
            if win is not None:
                d = ellipsoid_sdf(*lat.pts(win), c, (11.0, 11.0, 8.0))
                hu[win][d < 0] = F32(p.wm_hu + 2.0)

    def _paint_dura(self, lat: Lattice, hu: np.ndarray, reg: Fields) -> None:
        p = self.p
        x, y, z = lat.x, lat.y, lat.z
        inside, depth = reg["inside"], reg["depth"]
        half = F32(p.falx_mm / 2.0)
        falx = inside & (np.abs(x) < half) & (z > self.fissure_floor_z(y)) & ~reg["infra"]
        hu[falx] = F32(p.falx_hu)
        zt = self.tentorium_z(x, y)
        tent = inside & (np.abs(z - zt) < half) & (y > 12.0 + 0.02 * x * x) & (depth > 1.0)
        hu[tent] = F32(p.falx_hu - 5.0)
        # venous sinuses: superior sagittal (triangle at the inner table), transverse, straight
        sss = inside & (depth < 8.0) & (np.abs(x) < (8.0 - depth) * 0.7) & (z > -15.0)
        trans = inside & (depth < 6.0) & (np.abs(z - zt) < 4.0) & (y > 40.0)
        straight = inside & (np.abs(x) < 2.5) & (np.abs(z - zt - 2.5) < 2.5) & (y > 22.0)
        hu[sss | trans | straight] = F32(p.sinus_hu)

    def _paint_calcifications(self, lat: Lattice, hu: np.ndarray) -> None:
        p = self.p
        spots: list[tuple[tuple[float, float, float], tuple[float, float, float], float]] = []
        if p.pineal_calc_hu > 0:
            spots.append((PINEAL, (3.0, 3.5, 3.0), p.pineal_calc_hu))
        if p.choroid_calc_hu > 0:
            for side in (-1.0, 1.0):
                spots.append(
                    ((side * ATRIUM[0], ATRIUM[1], ATRIUM[2]), (3.0, 4.0, 3.0), p.choroid_calc_hu)
                )
        for c in p.falx_calc:
            spots.append((c, (0.8, 5.0, 3.0), 250.0))
        for c, axes, val in spots:
            win = lat.window(np.array(c), max(axes))
            if win is None:
                continue
            d = ellipsoid_sdf(*lat.pts(win), c, axes)
            sub = hu[win]
            sub[d < 0] = F32(val)

    def _paint_base_of_skull(self, lat, hu, d_icv, tissue, clivus) -> None:
        """Air cells, sinuses, orbits and upper cervical bone below the cranial floor
        (``clivus``: :meth:`clivus_sdf` on the lattice)."""
        p = self.p
        x, y, z = lat.x, lat.y, lat.z
        # central skull base: the clivus (a plate sloping from the dorsum sellae down to the
        # basion) and the sphenoid body around its sinus, cancellous bone in a cortex; the
        # petrous pyramids dense
        bn = self.bone_noise(x, y, z)
        body = ellipsoid_sdf(x, y, z, (0.0, -20.0, -44.0), (14.0, 11.0, 10.0))
        central = np.minimum(clivus, body) - F32(1.5) * bn
        pyramid = (
            (segment_distance_2d(np.abs(x), y, PETROUS[0], PETROUS[1]) < 6.5 + 1.5 * bn)
            & (z < -28.0)
            & (z > -50.0)
        )
        outside = (d_icv > 0) & tissue
        cortex = (central > -F32(self.cortex_mm)) | (d_icv < F32(self.cortex_mm))
        spongy = F32(self.marrow_hu) + F32(120.0) * bn
        hu[:] = np.where(outside & (central < 0), np.where(cortex, F32(p.bone_hu), spongy), hu)
        base_bone = pyramid & outside
        hu[base_bone] = F32(p.bone_hu) + F32(150.0) * bn[base_bone]
        airs = [
            ((0.0, -21.0, -44.0), (12.0, 9.0, 8.0), False),  # sphenoid sinus
            ((0.0, -62.0, -62.0), (7.0, 26.0, 22.0), False),  # nasal cavity
            ((-26.0, -50.0, -68.0), (12.0, 15.0, 16.0), False),  # maxillary
            ((26.0, -50.0, -68.0), (12.0, 15.0, 16.0), False),
            ((0.0, -8.0, -85.0), (12.0, 7.0, 18.0), False),  # nasopharynx
            ((-9.0, -56.0, -34.0), (6.0, 16.0, 9.0), True),  # ethmoid cells
            ((9.0, -56.0, -34.0), (6.0, 16.0, 9.0), True),
            ((-50.0, 24.0, -48.0), (11.0, 12.0, 12.0), True),  # mastoid cells
            ((50.0, 24.0, -48.0), (11.0, 12.0, 12.0), True),
        ]
        if p.frontal_sinus:
            airs.append(((0.0, -82.0, -4.0), (15.0, 6.0, 11.0), False))
        for c, axes, cells in airs:
            win = lat.window(np.array(c), max(axes))
            if win is None:
                continue
            xs, ys, zs = lat.pts(win)
            d = ellipsoid_sdf(xs, ys, zs, c, axes)
            m = (d < 0) & tissue[win]
            if not cells:  # a sinus or cavity is lined by a thin wall of bone
                wall = m & (d > -F32(self.wall_mm))
                hu[win][wall] = F32(p.bone_hu * 0.8)
                m &= ~wall
            if cells:  # air cells: bone septa at the borders of a field's levels
                t = self.air_cells(xs, ys, zs) * F32(AIR_CELL_LEVELS)
                gap = np.abs(t - np.round(t)) / F32(AIR_CELL_LEVELS * self.air_cells.grad_rms)
                hu[win][m & (gap < F32(self.septum_mm / 2))] = F32(p.bone_hu * 0.8)
                m &= gap >= F32(self.septum_mm / 2)
            if c[0] == 0.0 and c[1] < -50:  # nasal septum
                m &= np.abs(xs) > 1.2
            sub = hu[win]
            sub[m] = F32(-1000.0)
        # mandibular rami (cortex around marrow) and zygomatic arches, outside the skull
        for side in (-1.0, 1.0):
            rc = (side * 46.0, -4.0, -75.0)
            win = lat.window(np.array(rc), 34.0)
            if win is not None:
                xs, ys, zs = lat.pts(win)
                sub, t = hu[win], tissue[win] & (d_icv[win] > 0)
                ramus = ellipsoid_sdf(xs, ys, zs, rc, (4.5, 15.0, 32.0))
                sub[t & (ramus < 0)] = F32(p.bone_hu * 0.9)
                marrow = t & (ramus < -F32(self.cortex_mm))
                sub[marrow] = F32(self.marrow_hu) + F32(120.0) * bn[win][marrow]
            zc = (side * 58.0, -22.0, -44.0)
            win = lat.window(np.array(zc), 28.0)
            if win is not None:
                xs, ys, zs = lat.pts(win)
                arch = ellipsoid_sdf(xs, ys, zs, zc, (3.0, 26.0, 4.5))
                sub = hu[win]
                sub[tissue[win] & (d_icv[win] > 0) & (arch < 0)] = F32(p.bone_hu * 0.9)
        # orbits: fat cone, globe, lens
        for side in (-1.0, 1.0):
            oc = (side * 30.0, -62.0, -32.0)
            win = lat.window(np.array(oc), 30.0)
            if win is None:
                continue
            xs, ys, zs = lat.pts(win)
            sub = hu[win]
            cone = ellipsoid_sdf(xs, ys, zs, oc, (15.0, 24.0, 13.0))
            orbit_wall = (cone >= 0) & (cone < F32(self.wall_mm)) & (ys > oc[1] - 16.0)
            sub[orbit_wall & tissue[win] & (d_icv[win] > 0)] = F32(p.bone_hu * 0.8)
            sub[cone < 0] = F32(-90.0)
            globe = ellipsoid_sdf(xs, ys, zs, (side * 31.0, -72.0, -32.0), (12.0, 12.0, 12.0))
            sub[globe < 0] = F32(12.0)
            sub[(globe < 0) & (globe > -1.0)] = F32(35.0)
            lens = ellipsoid_sdf(xs, ys, zs, (side * 31.0, -82.5, -32.0), (4.5, 1.8, 4.5))
            sub[lens < 0] = F32(90.0)
            nerve = segment_distance_2d(xs, ys, (side * 29.0, -62.0), (side * 9.0, -22.0))
            sub[(nerve < 2.2) & (np.abs(zs + 32.0) < 2.5) & (cone < 0)] = F32(35.0)
        # atlas ring and dens around the spinal canal
        win = lat.window(np.array((0.0, 15.0, -80.0)), 40.0)
        if win is not None:
            xs, ys, zs = lat.pts(win)
            sub = hu[win]
            canal = np.sqrt((xs / 13.0) ** 2 + ((ys - FM_CENTER[1]) / 15.0) ** 2)
            # the vertebrae: cancellous bone in a cortex (its width in units of the canal's
            # radius, about 13-15 mm)
            c_w = F32(self.cortex_mm / 14.0)
            ring = (canal > 1.15) & (canal < 1.65) & (zs < -62.0) & (zs > -95.0) & (ys > 0.0)
            shell = (canal < 1.15 + c_w) | (canal > 1.65 - c_w)
            spongy = F32(self.marrow_hu) + F32(120.0) * bn[win]
            sub[ring] = np.where(shell, F32(p.bone_hu * 0.8), spongy)[ring]
            dens = ellipsoid_sdf(xs, ys, zs, (0.0, 0.0, -88.0), (6.0, 6.0, 16.0))
            sub[dens < 0] = np.where(dens > -F32(self.cortex_mm), F32(p.bone_hu * 0.8),
                                     spongy)[dens < 0]
            cord = (canal < 0.6) & (zs < -60.0)
            sub[(canal < 1.0) & (zs < -60.0)] = F32(p.csf_hu)
            sub[cord] = F32(p.wm_hu + 6.0)


class Fields:
    """Lazily computed, cached anatomy fields on one point set (shared by image and bleeds).

    Keys: dimples (the vault's, mm), d_icv (mm, <0 inside the inner table), depth (= -d_icv),
    inside, infra (infratentorial), csf_w (extra-axial CSF thickness), sulcal_s (distance-like
    value to the nearest cerebral sulcus), csf_space (subarachnoid CSF: convexity, sulci,
    fissures, cisterns), ventricle, parenchyma, brainstem.
    """

    def __init__(self, model: HeadModel, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> None:
        self.m, self.x, self.y, self.z = model, x, y, z
        self._cache: dict[str, np.ndarray] = {}

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._cache:
            self._cache[key] = getattr(self, "_" + key)()
        return self._cache[key]

    def _dimples(self):
        return self.m.vault_dimples(self.x, self.y, self.z)

    def _clivus(self):
        return self.m.clivus_sdf(self.x, self.y, self.z)

    def _d_icv(self):
        return self.m.icv_sdf(self.x, self.y, self.z, dimples=self["dimples"],
                              clivus=self["clivus"])

    def _depth(self):
        return -self["d_icv"]

    def _inside(self):
        return self["d_icv"] < 0

    def _infra(self):
        return self.m.infratentorial(self.x, self.y, self.z)

    def _wobble(self):
        return self.m.wobble(self.x, self.y, self.z) * F32(0.6)

    def _csf_w(self):
        p = self.m.p
        return np.maximum(F32(1.0 + p.csf_offset_mm + 2.5 * p.atrophy) + self["wobble"], F32(0.0))

    def _sulcal_s(self):
        return np.abs(self.m.gyri(self.x, self.y, self.z)) / F32(self.m.gyri.grad_rms)

    def _brainstem(self):
        return self.m.brainstem_sdf(self.x, self.y, self.z) < 0

    def _ventricle(self):
        m, x, y, z = self.m, self.x, self.y, self.z
        v = (m.ventricle_sdf(x, y, z) < 0) | (m.midline_ventricles_sdf(x, y, z) < 0)
        return v & self["inside"]

    def _csf_space(self):
        m, x, y, z, p = self.m, self.x, self.y, self.z, self.m.p
        depth, infra = self["depth"], self["infra"]
        sulc_depth = F32(16.0) + F32(4.0) * self["wobble"]
        sulcus = self["sulcal_s"] < F32(SULCUS_HALF_MM * p.sulcal_scale + 1.2 * p.atrophy)
        sulcus &= (depth < sulc_depth) & ~infra
        f = np.abs(m.folia(x, y, z)) / F32(m.folia.grad_rms)
        folium = (f < F32(0.25 + 0.5 * p.atrophy)) & infra & (depth < F32(12.0))
        fissure = (np.abs(x) < F32(0.8 + 1.8 * p.atrophy)) & (z > m.fissure_floor_z(y)) & ~infra
        sylv = (m.sylvian_dist(x, y, z) < F32(0.8 + 2.0 * p.atrophy)) & ~infra
        d_bs = m.brainstem_sdf(x, y, z)
        cistern = (d_bs > 0) & (d_bs < F32(1.5 + 2.0 * p.atrophy)) & (z < -6.0)
        cistern |= ellipsoid_sdf(x, y, z, *SUPRASELLAR) < 0
        cistern |= ellipsoid_sdf(x, y, z, (0.0, 62.0, -56.0), (11.0, 12.0, 8.0)) < 0  # magna
        quad_axes = (5.0 + 3 * p.atrophy, 6.0, 5.0)
        cistern |= ellipsoid_sdf(x, y, z, (0.0, 24.0, -8.0), quad_axes) < 0  # quadrigeminal
        extra = depth < self["csf_w"]
        any_csf = extra | sulcus | folium | fissure | sylv | cistern
        return self["inside"] & any_csf & ~self["brainstem"]

    def _parenchyma(self):
        return self["inside"] & ~self["csf_space"] & ~self["ventricle"]
