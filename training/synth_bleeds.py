"""Haemorrhages for the phantom generator: sampling, masks and true volumes.

Every bleed is an implicit 3-D shape in canonical head coordinates (see `synth_anatomy`), so the
same code paints the slice masks and counts the true volume on a fine 3-D grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from training.synth_anatomy import (
    DEEP_GREY,
    F32,
    ICV_Y0,
    SUPRASELLAR,
    Fields,
    HeadModel,
    Lattice,
    WaveField,
    lateral_ventricle_parts,
    rotated_ellipsoid_sdf,
)

SUBTYPES = ("epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural")
EPIDURAL, INTRAPARENCHYMAL, INTRAVENTRICULAR, SUBARACHNOID, SUBDURAL = 1, 2, 3, 4, 5
#: Label painting order: later wins where shapes overlap, so extra-axial collections and the
#: parenchymal core are never hidden by the thin subarachnoid/intraventricular blood they abut.
PAINT_ORDER = (SUBARACHNOID, INTRAVENTRICULAR, INTRAPARENCHYMAL, SUBDURAL, EPIDURAL)


@dataclass(frozen=True)
class Bleed:
    """One haemorrhage: subtype code 1..5, variant name, density and shape parameters."""

    subtype: int
    variant: str
    hu: float
    center: tuple[float, float, float]  # canonical mm; with `radius` bounds the shape
    radius: float
    params: dict = field(default_factory=dict)
    noise: WaveField | None = None

    @property
    def name(self) -> str:
        return SUBTYPES[self.subtype - 1]


# --------------------------------------------------------------------------------------------
# geometry helpers
# --------------------------------------------------------------------------------------------
def _surface_point(model: HeadModel, direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inner-table point along a ray from the cranial centre, and the inward unit normal there."""
    origin = np.array([0.0, ICV_Y0, 0.0])
    lo, hi = 0.0, 200.0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        q = origin + mid * direction
        if model.icv_sdf(*(np.array([v], F32) for v in q))[0] < 0:
            lo = mid
        else:
            hi = mid
    c = origin + lo * direction
    eps = 0.5
    grad = np.array(
        [
            model.icv_sdf(*(np.array([v], F32) for v in c + eps * e))[0]
            - model.icv_sdf(*(np.array([v], F32) for v in c - eps * e))[0]
            for e in np.eye(3)
        ]
    )
    n_in = -grad / max(np.linalg.norm(grad), 1e-9)
    return c, n_in


def _tangent_basis(n: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    a = np.array([0.0, 0.0, 1.0]) if abs(n[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = np.cross(n, a)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(n, e1)
    ang = rng.uniform(0, np.pi)
    return np.cos(ang) * e1 + np.sin(ang) * e2, -np.sin(ang) * e1 + np.cos(ang) * e2


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _convexity_direction(rng: np.random.Generator, *, temporal_bias: bool) -> np.ndarray:
    az = rng.uniform(-np.pi, np.pi)
    if temporal_bias and rng.random() < 0.6:
        az = rng.choice([-1.0, 1.0]) * np.pi / 2 + rng.normal(0, 0.45)  # lateral (temporal)
    el = rng.uniform(-0.15, 0.75)
    d = np.array([np.sin(az) * np.cos(el), -np.cos(az) * np.cos(el), np.sin(el)])
    return d / np.linalg.norm(d)


# --------------------------------------------------------------------------------------------
# sampling
# --------------------------------------------------------------------------------------------
def _sample_extra_axial(rng, model, subtype: int) -> Bleed:
    hu = rng.uniform(55.0, 90.0)
    if subtype == SUBDURAL and rng.random() < 0.25:
        side = float(rng.choice([-1.0, 1.0]))
        thick = rng.uniform(2.0, 7.0)
        if rng.random() < 0.5:  # interhemispheric, along the falx
            c = (side * 2.0, rng.uniform(-30, 40), rng.uniform(15, 50))
            r1, r2 = rng.uniform(15, 40), rng.uniform(10, 25)
            return Bleed(
                subtype,
                "falx",
                hu,
                c,
                max(r1, r2) + thick,
                {"side": side, "thick": thick, "r": (r1, r2)},
            )
        c = (side * rng.uniform(15, 35), rng.uniform(25, 55), 0.0)
        r1, r2 = rng.uniform(15, 30), rng.uniform(15, 30)
        zt = float(model.tentorium_z(np.float32(c[0]), np.float32(c[1])))
        c = (c[0], c[1], zt)
        return Bleed(
            subtype,
            "tentorial",
            hu,
            c,
            max(r1, r2) + thick + 15,
            {"side": side, "thick": thick, "r": (r1, r2)},
        )
    direction = _convexity_direction(rng, temporal_bias=subtype == EPIDURAL)
    c, n_in = _surface_point(model, direction)
    e1, e2 = _tangent_basis(n_in, rng)
    if subtype == EPIDURAL:
        r1, r2 = rng.uniform(14, 40), rng.uniform(14, 40)
        thick = min(rng.uniform(3.0, 26.0), 0.55 * min(r1, r2))
        power = 0.5  # elliptic profile: biconvex lens
    else:
        r1, r2 = rng.uniform(40, 85), rng.uniform(30, 65)
        thick = _loguniform(rng, 1.5, 18.0)
        power = 0.35  # flat, tapering crescent
    return Bleed(
        subtype,
        "convexity",
        hu,
        tuple(c),
        max(r1, r2) + thick,
        {
            "n": n_in,
            "e1": e1,
            "e2": e2,
            "r": (r1, r2),
            "thick": thick,
            "power": power,
            "side": float(np.sign(c[0]) or 1.0),
        },
    )


def _sample_iph(rng, model) -> Bleed:
    u = rng.random()
    side = float(rng.choice([-1.0, 1.0]))
    if u < 0.35:
        (cx, cy, cz), _ = DEEP_GREY[1]
        c = np.array([side * cx, cy, cz]) + rng.normal(0, 3, 3)
        variant = "basal_ganglia"
    elif u < 0.5:
        (cx, cy, cz), _ = DEEP_GREY[2]
        c = np.array([side * cx, cy, cz]) + rng.normal(0, 2, 3)
        variant = "thalamic"
    elif u < 0.9:
        for _ in range(100):
            d = _convexity_direction(rng, temporal_bias=False)
            s, _n = _surface_point(model, d)
            c = np.array([0.0, ICV_Y0, 0.0]) + (s - np.array([0.0, ICV_Y0, 0.0])) * rng.uniform(
                0.5, 0.8
            )
            if c[2] > -5:
                break
        variant = "lobar"
    else:
        c = np.array([side * 22.0, 42.0, -42.0]) + rng.normal(0, 3, 3)
        variant = "cerebellar"
    big = 18.0 if variant in ("lobar", "basal_ganglia") else 11.0
    r = _loguniform(rng, 2.5, big)
    axes = tuple(float(r * f) for f in (1.0, rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0)))
    rim = rng.uniform(1.0, 3.0) + 0.25 * r
    return Bleed(
        INTRAPARENCHYMAL,
        variant,
        rng.uniform(55.0, 85.0),
        tuple(c),
        max(axes) * 1.3 + rim,
        {"axes": axes, "rot": _random_rotation(rng), "rim": rim},
        WaveField.random(rng, 5, (8.0, 20.0)),
    )


def _sample_ivh(rng, model, gravity: np.ndarray) -> Bleed:
    sides = (-1.0, 1.0) if rng.random() < 0.6 else (float(rng.choice([-1.0, 1.0])),)
    hu = rng.uniform(55.0, 85.0)
    if rng.random() < 0.6:  # dependent layering in the occipital horns / atria
        tops = []
        for side in sides:
            for c, a in lateral_ventricle_parts(side, model.p.ventricle_scale)[3:4]:  # atrium
                tops.append(float(gravity @ np.array(c) + np.sqrt(np.sum((gravity * a) ** 2))))
        level = max(tops) - rng.uniform(3.0, 12.0)  # the occipital horns behind fill first
        return Bleed(
            INTRAVENTRICULAR,
            "layering",
            hu,
            (0.0, 20.0, 5.0),
            60.0,
            {"sides": sides, "level": level, "gravity": gravity},
        )
    return Bleed(
        INTRAVENTRICULAR,
        "cast",
        hu,
        (0.0, 5.0, 0.0),
        65.0,
        {"sides": sides, "midline": bool(rng.random() < 0.6)},
    )


def _sample_sah(rng, model) -> Bleed:
    u = rng.random()
    if u < 0.4:
        c, _n = _surface_point(model, _convexity_direction(rng, temporal_bias=False))
        r = rng.uniform(12.0, 35.0)
        variant = "cortical"
    elif u < 0.75:
        c, r, variant = np.array(SUPRASELLAR[0]), rng.uniform(25.0, 50.0), "basal"
    else:
        side = float(rng.choice([-1.0, 1.0]))
        c, r, variant = np.array([side * 40.0, -10.0, -8.0]), rng.uniform(18.0, 35.0), "sylvian"
    return Bleed(
        SUBARACHNOID,
        variant,
        rng.uniform(45.0, 72.0),
        tuple(c),
        r * 1.3,
        {"r": r},
        WaveField.random(rng, 5, (10.0, 25.0)),
    )


#: how often each subtype is drawn, in `SUBTYPES` order (EDH IPH IVH SAH SDH)
SUBTYPE_WEIGHTS = (0.12, 0.26, 0.14, 0.22, 0.26)


def subtype_probabilities(weights) -> np.ndarray:
    """`weights` (one per `SUBTYPES`, non-negative, not all zero) as probabilities."""
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (len(SUBTYPES),) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(
            f"subtype weights must be {len(SUBTYPES)} non-negative numbers, not all zero "
            f"({', '.join(SUBTYPES)}), got {list(np.ravel(weights))}"
        )
    return w / w.sum()


def sample_bleeds(
    rng: np.random.Generator,
    model: HeadModel,
    gravity: np.ndarray,
    subtypes: tuple[str, ...] | None = None,
    weights=None,
) -> list[Bleed]:
    """One to three haemorrhages; about a quarter of positives carry two or more subtypes.

    `gravity` holds the canonical coefficients of the world's downward axis (for fluid levels);
    `subtypes` forces which bleeds appear (names from `SUBTYPES`); `weights` (one per subtype)
    replaces `SUBTYPE_WEIGHTS`, e.g. to raise the rare subtypes in a validation seed (a study
    then carries at most as many subtypes as have a weight).
    """
    # the defaults as written (not renormalised), so default phantoms stay bit for bit as before
    p = np.array(SUBTYPE_WEIGHTS) if weights is None else subtype_probabilities(weights)
    n = 1 if rng.random() < 0.75 else int(rng.choice([2, 3], p=[0.75, 0.25]))
    n = min(n, int(np.count_nonzero(p)))
    kinds = rng.choice(np.arange(1, 6), size=n, replace=False, p=p)
    if subtypes:
        kinds = np.array([SUBTYPES.index(s) + 1 for s in subtypes])
    out = []
    for k in kinds:
        if k in (EPIDURAL, SUBDURAL):
            out.append(_sample_extra_axial(rng, model, int(k)))
        elif k == INTRAPARENCHYMAL:
            out.append(_sample_iph(rng, model))
        elif k == INTRAVENTRICULAR:
            out.append(_sample_ivh(rng, model, gravity))
        else:
            out.append(_sample_sah(rng, model))
    return out


# --------------------------------------------------------------------------------------------
# masks
# --------------------------------------------------------------------------------------------
def _as_f32(v) -> np.ndarray:
    return np.asarray(v, np.float32)


def bleed_mask(b: Bleed, model: HeadModel, f: Fields) -> np.ndarray:
    """Boolean mask of bleed `b` on the points of `f` (same shape as the points)."""
    x, y, z = f.x, f.y, f.z
    p = b.params
    if b.variant == "convexity":
        c, n, e1, e2 = (_as_f32(v) for v in (b.center, p["n"], p["e1"], p["e2"]))
        qx, qy, qz = x - c[0], y - c[1], z - c[2]
        qn = qx * n[0] + qy * n[1] + qz * n[2]
        u1 = (qx * e1[0] + qy * e1[1] + qz * e1[2]) / F32(p["r"][0])
        u2 = (qx * e2[0] + qy * e2[1] + qz * e2[2]) / F32(p["r"][1])
        rho2 = u1 * u1 + u2 * u2
        prof = F32(p["thick"]) * np.clip(1.0 - rho2, 0.0, 1.0) ** F32(p["power"])
        depth = f["depth"]
        m = (rho2 < 1.0) & (qn > -5.0) & (qn < p["thick"] + 8.0) & (depth >= 0) & (depth < prof)
        if b.subtype == SUBDURAL:
            m &= (x * F32(p["side"]) > 0.7) & ~f["infra"]
        return m
    if b.variant == "falx":
        c = b.center
        xs = x * F32(p["side"])
        ell = ((y - F32(c[1])) / F32(p["r"][0])) ** 2 + ((z - F32(c[2])) / F32(p["r"][1])) ** 2
        thick = F32(p["thick"]) * np.sqrt(np.clip(1.0 - ell, 0.0, 1.0))
        return (xs > 0.6) & (xs < 0.6 + thick) & f["inside"] & ~f["infra"]
    if b.variant == "tentorial":
        c = b.center
        ell = ((x - F32(c[0])) / F32(p["r"][0])) ** 2 + ((y - F32(c[1])) / F32(p["r"][1])) ** 2
        thick = F32(p["thick"]) * np.sqrt(np.clip(1.0 - ell, 0.0, 1.0))
        h = z - model.tentorium_z(x, y)
        return (h > 0.7) & (h < 0.7 + thick) & f["inside"] & (x * F32(p["side"]) > 0.7)
    if b.subtype == INTRAPARENCHYMAL:
        d = _iph_sdf(b, x, y, z)
        return (d < 0) & f["inside"] & ~f["ventricle"] & (f["depth"] > 1.0)
    if b.variant == "layering":
        g = _as_f32(p["gravity"])
        dep = x * g[0] + y * g[1] + z * g[2]
        return (model.ventricle_sdf(x, y, z, sides=p["sides"]) < 0) & (dep > F32(p["level"]))
    if b.variant == "cast":
        m = model.ventricle_sdf(x, y, z, sides=p["sides"]) < 0
        if p["midline"]:
            m |= model.midline_ventricles_sdf(x, y, z) < 0
        return m & f["inside"]
    if b.subtype == SUBARACHNOID:
        c = _as_f32(b.center)
        r = np.sqrt((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) / F32(p["r"])
        r = r + F32(0.2) * b.noise(x, y, z)
        return (r < 1.0) & f["csf_space"]
    raise ValueError(f"unknown bleed variant {b.variant!r}")


def _iph_sdf(b: Bleed, x, y, z) -> np.ndarray:
    p = b.params
    d = rotated_ellipsoid_sdf(x, y, z, b.center, p["axes"], p["rot"])
    return d + F32(0.15 * min(p["axes"])) * b.noise(x, y, z)


def oedema_mask(b: Bleed, f: Fields) -> np.ndarray:
    """Hypodense rim around an intraparenchymal bleed (parenchyma only, excludes the clot)."""
    d = _iph_sdf(b, f.x, f.y, f.z)
    return (d >= 0) & (d < F32(b.params["rim"])) & f["parenchyma"]


def paint_bleeds(
    bleeds: list[Bleed],
    model: HeadModel,
    lat: Lattice,
    f: Fields,
    hu: np.ndarray,
    labels: np.ndarray | None = None,
) -> None:
    """Write bleed densities into `hu` (and subtype codes into `labels`) in place."""
    order = sorted(bleeds, key=lambda b: PAINT_ORDER.index(b.subtype))
    for b in order:
        win = lat.window(np.array(b.center), b.radius)
        if win is None:
            continue
        sub = Fields(model, *lat.pts(win))
        sub._cache.update({k: v[win] for k, v in f._cache.items()})
        if b.subtype == INTRAPARENCHYMAL:
            oed = oedema_mask(b, sub)
            h = hu[win]
            h[oed] = np.minimum(h[oed], F32(model.p.wm_hu - 10.0))
        m = bleed_mask(b, model, sub)
        hu[win][m] = F32(b.hu)
        if labels is not None:
            labels[win][m] = b.subtype


# --------------------------------------------------------------------------------------------
# true volumes
# --------------------------------------------------------------------------------------------
def true_volumes_ml(
    bleeds: list[Bleed], model: HeadModel, *, voxel_scale: float, max_points: int = 2_500_000
) -> tuple[float, dict[str, float]]:
    """Total (union) and per-subtype bleed volume in mL from a fine 3-D grid count.

    Each bleed is counted on its own grid (spacing <= 1 mm, finer for small bleeds); a point is
    attributed to the first bleed that contains it, so overlaps are counted once.
    `voxel_scale` is the head's size scaling (world mm^3 per canonical mm^3).
    """
    total = 0.0
    per = dict.fromkeys(SUBTYPES, 0.0)
    for i, b in enumerate(bleeds):
        side = 2.0 * b.radius
        h = float(np.clip((side**3 / max_points) ** (1 / 3), 0.25, 1.0))
        n = int(np.ceil(side / h))
        origin = np.array(b.center) - b.radius + 0.5 * h
        volume = 0.0
        same = 0.0
        chunk = max(1, max_points // (n * n))
        for k0 in range(0, n, chunk):
            k1 = min(n, k0 + chunk)
            lat = Lattice(
                origin + np.array([0.0, 0.0, k0 * h]), np.diag([h, h, h]), (n, n, k1 - k0)
            )
            f = Fields(model, lat.x, lat.y, lat.z)
            m = bleed_mask(b, model, f)
            if not m.any():
                continue
            earlier = np.zeros_like(m)
            earlier_same = np.zeros_like(m)
            for j in range(i):
                mj = bleed_mask(bleeds[j], model, f)
                earlier |= mj
                if bleeds[j].subtype == b.subtype:
                    earlier_same |= mj
            volume += float(np.count_nonzero(m & ~earlier))
            same += float(np.count_nonzero(m & ~earlier_same))
        vox_ml = h**3 * voxel_scale / 1000.0
        total += volume * vox_ml
        per[b.name] += same * vox_ml
    return total, per
