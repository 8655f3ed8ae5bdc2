"""What would a gate at another `any` threshold trade? Dice and false marks per gate threshold.

    python training/gate_sweep.py --data data/phantoms-val data/phantoms-val2a \
        [--real ../shared/data/cq500-ct0] [--thresholds 0 0.1 0.2 0.383 0.5]

``ichinfer segment --gate`` keeps the segmenter's masks on the slices whose classifier ``any``
probability reaches the classifier's own threshold. This runs both bundled models once per
series (``ichinfer.study.assess_series``, ungated) and applies each gate threshold afterwards:
pooled Dice, mean Dice over bleeding slices and the volume marked on the phantom folders
(truth from their ``masks/``, on each slice's own grid), and the slices and volume marked on a
bleed-free real series (``--real``; all of it false). Threshold 0 is the ungated segmenter.
Only prints from ``main``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from ichinfer import pipeline, study  # noqa: E402
from ichinfer.classification import Classifier  # noqa: E402
from ichinfer.segmentation import Segmenter  # noqa: E402
from training.data import slice_mask  # noqa: E402


def slice_rows(clf: Classifier, seg: Segmenter, folder: Path, truth: bool) -> np.ndarray:
    """(slices, 5): ``any`` probability, overlap, mask pixels, truth pixels, mask volume mL."""
    root = folder / "stage_2_train" if truth else folder
    rows = []
    for series in pipeline.scan_inputs(str(root), on_error="raise").series:
        a = study.assess_series(series, classifier=clf, segmenter=seg)
        for c, sl in zip(a.classification.slices, a.segmentation.slices, strict=True):
            mask = sl.mask > 0
            t = slice_mask(folder, sl.path) > 0 if truth else np.zeros_like(mask)
            rows.append((c.probabilities["any"], int((mask & t).sum()), int(mask.sum()),
                         int(t.sum()), sl.area_mm2 * sl.thickness_mm / 1000.0))
    return np.array(rows, dtype=np.float64).reshape(-1, 5)


def gated_figures(rows: np.ndarray, threshold: float) -> dict[str, float]:
    keep = rows[:, 0] >= threshold
    overlap, marked, truth = rows[:, 1] * keep, rows[:, 2] * keep, rows[:, 3]
    bleeding = truth > 0
    per = 2 * overlap[bleeding] / (marked[bleeding] + truth[bleeding])
    return {"pooled": 2 * overlap.sum() / max(marked.sum() + truth.sum(), 1.0),
            "mean_bleeding": float(per.mean()) if bleeding.any() else float("nan"),
            "volume_ml": float((rows[:, 4] * keep).sum()),
            "slices_marked": int(((rows[:, 2] > 0) & keep).sum())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, nargs="+", required=True, help="phantom folders")
    p.add_argument("--real", type=Path, default=None, help="a bleed-free real series")
    p.add_argument("--thresholds", type=float, nargs="+",
                   default=[0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, None, 0.5],
                   help="gate thresholds (default: a sweep and the classifier's own)")
    p.add_argument("--classifier", type=Path, default=None, help="ONNX (default: bundled)")
    p.add_argument("--segmenter", type=Path, default=None, help="ONNX (default: bundled)")
    args = p.parse_args(argv)
    clf = Classifier(args.classifier, device="cpu")
    seg = Segmenter(args.segmenter, device="cpu")
    own = clf.thresholds["any"]
    thresholds = [own if t is None else t for t in args.thresholds]
    phantoms = np.concatenate([slice_rows(clf, seg, f, truth=True) for f in args.data])
    real = slice_rows(clf, seg, args.real, truth=False) if args.real else None
    print(f"{clf.spec.path.name} (own `any` threshold {own:.3f}) gating {seg.spec.path.name} "
          f"(mask threshold {seg.threshold:g}); {len(phantoms)} phantom slices of "
          + ", ".join(f.name for f in args.data)
          + (f"; {args.real.name}, {len(real)} slices" if real is not None else ""))
    header = ["gate at", "pooled Dice", "mean Dice, bleeding slices", "volume marked"]
    header += ["real: slices marked", "real: volume marked"] if real is not None else []
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for t in thresholds:
        f = gated_figures(phantoms, t)
        cells = [f"{t:.3f}" + (" (own)" if t == own else "") + (" (no gate)" if t == 0 else ""),
                 f"{f['pooled']:.4f}", f"{f['mean_bleeding']:.4f}", f"{f['volume_ml']:.1f} mL"]
        if real is not None:
            r = gated_figures(real, t)
            cells += [str(r["slices_marked"]), f"{r['volume_ml']:.1f} mL"]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
