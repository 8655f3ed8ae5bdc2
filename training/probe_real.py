"""What a classifier reacts to on a real series: occlusion and perturbation probes.

    python training/probe_real.py ../shared/data/cq500-ct0 --model models/densenet25d.onnx

Takes the slabs the model scores highest for ``any`` (``--top``) and reports (1) occlusion: the
drop in the ``subdural`` probability when 16-pixel patches are set to 30 HU, and the share of
that drop that falls within 10 px (about 1 cm) of bone, next to that band's share of the head's
area; (2) perturbations of the whole slabs (noise, HU offsets, blur, sharpening, a flip) and the
mean ``any`` / ``subdural`` probabilities after each. Real scans are for checking only: this
looks at a model, it never trains or selects one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from ichinfer.labels import LABELS  # noqa: E402
from ichinfer.preprocess import BONE_HU  # noqa: E402
from ichinfer.runtime import get_session  # noqa: E402
from training.kernel_probe import blur, sharpen, slabs  # noqa: E402

ANY, SDH = LABELS.index("any"), LABELS.index("subdural")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("series", type=Path, help="a folder with one CT series")
    p.add_argument("--model", type=Path, required=True, help="a classifier .onnx")
    p.add_argument("--top", type=int, default=16, help="slabs probed (highest 'any')")
    args = p.parse_args(argv)
    sess = get_session(args.model, device="cpu")
    size = sess.spec.input_size[0]
    x, _ = next(slabs(args.series, sess))  # the first series' sampled slabs, as the runtime's

    def run(v: np.ndarray) -> np.ndarray:
        v = v.astype(np.float32)
        return np.concatenate([sess.run(v[k : k + 64]) for k in range(0, len(v), 64)])

    xs = x[np.argsort(-run(x)[:, ANY])[: args.top]]
    base = run(xs)

    # (1) occlusion on the centre slab's neighbourhood of bone
    near, area = [], []
    for v, b in zip(xs[:4], base[:4], strict=False):
        boxes = [(y, z) for y in range(0, size - 15, 8) for z in range(0, size - 15, 8)]
        batch = np.repeat(v[None], len(boxes), axis=0)
        for k, (y, z) in enumerate(boxes):
            batch[k, y : y + 16, z : z + 16, :] = 30.0
        drop = np.zeros((size, size), np.float32)
        count = np.zeros((size, size), np.float32)
        for (y, z), o in zip(boxes, run(batch), strict=True):
            drop[y : y + 16, z : z + 16] += max(b[SDH] - o[SDH], 0.0)
            count[y : y + 16, z : z + 16] += 1
        drop /= np.maximum(count, 1)
        centre = v[..., v.shape[-1] // 2]
        bone = (centre >= BONE_HU).astype(np.uint8)
        dist = cv2.distanceTransform(1 - bone, cv2.DIST_L2, 3)
        head = centre > -300
        band = head & (bone == 0) & (dist <= 10)
        near.append(drop[band].sum() / max(drop[head].sum(), 1e-9))
        area.append(band.sum() / max(head.sum(), 1))
    print(
        f"occlusion ({min(4, len(xs))} slabs): {100 * np.mean(near):.0f} % of the subdural "
        f"drop lies within 10 px of bone, a band that is {100 * np.mean(area):.0f} % of the "
        "head's area"
    )

    # (2) perturbations
    rng = np.random.default_rng(0)
    brain = (xs > -50) & (xs < 150)
    probes = {
        "as read": xs,
        "noise 3 HU": xs + rng.normal(0, 3, xs.shape),
        "noise 6 HU": xs + rng.normal(0, 6, xs.shape),
        "soft tissue -10 HU": np.where(brain, xs - 10, xs),
        "soft tissue +5 HU": np.where(brain, xs + 5, xs),
        "blur (sigma 1 px)": blur(xs, 1.0),
        "sharpen (unsharp 0.7)": sharpen(xs, 1.5, 0.7),
        "left-right flip": xs[:, :, ::-1],
    }
    print("| slabs probed | any (mean) | subdural (mean) |")
    print("| --- | --- | --- |")
    for name, v in probes.items():
        o = run(v)
        print(f"| {name} | {o[:, ANY].mean():.3f} | {o[:, SDH].mean():.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
