"""Phantoms against real scans by HU histogram, brain peak and noise: the table in SYNTH.md.

    python training/compare_real.py PHANTOM_DIR [PHANTOM_DIR ...] --real ../shared/data

For every folder (searched recursively for DICOM files), slices are split into thick (≥ 2.5 mm)
and thin, and reported per group: the percentage of all pixels in each HU band (padding below
-1100, air, fat, CSF range, brain, 50–100, 100–500, bone), the brain-peak mode (1-HU histogram
of 0–60 HU, smoothed over 5 HU) and a noise estimate (std of horizontal neighbour differences,
trimmed at 3 robust sigmas, ÷ √2, over pixel pairs both within 15–50 HU). Real scans are for
checking only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut

from ichinfer.dicom import stored_to_hu

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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("phantoms", type=Path, nargs="+", help="phantom folders (RSNA layout)")
    p.add_argument("--real", type=Path, default=None, help="../shared/data (checks only)")
    p.add_argument("--max-slices", type=int, default=400, help="per folder and group")
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
