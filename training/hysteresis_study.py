"""Does the segmenter under-segment at the edges of what it finds, or miss whole bleeds?

    python training/hysteresis_study.py --data data/phantoms-val data/phantoms-val2a \
        [--real ../shared/data/cq500-ct0] [--lows 0.6 0.4 0.2]

The bundled segmenter marks about half as many pixels as are true on the bleeding slices of
``phantoms-val4`` (``training/trials/selection-j.md``), and a lower threshold everywhere scores
lower. Two
measurements say where the rest are:

- **whole bleeds missed**: the true pixels in bleeds (8-connected regions of a slice's mask)
  that the segmenter does not touch at all, as a share of all true pixels, overall and per
  subtype (the generator's masks hold the subtype of each pixel), beside the ceiling the
  model's grid allows each subtype: the pooled Dice of its true pixels taken onto the grid and
  back as the runtime takes a probability map (``seg_breakdown.through_model_grid``);
- **hysteresis** at each ``--lows`` value: the regions above the low threshold that reach the
  segmenter's own threshold somewhere are kept whole, on each slice (2-D) and also grown from
  slice to slice wherever a region overlaps a kept one on a neighbouring slice (3-D). If the
  misses were at the edges of found bleeds, this would recover them.

Each threshold is a separate run of the bundled runtime (``Segmenter.segment_series`` with that
threshold), so the masks are the ones ``ichinfer segment`` would write. Pooled Dice, mean Dice
over bleeding slices and the volume marked on the phantom folders (truth from their ``masks/``,
on each slice's own grid); slices and volume marked on a bleed-free real series (``--real``;
all of it false). Only prints from ``main``.
"""

from __future__ import annotations

import argparse
import copy
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from ichinfer import pipeline  # noqa: E402
from ichinfer.results import SliceMask  # noqa: E402
from ichinfer.segmentation import Segmenter  # noqa: E402
from training.data import slice_mask  # noqa: E402
from training.seg_breakdown import through_model_grid  # noqa: E402
from training.synth_bleeds import SUBTYPES  # noqa: E402


def regions(mask: np.ndarray) -> np.ndarray:
    """8-connected regions of a 0/1 mask, labelled 1..n (0: background)."""
    return cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)[1]


def hysteresis(low: list[np.ndarray], high: list[np.ndarray], across: bool) -> list[np.ndarray]:
    """The regions of each slice's ``low`` mask that contain a pixel of its ``high`` mask; with
    ``across``, also those overlapping a kept region on a neighbouring slice, until none is
    added (slices in series order, one grid per series)."""
    labels = [regions(m) for m in low]
    keep = [set(np.unique(lab[h > 0]).tolist()) - {0} for lab, h in zip(labels, high, strict=True)]
    changed = across
    while changed:
        changed = False
        for k, lab in enumerate(labels):
            for j in (k - 1, k + 1):
                if 0 <= j < len(labels) and keep[j] and lab.shape == labels[j].shape:
                    kept_there = np.isin(labels[j], sorted(keep[j]))
                    new = set(np.unique(lab[kept_there]).tolist()) - {0} - keep[k]
                    if new:
                        keep[k] |= new
                        changed = True
    return [np.isin(lab, sorted(s)) for lab, s in zip(labels, keep, strict=True)]


class Tally:
    """Pooled and per-slice Dice, volume and slices marked for one way of making masks."""

    def __init__(self) -> None:
        self.overlap = self.marked = self.truth = self.slices_marked = 0
        self.per_slice: list[float] = []
        self.volume_ml = 0.0

    def add(self, sl: SliceMask, mask: np.ndarray, truth: np.ndarray) -> None:
        """``mask`` in place of the runtime's on slice ``sl`` (its grid, spacing, thickness)."""
        ov, mk, tr = int((mask & truth).sum()), int(mask.sum()), int(truth.sum())
        self.overlap, self.marked, self.truth = self.overlap + ov, self.marked + mk, self.truth + tr
        self.volume_ml += replace(sl, mask=mask).area_mm2 * sl.thickness_mm / 1000.0
        self.slices_marked += int(mk > 0)
        if tr:
            self.per_slice.append(2 * ov / (mk + tr))

    def merge(self, other: Tally) -> None:
        self.overlap, self.marked = self.overlap + other.overlap, self.marked + other.marked
        self.truth += other.truth
        self.slices_marked += other.slices_marked
        self.per_slice += other.per_slice
        self.volume_ml += other.volume_ml

    def row(self) -> list[str]:
        pooled = 2 * self.overlap / max(self.marked + self.truth, 1)
        mean = float(np.mean(self.per_slice)) if self.per_slice else float("nan")
        return [f"{pooled:.4f}", f"{mean:.4f}", f"{self.volume_ml:.1f} mL",
                str(self.slices_marked)]


def study(seg: Segmenter, lows: list[float], folder: Path, truth: bool
          ) -> tuple[dict[str, Tally], np.ndarray]:
    """Tallies per way of masking, and per subtype (rows in ``SUBTYPES`` order) the true pixels
    in bleeds not touched, all true pixels, and for the model-grid ceiling twice the overlap and
    the sum of both masks' pixels."""
    own = [seg] + [copy.copy(seg) for _ in lows]
    for s, low in zip(own[1:], lows, strict=True):
        s.threshold = low
    tallies: dict[str, Tally] = {"own": Tally()}
    for low in lows:
        tallies[f"{low:g} 2-D"], tallies[f"{low:g} 3-D"] = Tally(), Tally()
    missed = np.zeros((len(SUBTYPES), 4), dtype=np.int64)
    size = seg.spec.input_size[0]
    root = folder / "stage_2_train" if truth else folder
    for series in pipeline.scan_inputs(str(root), on_error="raise").series:
        prepared = pipeline.PreparedSeries(series)
        prepared.decode([seg.spec.input_size[0]])
        results = [s.segment_series(prepared).slices for s in own]
        high = [sl.mask > 0 for sl in results[0]]
        if truth:
            coded = [slice_mask(folder, sl.path) for sl in results[0]]
        else:
            coded = [np.zeros(h.shape, np.uint8) for h in high]
        true = [c > 0 for c in coded]
        for sl, h, t, c in zip(results[0], high, true, coded, strict=True):
            tallies["own"].add(sl, h, t)
            if t.any():
                lab = regions(t)
                untouched = ~np.isin(lab, np.unique(lab[h & t])) & t
                for k in range(len(SUBTYPES)):
                    mine = c == k + 1
                    if not mine.any():
                        continue
                    back = through_model_grid(mine, size)
                    missed[k] += (int((untouched & mine).sum()), int(mine.sum()),
                                  2 * int((back & mine).sum()), int(back.sum() + mine.sum()))
        for low, res in zip(lows, results[1:], strict=True):
            low_masks = [sl.mask > 0 for sl in res]
            for across in (False, True):
                tally = tallies[f"{low:g} {'3-D' if across else '2-D'}"]
                for sl, m, t in zip(res, hysteresis(low_masks, high, across), true,
                                    strict=True):
                    tally.add(sl, m, t)
    return tallies, missed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, nargs="+", required=True, help="phantom folders")
    p.add_argument("--real", type=Path, default=None, help="a bleed-free real series")
    p.add_argument("--lows", type=float, nargs="+", default=[0.6, 0.4, 0.2])
    p.add_argument("--segmenter", type=Path, default=None, help="ONNX (default: bundled)")
    args = p.parse_args(argv)
    seg = Segmenter(args.segmenter, device="cpu")
    if any(low >= seg.threshold for low in args.lows):
        p.error(f"every --lows value must be below the mask threshold ({seg.threshold:g})")
    merged: dict[str, Tally] = {}
    missed = np.zeros((len(SUBTYPES), 4), dtype=np.int64)
    for folder in args.data:
        tallies, m = study(seg, args.lows, folder, truth=True)
        missed += m
        for name, tally in tallies.items():
            merged.setdefault(name, Tally()).merge(tally)
    real = study(seg, args.lows, args.real, truth=False)[0] if args.real else None
    print(f"{seg.spec.path.name} (mask threshold {seg.threshold:g}) on "
          + ", ".join(f.name for f in args.data)
          + f": {len(merged['own'].per_slice)} bleeding slices\n")
    print("| true pixels | in bleeds it does not touch at all | of | share | model-grid ceiling |")
    print("| --- | --- | --- | --- | --- |")
    for name, (m, t, two_ov, both) in [("all", missed.sum(axis=0)),
                                        *zip(SUBTYPES, missed, strict=True)]:
        print(f"| {name} | {m} | {t} | {m / max(t, 1):.1%} | {two_ov / max(both, 1):.3f} |")
    print()
    header = ["masks", "pooled Dice", "mean Dice, bleeding slices", "volume marked",
              "slices marked"]
    header += [f"{args.real.name}: volume marked (false)", "slices marked"] if real else []
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for name, tally in merged.items():
        label = (f"own threshold ({seg.threshold:g})" if name == "own"
                 else f"hysteresis {name.split()[0]} to {seg.threshold:g}, {name.split()[1]}")
        cells = [label, *tally.row()]
        if real:
            cells += real[name].row()[2:]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
