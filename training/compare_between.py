"""Thin-series masks between sampled slabs: interpolated against nearest, on phantoms.

    python training/compare_between.py --data data/phantoms-val data/phantoms-val2a \
        --proxy data/hardneg-a data/hardneg-b [--model models/densenet_unet.onnx]

Runs ``ichinfer.Segmenter`` with ``between="nearest"`` and ``"interpolate"`` and prints, per
mode, the pooled Dice on every slice's own pixel grid (as ``training/evaluate.py`` scores it)
over the thin series of ``--data`` (``training/seg_breakdown.py``'s groups) and over all of
them, and the volume marked on the bleed-free ``--proxy`` folders.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import ichinfer  # noqa: E402
from training.seg_breakdown import breakdown  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, nargs="+", required=True, help="validation folders")
    p.add_argument("--proxy", type=Path, nargs="*", default=[], help="bleed-free folders")
    p.add_argument("--model", type=Path, default=None, help="default: the bundled segmenter")
    args = p.parse_args(argv)
    print("| between | thin series: Dice pooled | all series: Dice pooled | proxy volume marked |")
    print("| --- | --- | --- | --- |")
    for mode in ("nearest", "interpolate"):
        seg = ichinfer.Segmenter(args.model, device="cpu", between=mode)
        thin, every = np.zeros(2), np.zeros(2)
        for data in args.data:
            groups = breakdown(seg, data)  # per group: intersection, truth + marked, ...
            thin, every = thin + groups["thin"][:2], every + groups["all"][:2]
        ml = sum(
            s.volume_ml or 0.0 for d in args.proxy for s in seg.segment(d / "stage_2_train").series
        )
        print(
            f"| {mode} | {2 * thin[0] / max(thin[1], 1):.4f} "
            f"| {2 * every[0] / max(every[1], 1):.4f} | {ml:.1f} mL |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
