"""False positives on bleed-free phantoms: a proxy for what models do on real normal scans.

    python -m training.synth --out data/hardneg-a --studies 6 --seed 93 --positive-fraction 0 \
        --thin-fraction 1 --thin-extent whole
    python training/hard_negatives.py --data data/hardneg-a data/hardneg-b \
        --classifiers runs/ft5/models/densenet25d.onnx models/densenet25d.onnx \
        --segmenters runs/ft5/models/densenet_unet.onnx models/densenet_unet.onnx

Every slice of the folders must be bleed-free (checked against their ``stage_2_train.csv``).
Per classifier: slices at or above its own ``any`` slice threshold, and series whose verdict
says ``any``; per segmenter: slices with any mask and the volume marked. All of it is false.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ichinfer  # noqa: E402
from training.data import read_rsna_labels  # noqa: E402


def check_bleed_free(folders: list[Path]) -> None:
    for folder in folders:
        labels = read_rsna_labels(folder / "stage_2_train.csv")
        bleeding = [k for k, y in labels.items() if y[0] == 1]
        if bleeding:
            raise SystemExit(f"{folder}: {len(bleeding)} slices have a bleed, e.g. {bleeding[0]}")


def classifier_row(path: Path, folders: list[Path]) -> str:
    clf = ichinfer.Classifier(path)
    series = [s for f in folders for s in clf.classify(f / "stage_2_train").series]
    slices = [x for s in series for x in s.slices]
    flagged = sum(x.probabilities["any"] >= clf.thresholds["any"] for x in slices)
    called = sum(s.verdict["any"] for s in series)
    return (
        f"| `{path}` | {flagged} / {len(slices)} ({flagged / len(slices):.2%}) "
        f"| {called} / {len(series)} |"
    )


def segmenter_row(path: Path, folders: list[Path]) -> str:
    seg = ichinfer.Segmenter(path)
    series = [s for f in folders for s in seg.segment(f / "stage_2_train").series]
    slices = [x for s in series for x in s.slices]
    marked = sum(bool(x.mask.any()) for x in slices)
    ml = sum(s.volume_ml or 0.0 for s in series)
    return (
        f"| `{path}` | {marked} / {len(slices)} | {ml:.1f} mL ({ml / len(series):.1f} a series) |"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, nargs="+", required=True, help="bleed-free folders")
    p.add_argument("--classifiers", type=Path, nargs="*", default=[])
    p.add_argument("--segmenters", type=Path, nargs="*", default=[])
    args = p.parse_args(argv)
    check_bleed_free(args.data)
    if args.classifiers:
        print("| classifier | slices flagged `any` | series called `any` |")
        print("| --- | --- | --- |")
        for path in args.classifiers:
            print(classifier_row(path, args.data))
        print()
    if args.segmenters:
        print("| segmenter | slices with a mask | volume marked |")
        print("| --- | --- | --- |")
        for path in args.segmenters:
            print(segmenter_row(path, args.data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
