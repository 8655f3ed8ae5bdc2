"""Phantoms against real scans by HU histogram, brain peak and noise: the table in SYNTH.md.

    python training/compare_real.py PHANTOM_DIR [PHANTOM_DIR ...] --real ../shared/data

For every folder (searched recursively for DICOM files), slices are split into thick (≥ 2.5 mm)
and thin, and reported per group: the percentage of all pixels in each HU band (padding below
-1100, air, fat, CSF range, brain, 50–100, 100–500, bone), the brain-peak mode (1-HU histogram
of 0–60 HU, smoothed over 5 HU) and a noise estimate (std of horizontal neighbour differences,
trimmed at 3 robust sigmas, ÷ √2, over pixel pairs both within 15–50 HU). Real scans are for
checking only.

A second table, "brain next to bone", profiles mean HU against distance from the inner table
(0.5 mm bins, 5 mm slabs as ``ichinfer.preprocess.slab`` averages them, slabs at 35-75 % of each
series' length, inside the bone ring (> 300 HU) around the skull's centre) for CQ500 and for every
phantom series without a bleed, as the excess over the mean 10-30 mm deep. A third, "brain
texture", gives the spread of brain HU at 0.5-4 mm scales (``texture``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut

from ichinfer import preprocess
from ichinfer.dicom import scan, stored_to_hu

BANDS = [
    ("padding", -np.inf, -1100),
    ("air", -1100, -200),
    ("fat", -200, -50),
    ("CSF-range (−50..15)", -50, 15),
    ("brain (15..50)", 15, 50),
    ("50..100", 50, 100),
    ("100..500", 100, 500),
    ("bone >500", 500, np.inf),
]


def read_hu(path: Path) -> tuple[np.ndarray, float] | None:
    ds = pydicom.dcmread(path)
    if "PixelData" not in ds:
        return None
    px = ds.pixel_array
    # HU as ichinfer reads them (the RSNA 12-bit wrap undone, clipped); padding kept apart
    hu = stored_to_hu(
        px,
        slope=float(getattr(ds, "RescaleSlope", 1) or 1),
        intercept=float(getattr(ds, "RescaleIntercept", 0) or 0),
        bits_stored=int(getattr(ds, "BitsStored", 16)),
        pixel_representation=int(getattr(ds, "PixelRepresentation", 1)),
    ).astype(np.float32)
    hu[apply_modality_lut(px, ds) < -1100] = -3000.0
    return hu, float(getattr(ds, "SliceThickness", 5.0) or 5.0)


class Stats:
    def __init__(self) -> None:
        self.n, self.bands = 0, np.zeros(len(BANDS))
        self.brain_hist = np.zeros(60)
        self.diffs: list[np.ndarray] = []

    def add(self, hu: np.ndarray) -> None:
        self.n += 1
        for k, (_, lo, hi) in enumerate(BANDS):
            self.bands[k] += np.count_nonzero((hu >= lo) & (hu < hi))
        self.brain_hist += np.histogram(hu, bins=60, range=(0, 60))[0]
        a, b = hu[:, :-1], hu[:, 1:]
        both = (a > 15) & (a < 50) & (b > 15) & (b < 50)
        if both.any():
            self.diffs.append((a - b)[both][::7])

    def row(self, name: str) -> str:
        pct = 100 * self.bands / max(self.bands.sum(), 1)
        smooth = np.convolve(self.brain_hist, np.ones(5) / 5, mode="same")
        mode = float(np.argmax(smooth)) + 0.5
        d = np.concatenate(self.diffs) if self.diffs else np.zeros(1)
        # trimmed std: the MAD alone moves in whole-HU steps on integer-valued images
        spread = 1.4826 * np.median(np.abs(d - np.median(d))) + 0.5
        noise = np.std(d[np.abs(d - np.median(d)) < 3 * spread]) / np.sqrt(2)
        cells = " | ".join(f"{p:.1f}" for p in pct)
        return f"| {name} ({self.n} slices) | {cells} | {mode:.1f} | {noise:.2f} |"


RIM_BINS_MM = np.arange(0.0, 6.01, 0.5)


TEXTURE_SCALES_MM = (0.5, 1.0, 2.0, 4.0)


def _slabs(series, lo: float, hi: float, n: int):
    """(slab, pixel spacing) at ``n`` positions between fractions ``lo`` and ``hi`` of the
    series, 5 mm thick as ``ichinfer.preprocess.slab`` averages them."""
    loc = series.locations_mm
    hu = np.stack([series.load_hu(i) for i in range(len(series))])  # cleaned HU
    spacing = float(series.slices[0].pixel_spacing_mm[0])
    for i in np.unique(np.linspace(lo * len(loc), hi * len(loc), n).astype(int)):
        yield preprocess.slab(hu, loc, loc[i], 5.0), spacing


def rim_profile(series) -> np.ndarray | None:
    """Mean HU per distance bin from the inner table (``RIM_BINS_MM``), then the 10-30 mm mean."""
    import cv2

    sums, counts = np.zeros(len(RIM_BINS_MM)), np.zeros(len(RIM_BINS_MM))
    for img, spacing in _slabs(series, 0.35, 0.75, 6):
        bone = img > 300
        if not bone.any():
            continue
        # the cranial cavity: the non-bone component around the skull's centre
        _, comp = cv2.connectedComponents((~bone).astype(np.uint8))
        ys, xs = np.nonzero(bone)
        inside = (comp == comp[int(ys.mean()), int(xs.mean())]).astype(np.uint8)
        if inside.sum() > 0.5 * inside.size or not img[int(ys.mean()), int(xs.mean())] < 300:
            continue
        dist = cv2.distanceTransform(inside, cv2.DIST_L2, 5) * spacing
        edges = [*RIM_BINS_MM[:-1], None]
        for k, lo in enumerate(edges):
            sel = (dist > lo) & (dist <= lo + 0.5) if lo is not None else (dist > 10) & (dist < 30)
            sums[k] += img[sel].sum()
            counts[k] += np.count_nonzero(sel)
    if counts[-1] == 0:
        return None
    return sums / np.maximum(counts, 1)


def texture(series) -> np.ndarray | None:
    """Brain texture by scale: per ``TEXTURE_SCALES_MM`` s, the std (÷ √2) of differences between
    s-mm box means s mm apart, within brain (15-50 HU, 12 mm from anything else), on 5 mm slabs
    at 40-70 % of the series; differences over 20 HU from the median are left out."""
    import cv2

    rows = []
    for img, spacing in _slabs(series, 0.4, 0.7, 4):
        brain = ((img > 15) & (img < 50)).astype(np.uint8)
        brain = cv2.erode(brain, np.ones((25, 25), np.uint8)) > 0
        row = []
        for mm in TEXTURE_SCALES_MM:
            k = max(1, int(round(mm / spacing)))
            box = cv2.blur(img, (k, k))
            both = brain[:, :-k] & brain[:, k:]
            d = (box[:, :-k] - box[:, k:])[both]
            d = d[np.abs(d - np.median(d)) < 20] if d.size else d
            row.append(d.std() / np.sqrt(2) if d.size > 100 else np.nan)
        rows.append(row)
    if not rows or np.isnan(rows).all():
        return None
    return np.nanmean(rows, axis=0)


def series_rows(name: str, folder: Path, measure, cells) -> list[str]:
    """One row per series without a bleed (phantoms: ``studies.csv``; real: every series):
    ``cells(measure(series))`` after the series' name and slice thickness."""
    import csv

    bleeding: set[str] = set()
    table = folder / "studies.csv"
    if table.exists():
        with table.open() as f:
            bleeding = {r["SeriesInstanceUID"] for r in csv.DictReader(f) if r["subtypes"]}
    rows = []
    for series in scan(folder).series:
        if series.series_uid in bleeding or len(series) < 8:
            continue
        values = measure(series)
        if values is None:
            continue
        thick = series.slices[0].slice_thickness_mm or 0.0
        rows.append(f"| {name}, {thick:.2f} mm | {cells(values)} |")
    return rows


def rim_cells(prof: np.ndarray) -> str:
    excess = " | ".join(f"{v - prof[-1]:+.0f}" for v in prof[1:-1])
    return f"{excess} | {prof[-1]:.0f}"


def texture_cells(values: np.ndarray) -> str:
    return " | ".join(f"{v:.2f}" for v in values)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("phantoms", type=Path, nargs="+", help="phantom folders (RSNA layout)")
    p.add_argument("--real", type=Path, default=None, help="../shared/data (checks only)")
    p.add_argument("--max-slices", type=int, default=400, help="per folder and group")
    p.add_argument("--max-series", type=int, default=8, help="rim rows per folder")
    args = p.parse_args(argv)
    sets: list[tuple[str, Path]] = []
    if args.real is not None:
        sets += [("RSNA samples", args.real / "rsna-samples"), ("CQ500", args.real / "cq500-ct0")]
    sets += [(f"phantom {d.name}", d) for d in args.phantoms]
    head = " | ".join(name for name, _, _ in BANDS)
    print(f"| set | {head} | brain mode | noise |")
    print("|" + " --- |" * (len(BANDS) + 3))
    for name, folder in sets:
        if not folder.is_dir():
            print(f"{folder}: not found, skipped", file=sys.stderr)
            continue
        groups = {"thick": Stats(), "thin": Stats()}
        for path in sorted(folder.rglob("*.dcm")):
            got = read_hu(path)
            if got is None:
                continue
            hu, thickness = got
            g = groups["thick" if thickness >= 2.5 else "thin"]
            if g.n < args.max_slices:
                g.add(hu)
        for kind, stats in groups.items():
            if stats.n:
                print(stats.row(f"{name}, {kind}"))
    print()
    bins = " | ".join(f"{lo:.1f}-{lo + 0.5:.1f}" for lo in RIM_BINS_MM[1:-1])
    print(
        f"| brain next to bone: HU over the 10-30 mm mean, by mm from the inner table | {bins} "
        "| 10-30 mm mean |"
    )
    print("|" + " --- |" * (len(RIM_BINS_MM) + 1))
    series_sets = [(n, f) for n, f in sets if f.is_dir() and n != "RSNA samples"]  # no slabs
    for name, folder in series_sets:
        for row in series_rows(name, folder, rim_profile, rim_cells)[: args.max_series]:
            print(row)
    print()
    scales = " | ".join(f"{mm:g} mm" for mm in TEXTURE_SCALES_MM)
    print(f"| brain texture: std of box-mean differences (HU), by scale | {scales} |")
    print("|" + " --- |" * (len(TEXTURE_SCALES_MM) + 1))
    for name, folder in series_sets:
        for row in series_rows(name, folder, texture, texture_cells)[: args.max_series]:
            print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
