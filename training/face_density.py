"""Soft-tissue densities below the skull base: a phantom folder's series against a real one.

    python training/face_density.py ../shared/data/cq500-ct0 data/hardneg-g91 [--series 3]

Per series, on the slabs the runtime builds for the bundled classifier (its own decoding,
``training.kernel_probe.slabs``), over the lowest fifth of the sampled slabs: pixels whose
1.5-px Gaussian-smoothed value is 20-200 HU, eroded by 5 px (away from bone, air and fat);
their 10th, 25th, 50th, 75th and 90th percentiles and the share above 70 HU; and the share of
the head (pixels above -300 HU) at 90-300 HU, mostly bone in partial volume. A check of the
generator's realism against a real scan, never a selection or training input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from ichinfer.runtime import get_session  # noqa: E402
from training.kernel_probe import slabs  # noqa: E402


def lowest_fifth(x: np.ndarray, context: int) -> np.ndarray:
    """The centre channel of the lowest fifth of a series' sampled slabs."""
    return x[int(0.8 * len(x)) :, ..., context]


def soft_tissue(v: np.ndarray) -> np.ndarray:
    """HU of the soft tissue (module doc) on slabs ``v`` (N, H, W)."""
    out = []
    for s in v:
        sm = cv2.GaussianBlur(s, (0, 0), 1.5)
        m = ((sm > 20) & (sm < 200)).astype(np.uint8)
        out.append(s[cv2.erode(m, np.ones((5, 5), np.uint8)).astype(bool)])
    return np.concatenate(out)


def partial_bone(v: np.ndarray) -> float:
    """Share of the head at 90-300 HU on slabs ``v`` (N, H, W)."""
    head = v > -300
    return float(np.mean((v[head] >= 90) & (v[head] < 300)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", type=Path, nargs="+", help="DICOM folders (RSNA layout or not)")
    p.add_argument("--series", type=int, default=3, help="series per folder (default 3)")
    p.add_argument("--model", type=Path, default=Path("models/densenet25d.onnx"))
    args = p.parse_args(argv)
    sess = get_session(args.model, device="cpu")
    print("| folder | series | slabs | p10 | p25 | p50 | p75 | p90 | above 70 HU "
          "| head at 90-300 HU |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for folder in args.folders:
        images = folder / "stage_2_train" if (folder / "stage_2_train").is_dir() else folder
        for k, (x, _) in enumerate(slabs(images, sess)):
            if k >= args.series:
                break
            low = lowest_fifth(x, sess.spec.context)
            a = soft_tissue(low)
            pct = " | ".join(f"{v:.0f}" for v in np.percentile(a, [10, 25, 50, 75, 90]))
            bone = partial_bone(low)
            print(f"| {folder.name} | {k} | {len(x)} | {pct} | {np.mean(a > 70):.0%} "
                  f"| {bone:.1%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
