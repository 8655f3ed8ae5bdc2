"""Where a segmenter loses Dice on labelled phantoms: by series thickness and by subtype.

    python training/seg_breakdown.py --data data/phantoms-val4 data/phantoms-val5 \
        --model models/densenet_unet.onnx --between nearest --mask-threshold 0.5

Per folder, a Markdown table: pooled Dice on every slice's own pixel grid (as
``training/evaluate.py`` scores it) over all series, thick and thin ones (spacing under 4 mm, from
``studies.csv``) and the bleeding slices of each subtype present in a series; next to it the
ceiling the thin-series design allows, the generator's own mask of the nearest sampled slice
given to every slice; the ceiling the model's grid allows, each slice's own mask taken onto the
model's grid and back as the runtime takes a probability map (``to_model_grid``,
``from_model_grid``, at 0.5); and, over bleeding slices, the pixels marked against the true ones.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import ichinfer  # noqa: E402
from ichinfer.preprocess import (  # noqa: E402
    from_model_grid,
    nearest_sampled,
    sample_indices,
    to_model_grid,
)
from training.data import slice_mask  # noqa: E402

THIN_BELOW_MM = 4.0


def through_model_grid(mask: np.ndarray, size: int) -> np.ndarray:
    """A 0/1 mask taken onto the model's ``size`` grid and back, as the runtime takes a
    probability map (``to_model_grid``, ``from_model_grid``, at 0.5): what a segmenter perfect
    on its own grid could give."""
    grid = to_model_grid(mask.astype(np.float32), size, fill=0.0)
    return from_model_grid(grid, mask.shape) >= 0.5


def breakdown(seg: ichinfer.Segmenter, data: Path) -> dict[str, np.ndarray]:
    """Per group: intersection, truth + marked, the same for the nearest-slice ceiling and for
    the model-grid ceiling, and over bleeding slices the count of them, true pixels and marked
    pixels."""
    with open(data / "studies.csv", newline="") as fh:
        meta = {r["SeriesInstanceUID"]: r for r in csv.DictReader(fh)}
    groups: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(9))
    size = seg.spec.input_size[0]
    for series in seg.segment(data / "stage_2_train").series:
        row = meta[series.series_uid]
        thickness = "thin" if float(row["spacing_mm"]) < THIN_BELOW_MM else "thick"
        loc = np.array([sl.location_mm for sl in series.slices])
        sampled = sample_indices(loc, seg.spec.slab_mm)
        nearest = sampled[nearest_sampled(loc, sampled)]
        truth = [
            slice_mask(data, sl.path) > 0 for sl in series.slices
        ]
        for i, sl in enumerate(series.slices):
            t, m, ceiling = truth[i], sl.mask > 0, truth[int(nearest[i])]
            bleeding = bool(t.any())
            on_grid = through_model_grid(t, size) if bleeding else t
            v = np.array(
                [
                    (t & m).sum(),
                    t.sum() + m.sum(),
                    (t & ceiling).sum(),
                    t.sum() + ceiling.sum(),
                    (t & on_grid).sum(),
                    t.sum() + on_grid.sum(),
                    bleeding,
                    t.sum() if bleeding else 0,
                    m.sum() if bleeding else 0,
                ]
            )
            names = ["all", thickness]
            if bleeding:
                names += [f"bleeding slices of a series with {s}" for s in row["subtypes"].split()]
            for name in names:
                groups[name] += v
    return groups


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, nargs="+", required=True)
    p.add_argument("--model", type=Path, default=None, help="default: the bundled segmenter")
    p.add_argument("--mask-threshold", type=float, default=None)
    p.add_argument("--between", choices=("interpolate", "nearest"), default="interpolate")
    args = p.parse_args(argv)
    settings = {"between": args.between}
    if args.mask_threshold is not None:
        settings["threshold"] = args.mask_threshold
    seg = ichinfer.Segmenter(args.model, device="cpu", **settings)
    for data in args.data:
        print(f"`{data}` (threshold {seg.threshold:g}, between: {seg.between})\n")
        print(
            "| group | Dice pooled | nearest-slice ceiling | model-grid ceiling "
            "| bleeding slices | true px | marked px |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for name, v in sorted(breakdown(seg, data).items()):
            print(
                f"| {name} | {2 * v[0] / max(v[1], 1):.3f} | {2 * v[2] / max(v[3], 1):.3f} "
                f"| {2 * v[4] / max(v[5], 1):.3f} | {int(v[6])} | {int(v[7])} | {int(v[8])} |"
            )
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
