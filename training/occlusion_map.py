"""Which part of a slab makes the classifier call it a bleed: an occlusion map per flagged slab.

    python training/occlusion_map.py ../shared/data/cq500-ct0 --out occlusion.png [--last 0.2]

On the sampled slabs (the runtime's decoding, ``training.kernel_probe.slabs``) of the last
``--last`` share of each series that the classifier flags ``any`` at its own threshold, each
cell of a ``--grid`` x ``--grid`` lattice in turn is replaced, in all of the input's channels,
by the same cell Gaussian-blurred by ``--sigma`` px (density kept, texture and edges removed);
the drop in the logit of ``any`` per cell (a saturated score still moves) is drawn in red over
the slab (brain window; the bone window beside it), with the slab's own score. Prints, per slab
(series in scan order, slab), the score and the share of the summed drop in cells whose centre
pixel is above 300 HU in a 7-px neighbourhood (bone) or outside the head. A diagnosis of
real-scan behaviour, never a selection.
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


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def occlusion(
    run, x: np.ndarray, grid: int, sigma: float, score: float | None = None
) -> np.ndarray:
    """Drop in the logit of ``any`` per cell (grid x grid) for one slab ``x`` (H, W, C);
    ``score``: its ``any`` as read, if already computed."""
    h, w = x.shape[:2]
    blurred = np.stack([cv2.GaussianBlur(x[..., c], (0, 0), sigma) for c in range(x.shape[-1])], -1)
    variants = []
    for i in range(grid):
        for j in range(grid):
            v = x.copy()
            ys = slice(i * h // grid, (i + 1) * h // grid)
            xs = slice(j * w // grid, (j + 1) * w // grid)
            v[ys, xs] = blurred[ys, xs]
            variants.append(v)
    base = float(logit(run(x[None])[0, 0] if score is None else score))
    scores = np.concatenate(
        [run(np.stack(variants[k : k + 32])) for k in range(0, len(variants), 32)]
    )
    return base - logit(scores[:, 0]).reshape(grid, grid)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--model", type=Path, default=Path("models/densenet25d.onnx"))
    p.add_argument("--out", type=Path, required=True, help="PNG of the maps")
    p.add_argument("--last", type=float, default=0.2, help="share of each series, from its end")
    p.add_argument("--grid", type=int, default=12)
    p.add_argument("--sigma", type=float, default=4.0)
    args = p.parse_args(argv)
    sess = get_session(args.model, device="cpu")
    thr = sess.spec.thresholds["any"]
    c = sess.spec.context

    def run(v: np.ndarray) -> np.ndarray:
        return sess.run(v.astype(np.float32))

    tiles = []
    print("| series | slab | any | drop share in bone cells | outside the head |")
    print("| --- | --- | --- | --- | --- |")
    for n, (x, _) in enumerate(slabs(args.folder, sess)):
        first = int((1 - args.last) * len(x))
        scores = run(x[first:])[:, 0]
        for k in range(first, len(x)):
            score = float(scores[k - first])
            if score < thr:
                continue
            drop = np.maximum(occlusion(run, x[k], args.grid, args.sigma, score), 0.0)
            centre = x[k, ..., c]
            size = centre.shape[0] // args.grid
            idx = np.arange(args.grid) * size + size // 2
            dense = cv2.dilate((centre > 300).astype(np.uint8), np.ones((7, 7), np.uint8))
            bone = dense[np.ix_(idx, idx)].astype(bool)
            head = cv2.GaussianBlur(centre, (0, 0), 3.0)[np.ix_(idx, idx)] > -300
            total = drop.sum() or 1.0
            print(f"| {n} | {k} | {score:.2f} | {drop[bone].sum() / total:.0%} "
                  f"| {drop[~head].sum() / total:.0%} |")
            brain = np.clip(centre / 80 * 255, 0, 255).astype(np.uint8)
            bonew = np.clip((centre + 450) / 2000 * 255, 0, 255).astype(np.uint8)
            heat = cv2.resize(drop / max(drop.max(), 1e-6), centre.shape[::-1],
                              interpolation=cv2.INTER_NEAREST)
            rgb = cv2.cvtColor(brain, cv2.COLOR_GRAY2BGR).astype(np.float32)
            rgb[..., 2] = np.maximum(rgb[..., 2], 255 * heat)
            side = cv2.cvtColor(bonew, cv2.COLOR_GRAY2BGR)
            tile = np.concatenate([rgb.astype(np.uint8), side], 1)
            cv2.putText(tile, f"{n}:{k}: any {score:.2f}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                        (0, 255, 0), 1)
            tiles.append(tile)
    if tiles:
        cols = 2
        while len(tiles) % cols:
            tiles.append(np.zeros_like(tiles[0]))
        rows = [np.concatenate(tiles[r : r + cols], 1) for r in range(0, len(tiles), cols)]
        cv2.imwrite(str(args.out), np.concatenate(rows, 0))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
