"""Classifiers side by side on validation phantoms: per-label AUC over the union of the folders.

    python training/compare_models.py --data data/phantoms-val data/phantoms-val2a \
        --models runs/ft3/models/densenet25d.onnx runs/ft4/models/densenet25d.onnx

Inputs are built the way training and export build them (``export.to_onnx.validation_batches``,
the model's own metadata for size, slabs and context). Prints a Markdown table: one row per
model, each label's AUC, their mean and their minimum. Used to choose between candidate
checkpoints on validation data only (never the test phantoms or the real scans).
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
from ichinfer.metrics import roc_auc  # noqa: E402
from ichinfer.runtime import get_session  # noqa: E402


def model_info(path: Path) -> dict:
    """What ``validation_batches`` needs, from the model's own metadata as the runtime reads it."""
    spec = get_session(path, device="cpu").spec
    return {
        "task": spec.task,
        "image_size": spec.input_size[0],
        "slab_mm": spec.slab_mm,
        "context": spec.context,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, nargs="+", required=True)
    p.add_argument("--models", type=Path, nargs="+", required=True)
    args = p.parse_args(argv)
    heads = " | ".join(LABELS)
    print(f"| model | slices | {heads} | mean | lowest |")
    print("|" + " --- |" * (len(LABELS) + 4))
    for path in args.models:
        info = model_info(path)
        xs, ys = zip(*(validation_batches(info, d, None) for d in args.data), strict=True)
        x, y = np.concatenate(xs), np.concatenate(ys)
        prob = predict(path, x)
        aucs = [roc_auc(y[:, k], prob[:, k]) for k in range(len(LABELS))]
        cells = " | ".join(f"{a:.3f}" for a in aucs)
        print(f"| `{path}` | {len(y)} | {cells} | {np.mean(aucs):.3f} | {np.min(aucs):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
