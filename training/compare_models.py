"""Models side by side on validation phantoms, over the union of the folders.

    python training/compare_models.py --data data/phantoms-val data/phantoms-val2a \
        --models runs/ft3/models/densenet25d.onnx runs/ft4/models/densenet25d.onnx

Inputs are built the way training and export build them (``export.to_onnx.validation_batches``,
the model's own metadata for size, slabs and context). Prints a Markdown table per task:
classifiers get each label's AUC, their mean and their minimum; segmenters get pooled Dice, mean
Dice over bleeding slices, and the share of bleed-free slices where they mark anything (with the
mean area marked there, in pixels of the model grid), at the mask threshold in their metadata or,
with ``--mask-thresholds``, at each of those (one row per model and threshold). Used to choose
between candidate checkpoints, and a segmenter's threshold, on validation data only (never the
test phantoms or the real scans).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from export.to_onnx import predict, validation_batches  # noqa: E402
from ichinfer.labels import LABELS  # noqa: E402
from ichinfer.metrics import dice, roc_auc  # noqa: E402
from ichinfer.pipeline import average_with_mirrored  # noqa: E402
from ichinfer.runtime import get_session  # noqa: E402


def model_info(path: Path) -> dict:
    """What ``validation_batches`` needs, from the model's own metadata as the runtime reads it."""
    spec = get_session(path, device="cpu").spec
    return {
        "task": spec.task,
        "image_size": spec.input_size[0],
        "mask_threshold": spec.thresholds.get("mask", 0.5),
        "slab_mm": spec.slab_mm,
        "context": spec.context,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, nargs="+", required=True)
    p.add_argument("--models", type=Path, nargs="+", required=True)
    p.add_argument(
        "--mask-thresholds",
        type=float,
        nargs="+",
        default=None,
        help="score segmenters at each of these mask thresholds instead of their own",
    )
    p.add_argument("--digits", type=int, default=3, help="decimals of AUC and Dice")
    p.add_argument("--mirror", action="store_true",
                   help="also score each model on its inputs mirrored left to right, averaged "
                        "with the plain output (rows marked 'mirrored')")
    args = p.parse_args(argv)
    infos = {path: model_info(path) for path in args.models}
    for task, heads in (
        ("classify", [*LABELS, "mean", "lowest"]),
        (
            "segment",
            [
                "Dice pooled",
                "Dice mean (bleeding slices)",
                "bleed-free slices marked",
                "px marked there (mean)",
            ],
        ),
    ):
        paths = [path for path in args.models if infos[path]["task"] == task]
        if not paths:
            continue
        sweep = task == "segment" and args.mask_thresholds is not None
        first = ["model", "threshold"] if sweep else ["model"]
        print(f"| {' | '.join(first)} | slices | {' | '.join(heads)} |")
        print("|" + " --- |" * (len(heads) + len(first) + 1))
        inputs: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}  # candidates share their inputs
        for path in paths:
            key = tuple(sorted(infos[path].items()))
            if key not in inputs:
                xs, ys = zip(
                    *(validation_batches(infos[path], d, None) for d in args.data), strict=True
                )
                inputs[key] = np.concatenate(xs), np.concatenate(ys)
            x, y = inputs[key]
            prob = predict(path, x)
            runs = [(f"`{path}`", prob)]
            if args.mirror:
                of_mirror = predict(path, np.ascontiguousarray(x[:, :, ::-1]))
                runs.append((f"`{path}` mirrored", average_with_mirrored(prob, of_mirror)))
            for label, p_run in runs:
                if task == "classify":
                    cells = classifier_cells(p_run, y, args.digits)
                    print(f"| {label} | {len(y)} | {' | '.join(cells)} |")
                    continue
                for t in args.mask_thresholds if sweep else [infos[path]["mask_threshold"]]:
                    cells = segmenter_cells(p_run, y, t, args.digits)
                    name = f"{label} | {t:.2f}" if sweep else label
                    print(f"| {name} | {len(y)} | {' | '.join(cells)} |")
        print()
    return 0


def classifier_cells(prob: np.ndarray, y: np.ndarray, digits: int = 3) -> list[str]:
    aucs = [roc_auc(y[:, k], prob[:, k]) for k in range(len(LABELS))]
    return [f"{a:.{digits}f}" for a in [*aucs, np.mean(aucs), np.min(aucs)]]


def segmenter_cells(
    prob: np.ndarray, y: np.ndarray, threshold: float, digits: int = 3
) -> list[str]:
    masks, truth = prob[..., 0] >= threshold, y > 0
    bleeding = truth.any(axis=(1, 2))
    per_slice = [dice(t, m) for t, m in zip(truth[bleeding], masks[bleeding], strict=True)]
    marked = masks[~bleeding].sum(axis=(1, 2))
    return [
        f"{dice(truth, masks):.{digits}f}",
        f"{np.mean(per_slice):.{digits}f}",
        f"{np.mean(marked > 0):.1%}",
        f"{marked.mean():.1f}",
    ]


if __name__ == "__main__":
    raise SystemExit(main())
