"""Would a learned series context help? A per-label logistic regression over neighbouring slabs.

    python training/context_study.py --fit data/ft-3500 data/ft-3501 \
        --score data/phantoms-val data/phantoms-val4 --score data/phantoms-test2 [--model FILE]

The RSNA 2019 winners put a second model over each slice's neighbours' predictions. The
cheapest such model: for each label, a logistic regression on that label's logit at the slice
and at the slices 5, 10 and 15 mm towards the head and the foot (the nearest slice within
2.6 mm, with a 0/1 feature saying whether there is one), fitted by Newton's method with an L2
penalty (``--l2``). It is fitted on ``--fit`` folders, which must be ones the classifier never
trained on (its outputs there are what it gives unseen series), and scored on each ``--score``
group: per-label slice AUC without and with it. Only prints from ``main``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from ichinfer.classification import Classifier  # noqa: E402
from ichinfer.labels import LABELS  # noqa: E402
from ichinfer.metrics import roc_auc  # noqa: E402
from training.smoothing_study import collect, read_labels  # noqa: E402

OFFSETS_MM = (-15.0, -10.0, -5.0, 0.0, 5.0, 10.0, 15.0)
TOLERANCE_MM = 2.6


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def features(probs: np.ndarray, loc: np.ndarray, label: int) -> np.ndarray:
    """(slices, 2 × offsets): the label's logit at each offset (0 where no slice is within
    the tolerance) and whether there is one."""
    z = logit(probs[:, label])
    order = np.argsort(loc)
    loc_s, z_s = loc[order], z[order]
    cols = []
    for off in OFFSETS_MM:
        target = loc + off
        j = np.clip(np.searchsorted(loc_s, target), 0, len(loc_s) - 1)
        left = np.clip(j - 1, 0, len(loc_s) - 1)
        j = np.where(np.abs(loc_s[left] - target) < np.abs(loc_s[j] - target), left, j)
        there = (np.abs(loc_s[j] - target) <= TOLERANCE_MM).astype(float)
        cols += [z_s[j] * there, there]
    return np.stack(cols, axis=1)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float, steps: int = 30) -> np.ndarray:
    xb = np.c_[x, np.ones(len(x))]
    w = np.zeros(xb.shape[1])
    penalty = l2 * np.r_[np.ones(x.shape[1]), 0.0]
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(xb @ w)))
        grad = xb.T @ (p - y) + penalty * w
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + np.diag(penalty + 1e-9)
        w -= np.linalg.solve(hess, grad)
    return w


def predict(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-(np.c_[x, np.ones(len(x))] @ w)))


def gather(clf: Classifier, folders: list[Path]) -> list[dict]:
    return [
        s
        for f in folders
        for s in collect(clf, f / "stage_2_train", read_labels(f / "stage_2_train.csv"))
    ]


def design(series: list[dict], label: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, truth and the slice's own probability, over every slice of ``series``."""
    x = np.concatenate([features(s["probs"], s["loc"], label) for s in series])
    y = np.concatenate([s["truth"][:, label] for s in series]).astype(float)
    own = np.concatenate([s["probs"][:, label] for s in series])
    return x, y, own


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fit", type=Path, nargs="+", required=True,
                   help="folders to fit on (never trained on by the classifier)")
    p.add_argument("--score", type=Path, nargs="+", action="append", required=True,
                   help="a group of folders scored as one set (repeatable)")
    p.add_argument("--model", type=Path, default=None, help="classifier ONNX (default: bundled)")
    p.add_argument("--l2", type=float, default=10.0)
    args = p.parse_args(argv)
    clf = Classifier(args.model, device="cpu", threads=2)
    fit = gather(clf, args.fit)
    weights = [fit_logistic(*design(fit, k)[:2], l2=args.l2) for k in range(len(LABELS))]
    print(f"fitted on {sum(len(s['loc']) for s in fit)} slices of "
          + ", ".join(str(f) for f in args.fit))
    print("| scored on | slices | " + " | ".join(LABELS) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in LABELS) + " |")
    for group in args.score:
        series = gather(clf, group)
        cells = []
        for k in range(len(LABELS)):
            x, y, own = design(series, k)
            base, ctx = roc_auc(y, own), roc_auc(y, predict(x, weights[k]))
            cells.append(f"{base:.3f} → {ctx:.3f}")
        n = sum(len(s["loc"]) for s in series)
        print(f"| {', '.join(f.name for f in group)} | {n} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
