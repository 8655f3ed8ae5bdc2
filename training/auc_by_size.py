"""Which bleeds does a classifier miss? Slice AUC per label, by the bleed's area on the slice.

    python training/auc_by_size.py --data data/phantoms-test2 data/phantoms-val4 \
        --model models/densenet25d.onnx [--bins 0 30 100 300] [--thin-below 2]

Runs the classifier through the runtime (as ``ichinfer classify`` does: slabs, thin series
sampled) on phantom folders in the RSNA layout with their ``masks/`` (``training/synth.py``
output). A slice's area for a label is the generator's painted mask of that subtype on the
slice (all subtypes for ``any``), in mm² by its series' pixel spacing in ``studies.csv``. For
each area bin, the AUC of the slices with that label and an area in the bin against every slice
without the label, so a bin says how well the bleeds of that size are told apart from
bleed-free slices. ``--thin-below MM`` adds the same table for the series thinner than MM
(``slice_thickness_mm`` in ``studies.csv``) and for the rest. Only prints from ``main``.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import ichinfer  # noqa: E402
from ichinfer.labels import LABELS  # noqa: E402
from ichinfer.metrics import roc_auc  # noqa: E402
from training.data import read_rsna_labels, slice_id, slice_mask  # noqa: E402


def slice_areas_mm2(mask: np.ndarray, pixel_spacing_mm: float) -> np.ndarray:
    """Area of each label on one painted mask (0 none, k = ``LABELS[k]``), ``any`` = all."""
    counts = np.bincount(mask.ravel(), minlength=len(LABELS))[: len(LABELS)].astype(float)
    counts[0] = counts[1:].sum()
    return counts * pixel_spacing_mm**2


def pixel_spacings(folder: Path) -> dict[str, float]:
    """Each series' pixel spacing in mm, from the generator's ``studies.csv``."""
    return {uid: spacing for uid, (spacing, _) in series_geometry(folder).items()}


def series_geometry(folder: Path) -> dict[str, tuple[float, float]]:
    """Each series' (pixel spacing, slice thickness) in mm, from the generator's
    ``studies.csv``."""
    with open(folder / "studies.csv", newline="") as fh:
        return {row["SeriesInstanceUID"]: (float(row["pixel_spacing_mm"]),
                                           float(row["slice_thickness_mm"]))
                for row in csv.DictReader(fh)}


def collect(clf: ichinfer.Classifier, folder: Path
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(probabilities, truth, areas in mm²), each (slices, 6), and each slice's series' slice
    thickness in mm, for every slice of ``folder``."""
    labels = read_rsna_labels(folder / "stage_2_train.csv")
    geometry = series_geometry(folder)
    probs, truth, areas, thickness = [], [], [], []
    for series in clf.classify(folder / "stage_2_train").series:
        spacing, thick = geometry[series.series_uid]
        for s in series.slices:
            stem = slice_id(s.path)
            probs.append([s.probabilities[k] for k in LABELS])
            truth.append(labels[stem])
            areas.append(slice_areas_mm2(slice_mask(folder, s.path), spacing))
            thickness.append(thick)
    return np.array(probs), np.array(truth), np.array(areas), np.array(thickness)


def bin_names(bins: Sequence[float]) -> list[str]:
    """Column names of the area bins whose lower edges are ``bins`` (the last is open)."""
    edges = [*bins, np.inf]
    return [f"{lo:g}–{hi:g} mm²" if np.isfinite(hi) else f"≥ {lo:g} mm²"
            for lo, hi in zip(edges[:-1], edges[1:], strict=True)]


def auc_by_bin(truth: np.ndarray, score: np.ndarray, area: np.ndarray,
               bins: Sequence[float]) -> list[tuple[int, float]]:
    """Per area bin: the positive slices with an area in it, and their AUC against every
    negative slice (NaN for an empty bin)."""
    pos, neg = truth == 1, truth == 0
    out = []
    for lo, hi in zip(bins, [*bins[1:], np.inf], strict=True):
        inbin = pos & (area >= lo) & (area < hi)
        keep = neg | inbin
        out.append((int(inbin.sum()),
                    roc_auc(truth[keep], score[keep]) if inbin.any() else float("nan")))
    return out


def table(probs: np.ndarray, truth: np.ndarray, areas: np.ndarray, bins: list[float]) -> str:
    names = bin_names(bins)
    lines = [
        "| label | all: slices with it, AUC | " + " | ".join(names) + " |",
        "| --- | --- | " + " | ".join("---" for _ in names) + " |",
    ]
    for k, label in enumerate(LABELS):
        cells = [f"{int((truth[:, k] == 1).sum())}, {roc_auc(truth[:, k], probs[:, k]):.3f}"]
        cells += [f"{n}, {auc:.3f}" for n, auc in auc_by_bin(truth[:, k], probs[:, k],
                                                             areas[:, k], bins)]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, nargs="+", required=True, help="phantom folders")
    p.add_argument("--model", type=Path, default=None, help="classifier ONNX (default: bundled)")
    p.add_argument("--bins", type=float, nargs="+", default=[0.0, 30.0, 100.0, 300.0],
                   help="lower edges of the area bins, mm²")
    p.add_argument("--thin-below", type=float, default=None, metavar="MM",
                   help="also one table for the series thinner than this and one for the rest "
                        "(each against its own bleed-free slices)")
    args = p.parse_args(argv)
    clf = ichinfer.Classifier(args.model)
    parts = [collect(clf, folder) for folder in args.data]
    probs, truth, areas, thickness = (np.concatenate(x) for x in zip(*parts, strict=True))
    print(f"{clf.spec.describe()['file']}: {len(truth)} slices of "
          + ", ".join(str(d) for d in args.data))
    print("Each cell: bleeding slices in the bin, their AUC against all slices without the label.")
    print(table(probs, truth, areas, args.bins))
    if args.thin_below is not None:
        thin = thickness < args.thin_below
        for name, keep in ((f"thinner than {args.thin_below:g} mm", thin),
                           (f"{args.thin_below:g} mm or thicker", ~thin)):
            print(f"\nSeries {name}: {int(keep.sum())} slices")
            print(table(probs[keep], truth[keep], areas[keep], args.bins))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
