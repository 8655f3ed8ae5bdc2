"""Bleed measurements from a series' masks: volume, separate bleeds, ABC/2, largest area.

Pure geometry on the masks a segmenter produced (or any 0/1 masks on the slices' own grids):

* **volume** — Σ mask area × the length of series each slice stands for (between the midpoints
  to its neighbours, from (0020,0032) Image Position (Patient) projected on the slice normal, not
  (0018,0050) Slice Thickness alone); pixel area from (0028,0030) Pixel Spacing;
* **separate bleeds** — 3-D connected components (26-connectivity: 8-connected in the plane,
  linked across adjacent slices where their pixels touch);
* **ABC/2** (Kothari et al., Stroke 1996) for each bleed, as clinicians estimate it by hand:
  A = the longest axis on the slice where the bleed's area is largest, B = the longest chord
  perpendicular to A on that slice, C = the number of slices it appears on × the slice spacing;
* **largest cross-sectional area** and the slice where it is;
* **per subtype**, where classifier and mask agree: mask on the slices whose subtype probability
  reaches the operating point.

The in-plane labelling uses opencv (``cv2.connectedComponents``); the rest is numpy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from ichinfer.labels import LABELS
from ichinfer.results import SeriesResult, SeriesSegmentation, SliceMask

SUBTYPES: tuple[str, ...] = LABELS[1:]
#: components smaller than this still count in the volume, but not as a separate bleed
MIN_BLEED_ML = 0.01


@dataclass(frozen=True)
class Bleed:
    """One 3-D connected bleed. Indices are slice indices of the series (head first)."""

    number: int  # 1 = the largest by volume
    volume_ml: float | None
    n_slices: int
    first_index: int
    last_index: int
    largest_area_mm2: float
    largest_area_index: int
    largest_area_location_mm: float
    a_mm: float
    b_mm: float
    c_mm: float | None
    #: subtypes the classifier calls on at least one of the bleed's slices
    subtypes: tuple[str, ...] = ()

    @property
    def abc2_ml(self) -> float | None:
        """A × B × C / 2, in mL (cm³)."""
        if self.c_mm is None:
            return None
        return self.a_mm * self.b_mm * self.c_mm / 2.0 / 1000.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "volume_ml": _r(self.volume_ml, 3),
            "abc2_ml": _r(self.abc2_ml, 3),
            "a_mm": round(self.a_mm, 1),
            "b_mm": round(self.b_mm, 1),
            "c_mm": _r(self.c_mm, 1),
            "n_slices": self.n_slices,
            "first_index": self.first_index,
            "last_index": self.last_index,
            "largest_area_mm2": round(self.largest_area_mm2, 1),
            "largest_area_index": self.largest_area_index,
            "largest_area_location_mm": round(self.largest_area_location_mm, 3),
            "subtypes": list(self.subtypes),
        }


@dataclass(frozen=True)
class SubtypeMeasurement:
    """Mask on the slices where the classifier calls this subtype."""

    volume_ml: float | None
    n_slices: int
    n_bleeds: int
    largest_area_mm2: float
    largest_area_index: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "volume_ml": _r(self.volume_ml, 3),
            "n_slices": self.n_slices,
            "n_bleeds": self.n_bleeds,
            "largest_area_mm2": round(self.largest_area_mm2, 1),
            "largest_area_index": self.largest_area_index,
        }


@dataclass(frozen=True)
class Measurements:
    """Per-series bleed measurements (see the module docstring for the definitions)."""

    volume_ml: float | None
    n_bleeds: int
    largest_area_mm2: float
    largest_area_index: int | None
    largest_area_location_mm: float | None
    bleeds: list[Bleed] = field(default_factory=list)
    #: None when no classifier output was given
    by_subtype: dict[str, SubtypeMeasurement] | None = None
    min_bleed_ml: float = MIN_BLEED_ML

    @property
    def largest(self) -> Bleed | None:
        return self.bleeds[0] if self.bleeds else None

    def to_dict(self) -> dict[str, Any]:
        largest = self.largest
        return {
            "volume_ml": _r(self.volume_ml, 3),
            "n_bleeds": self.n_bleeds,
            "largest_bleed_abc2_ml": _r(largest.abc2_ml, 3) if largest else None,
            "largest_bleed_volume_ml": _r(largest.volume_ml, 3) if largest else None,
            "largest_area_mm2": round(self.largest_area_mm2, 1),
            "largest_area_index": self.largest_area_index,
            "largest_area_location_mm": _r(self.largest_area_location_mm, 3),
            "min_bleed_ml": self.min_bleed_ml,
            "bleeds": [b.to_dict() for b in self.bleeds],
            "by_subtype": None if self.by_subtype is None
            else {k: v.to_dict() for k, v in self.by_subtype.items()},
        }


def _r(value: float | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


# --- labelling ---------------------------------------------------------------------------------


@dataclass
class SliceRegions:
    """One slice's labelled regions, kept only in the box around them: a series' labels then
    take memory in proportion to what is marked, not 4 bytes a pixel on every slice."""

    shape: tuple[int, int]  # the slice's
    top: int  # the box's first row and column on the slice
    left: int
    labels: np.ndarray  # int32 labels inside the box (0 background); empty when none

    @property
    def box(self) -> tuple[slice, slice]:
        return (slice(self.top, self.top + self.labels.shape[0]),
                slice(self.left, self.left + self.labels.shape[1]))

    def full(self) -> np.ndarray:
        """The labels on the whole slice."""
        out = np.zeros(self.shape, dtype=np.int32)
        out[self.box] = self.labels
        return out


def label_regions(masks: Sequence[np.ndarray]) -> tuple[list[SliceRegions], int]:
    """3-D connected components of a stack of 2-D masks (which may differ in shape).

    In-plane 8-connectivity; two regions on adjacent slices of the same shape join when they
    touch (share a pixel or an 8-neighbour: 26-connectivity). Returns each slice's labels
    (0 background, 1..n) in the box around its regions, and n.
    """
    regions: list[SliceRegions] = []
    total = 0
    for m in masks:
        m = np.asarray(m, dtype=np.uint8)
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        if rows.size == 0:
            regions.append(SliceRegions(m.shape, 0, 0, np.zeros((0, 0), dtype=np.int32)))
            continue
        crop = m[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]
        n, lab = cv2.connectedComponents(crop, connectivity=8, ltype=cv2.CV_32S)
        lab[lab > 0] += total
        regions.append(SliceRegions(m.shape, int(rows[0]), int(cols[0]), lab))
        total += n - 1
    parent = np.arange(total + 1)

    def find(i: int) -> int:
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    for a, b in zip(regions[:-1], regions[1:], strict=False):
        if a.shape != b.shape or not (a.labels.size and b.labels.size):
            continue
        for i, j in _touching_pairs(a, b):
            ri, rj = find(int(i)), find(int(j))
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    roots = parent  # every label points to a smaller one or itself: jump to the roots
    while True:
        up = roots[roots]
        if np.array_equal(up, roots):
            break
        roots = up
    _, compact = np.unique(roots, return_inverse=True)  # root 0 (background) stays 0
    compact = compact.astype(np.int32)
    for r in regions:
        if r.labels.size:
            r.labels = np.take(compact, r.labels)
    return regions, int(compact.max(initial=0))


def label_components(masks: Sequence[np.ndarray]) -> tuple[list[np.ndarray], int]:
    """:func:`label_regions` as int32 label images of the whole slices (0 background, 1..n)."""
    regions, n = label_regions(masks)
    return [r.full() for r in regions], n


def _touching_pairs(a: SliceRegions, b: SliceRegions) -> np.ndarray:
    """Label pairs (of ``a``, of ``b``) whose pixels touch across the two slices: the same pixel
    or one of its 8 neighbours (26-connectivity, so a thin bleed that shifts by a pixel from one
    slice to the next stays one bleed). Compared in the box around both slices' regions."""
    (ar, ac), (br, bc) = a.box, b.box
    top, left = min(ar.start, br.start), min(ac.start, bc.start)
    h, w = max(ar.stop, br.stop) - top, max(ac.stop, bc.stop) - left
    if ar.start > br.stop or br.start > ar.stop or ac.start > bc.stop or bc.start > ac.stop:
        return np.zeros((0, 2), dtype=np.int64)  # boxes more than a pixel apart
    fa, fb = np.zeros((h, w), dtype=np.int32), np.zeros((h, w), dtype=np.int32)
    fa[ar.start - top: ar.stop - top, ac.start - left: ac.stop - left] = a.labels
    fb[br.start - top: br.stop - top, bc.start - left: bc.stop - left] = b.labels
    base = int(max(a.labels.max(), b.labels.max())) + 1  # a pair as one int64 key: 1-D unique
    found = []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            sa = fa[max(dy, 0): h + min(dy, 0), max(dx, 0): w + min(dx, 0)]
            sb = fb[max(-dy, 0): h + min(-dy, 0), max(-dx, 0): w + min(-dx, 0)]
            both = (sa > 0) & (sb > 0)
            if both.any():
                found.append(sa[both].astype(np.int64) * base + sb[both])
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    keys = np.unique(np.concatenate(found))
    return np.stack([keys // base, keys % base], axis=1)


# --- in-plane diameters ------------------------------------------------------------------------


def diameters_mm(mask: np.ndarray, pixel_spacing_mm: tuple[float, float]) -> tuple[float, float]:
    """(A, B) of one slice's region: A the longest axis, B the longest chord perpendicular to A.

    Measured edge to edge (pixel squares, not centres), as with calipers on a viewer.
    ``pixel_spacing_mm`` is (0028,0030) Pixel Spacing: (between rows, between columns).
    """
    rows, cols = np.nonzero(np.asarray(mask))
    if rows.size == 0:
        return 0.0, 0.0
    dr, dc = float(pixel_spacing_mm[0]), float(pixel_spacing_mm[1])
    # A: farthest pair among the convex hull of the pixel squares' corners
    corners = np.concatenate([np.stack([(cols + ox) * dc, (rows + oy) * dr], axis=1)
                              for ox in (-0.5, 0.5) for oy in (-0.5, 0.5)])
    hull = cv2.convexHull(corners.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    d2 = ((hull[:, None, :] - hull[None, :, :]) ** 2).sum(axis=-1)
    i, j = np.unravel_index(int(np.argmax(d2)), d2.shape)
    a_mm = float(np.sqrt(d2[i, j]))
    if a_mm == 0.0:
        return 0.0, 0.0
    u = (hull[j] - hull[i]) / a_mm
    v = np.array([-u[1], u[0]])
    # B: chords perpendicular to A, in strips one pixel wide along A
    centres = np.stack([cols * dc, rows * dr], axis=1)
    t, s = centres @ u, centres @ v
    step = min(dr, dc)
    strip = np.floor((t - t.min()) / step).astype(np.int64)
    hi = np.full(strip.max() + 1, -np.inf)
    lo = np.full(strip.max() + 1, np.inf)
    np.maximum.at(hi, strip, s)
    np.minimum.at(lo, strip, s)
    footprint = abs(v[0]) * dc + abs(v[1]) * dr  # one pixel square's width across v
    filled = np.isfinite(hi)
    b_mm = float((hi[filled] - lo[filled]).max() + footprint)
    return a_mm, min(b_mm, a_mm)


# --- the series ----------------------------------------------------------------------------


def measure_masks(
    slices: Sequence[SliceMask],
    *,
    probabilities: Sequence[Mapping[str, float]] | None = None,
    thresholds: Mapping[str, float] | None = None,
    min_bleed_ml: float = MIN_BLEED_ML,
) -> Measurements:
    """Measurements of a series' slice masks (head first, as a segmenter returns them).

    With ``probabilities`` (one mapping per slice, the classifier's) and ``thresholds``, bleeds
    are attributed to subtypes and measured per subtype. Volumes are None when the length a
    slice stands for is unknown (a single slice without (0018,0050) Slice Thickness).
    """
    if probabilities is not None:
        if len(probabilities) != len(slices):
            raise ValueError(f"{len(probabilities)} probability rows for {len(slices)} slices")
        if thresholds is None:
            raise ValueError("thresholds are needed with probabilities")
    n = len(slices)
    areas = np.array([s.area_mm2 for s in slices], dtype=np.float64)
    ext = np.array([s.thickness_mm for s in slices], dtype=np.float64)
    known = bool(n) and not np.isnan(ext).any()
    regions, n_comp = label_regions([s.mask for s in slices])
    pixel_mm2 = np.array([s.pixel_spacing_mm[0] * s.pixel_spacing_mm[1] for s in slices])
    # per component, per slice: pixel counts
    counts = np.zeros((n_comp + 1, n), dtype=np.int64)
    for k, r in enumerate(regions):
        if r.labels.size:
            counts[:, k] = np.bincount(r.labels.ravel(), minlength=n_comp + 1)
    comp_area = counts[1:] * pixel_mm2[None, :]  # (n_comp, n) mm²
    comp_vol = (comp_area * np.nan_to_num(ext)[None, :]).sum(axis=1) / 1000.0
    called: dict[str, np.ndarray] = {}
    if probabilities is not None and thresholds is not None:
        called = {st: np.array([p[st] >= thresholds[st] for p in probabilities], dtype=bool)
                  for st in SUBTYPES}

    bleeds: list[Bleed] = []
    sizes = comp_vol if known else comp_area.sum(axis=1)
    order = np.argsort(-sizes, kind="stable")
    for c in order:
        on = np.nonzero(counts[c + 1])[0]
        if on.size == 0:
            continue
        if known and comp_vol[c] < min_bleed_ml:
            continue
        k = int(on[np.argmax(comp_area[c, on])])
        a_mm, b_mm = diameters_mm(regions[k].full() == c + 1, slices[k].pixel_spacing_mm)
        bleeds.append(Bleed(
            number=len(bleeds) + 1,
            volume_ml=float(comp_vol[c]) if known else None,
            n_slices=int(on.size),
            first_index=int(on[0]),
            last_index=int(on[-1]),
            largest_area_mm2=float(comp_area[c, k]),
            largest_area_index=k,
            largest_area_location_mm=float(slices[k].location_mm),
            a_mm=a_mm,
            b_mm=b_mm,
            c_mm=float(ext[on].sum()) if known else None,
            subtypes=tuple(st for st in SUBTYPES if st in called and called[st][on].any()),
        ))

    by_subtype = None
    if called:
        by_subtype = {}
        for st in SUBTYPES:
            sel = called[st] & (areas > 0)
            idx = np.nonzero(sel)[0]
            by_subtype[st] = SubtypeMeasurement(
                volume_ml=float((areas[sel] * ext[sel]).sum() / 1000.0) if known else None,
                n_slices=int(idx.size),
                n_bleeds=sum(1 for b in bleeds if st in b.subtypes),
                largest_area_mm2=float(areas[idx].max()) if idx.size else 0.0,
                largest_area_index=int(idx[np.argmax(areas[idx])]) if idx.size else None,
            )

    top = int(np.argmax(areas)) if n and areas.max() > 0 else None
    return Measurements(
        volume_ml=float((areas * ext).sum() / 1000.0) if known else None,
        n_bleeds=len(bleeds),
        largest_area_mm2=float(areas[top]) if top is not None else 0.0,
        largest_area_index=top,
        largest_area_location_mm=float(slices[top].location_mm) if top is not None else None,
        bleeds=bleeds,
        by_subtype=by_subtype,
        min_bleed_ml=min_bleed_ml,
    )


def measure_series(
    segmentation: SeriesSegmentation,
    classification: SeriesResult | None = None,
    *,
    thresholds: Mapping[str, float] | None = None,
    min_bleed_ml: float = MIN_BLEED_ML,
) -> Measurements:
    """:func:`measure_masks` of a segmented series, with subtypes when ``classification`` (the
    same series, classified) is given; ``thresholds`` default to the classification's."""
    probabilities = None
    if classification is not None:
        mine = [s.sop_instance_uid for s in segmentation.slices]
        theirs = [s.sop_instance_uid for s in classification.slices]
        if mine != theirs:
            raise ValueError("classification and segmentation are of different slices "
                             f"(series {segmentation.series_uid})")
        probabilities = [s.probabilities for s in classification.slices]
        thresholds = thresholds or classification.thresholds
    return measure_masks(segmentation.slices, probabilities=probabilities, thresholds=thresholds,
                         min_bleed_ml=min_bleed_ml)
