"""Where along the head a classifier's false positives fall: phantoms against a real normal scan.

    python training/fp_by_level.py --phantoms data/phantoms-test2 --real ../shared/data/cq500-ct0

Per fifth of each series (head to foot), the bleed-free slices at or above the ``any`` slice
threshold, over a labelled phantom folder (RSNA layout) and over a real series read as normal
(every slice counted). Only series spanning ``--min-extent-mm`` count: the generator's thin
series cover 25-40 mm about the middle of the head, so their fifths are not the vertex and the
skull base. A diagnosis of the phantoms' realism, never a selection: the real scan
is only looked at.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import ichinfer  # noqa: E402
from training.data import read_rsna_labels  # noqa: E402

PARTS = 5


def by_level(
    result, threshold: float, labels: dict | None = None, min_extent_mm: float = 0.0
) -> tuple[np.ndarray, np.ndarray, int]:
    """(flagged, counted) per fifth and the series counted; with ``labels`` only the slices
    without a bleed count."""
    flagged, counted = np.zeros(PARTS, int), np.zeros(PARTS, int)
    used = 0
    for series in result.series:
        locs = [s.location_mm for s in series.slices]
        if max(locs) - min(locs) < min_extent_mm:
            continue
        used += 1
        n = len(series.slices)
        for s in series.slices:
            if labels is not None and labels[Path(s.path).name.removesuffix(".dcm")][0] == 1:
                continue
            part = min(PARTS - 1, PARTS * s.index // n)
            counted[part] += 1
            flagged[part] += s.probabilities["any"] >= threshold
    return flagged, counted, used


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--phantoms", type=Path, required=True, help="labelled folder (RSNA layout)")
    p.add_argument("--real", type=Path, help="a real series read as normal")
    p.add_argument("--model", type=Path, default=None, help="classifier (default: bundled)")
    p.add_argument("--min-extent-mm", type=float, default=100.0)
    args = p.parse_args(argv)
    clf = ichinfer.Classifier(args.model)
    threshold = clf.thresholds["any"]
    labels = read_rsna_labels(args.phantoms / "stage_2_train.csv")
    phantoms = clf.classify(args.phantoms / "stage_2_train", on_error="collect")
    rows = [
        ("phantoms, bleed-free slices", by_level(phantoms, threshold, labels, args.min_extent_mm))
    ]
    if args.real is not None:
        real = clf.classify(args.real)
        rows.append(
            (f"{args.real.name}, every slice", by_level(real, threshold, None, args.min_extent_mm))
        )
    print(f"`any` at or above {threshold:.3f} ({clf.spec.path.name}), per fifth, head to foot;")
    print(f"series spanning at least {args.min_extent_mm:g} mm only.\n")
    print("| slices | series | " + " | ".join(f"fifth {k + 1}" for k in range(PARTS)) + " |")
    print("| --- | --- |" + " --- |" * PARTS)
    for name, (flagged, counted, used) in rows:
        cells = [f"{f} / {c}" for f, c in zip(flagged, counted, strict=True)]
        print(f"| {name} | {used} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
