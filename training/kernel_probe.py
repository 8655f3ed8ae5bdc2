"""How a classifier's scores move when its whole input is blurred or sharpened: real and phantoms.

    python training/kernel_probe.py --models models/densenet25d.onnx \
        --data ../shared/data/cq500-ct0 data/hardneg-a data/hardneg-g86 data/phantoms-val4

Reconstruction kernels differ between scanners (soft, standard, sharp). Per folder (a labelled
RSNA-layout phantom folder, or any folder of one or more series), the sampled slabs the runtime
builds (``model_inputs`` on the model's own grid, slabs and context) go through the model as
read, Gaussian-blurred (sigma 0.7 and 1.0 px of the model grid, every channel) and sharpened
(unsharp mask: sigma 1.0 px amount 0.3, sigma 1.5 px amount 0.7). Reported per transform: the
share of slabs at or above the model's ``any`` slice threshold (only bleed-free slabs where the
folder has labels) and the mean ``any``; with labels, each label's AUC. A last line per folder
gives the fine-scale brain noise of the slabs as read: the std of each centre slab minus its
1-px Gaussian blur over brain pixels (15-50 HU after a 2-px blur, eroded by 3 px), in the middle
half of each series, median over slabs. Real scans are for checking only: this looks at models,
it never trains or selects one.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from ichinfer import dicom  # noqa: E402
from ichinfer.labels import LABELS  # noqa: E402
from ichinfer.metrics import roc_auc  # noqa: E402
from ichinfer.pipeline import PreparedSeries  # noqa: E402
from ichinfer.preprocess import model_inputs, sample_indices  # noqa: E402
from ichinfer.runtime import Session, get_session  # noqa: E402
from training.data import read_rsna_labels  # noqa: E402

ANY = LABELS.index("any")


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    return np.stack([cv2.GaussianBlur(v, (0, 0), sigma) for v in x])


def sharpen(x: np.ndarray, sigma: float, amount: float) -> np.ndarray:
    return x + np.float32(amount) * (x - blur(x, sigma))


TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "as read": lambda x: x,
    "blur 0.7 px": lambda x: blur(x, 0.7),
    "blur 1.0 px": lambda x: blur(x, 1.0),
    "unsharp 1.0 px, 0.3": lambda x: sharpen(x, 1.0, 0.3),
    "unsharp 1.5 px, 0.7": lambda x: sharpen(x, 1.5, 0.7),
}


def slabs(folder: Path, sess: Session) -> Iterator[tuple[np.ndarray, list[str]]]:
    """Per series: the model inputs of the slabs the runtime samples (its own decoding onto the
    model grid, ``PreparedSeries``) and their slices' file stems."""
    spec = sess.spec
    for ser in dicom.scan(folder).series:
        prepared = PreparedSeries(ser)
        idx = sample_indices(prepared.locations_mm, spec.slab_mm)
        x = model_inputs(prepared.grid(spec.input_size[0]), prepared.locations_mm, idx,
                         slab_mm=spec.slab_mm, context=spec.context)
        yield x, [Path(ser.slices[int(i)].path).stem for i in idx]


def brain_noise(x: np.ndarray, context: int) -> list[float]:
    """Fine-scale noise of the centre slabs in the middle half of a series (module doc)."""
    out = []
    for v in x[len(x) // 4 : 3 * len(x) // 4, ..., context]:
        fine = v - cv2.GaussianBlur(v, (0, 0), 1.0)
        smooth = cv2.GaussianBlur(v, (0, 0), 2.0)
        brain = ((smooth > 15) & (smooth < 50)).astype(np.uint8)
        brain = cv2.erode(brain, np.ones((7, 7), np.uint8)).astype(bool)
        if brain.sum() >= 500:
            out.append(float(np.std(fine[brain])))
    return out


def probe(model: Path, folder: Path, threshold: float | None) -> list[str]:
    sess = get_session(model, device="cpu")
    thr = sess.spec.thresholds["any"] if threshold is None else threshold
    images = folder / "stage_2_train" if (folder / "stage_2_train").is_dir() else folder
    csv = folder / "stage_2_train.csv"
    labels = read_rsna_labels(csv) if csv.is_file() else None

    def run(v: np.ndarray) -> np.ndarray:
        v = v.astype(np.float32)
        return np.concatenate([sess.run(v[k : k + 64]) for k in range(0, len(v), 64)])

    scores: dict[str, list[np.ndarray]] = {k: [] for k in TRANSFORMS}
    truth, noise = [], []
    for x, stems in slabs(images, sess):
        for name, fn in TRANSFORMS.items():
            scores[name].append(run(fn(x)))
        noise += brain_noise(x, sess.spec.context)
        if labels is not None:
            truth.append(np.array([labels[s] for s in stems]))
    y = np.concatenate(truth) if truth else None
    labelled = y is not None and bool(y[:, ANY].any())
    rows = []
    for name in TRANSFORMS:
        p = np.concatenate(scores[name])
        neg = y[:, ANY] == 0 if y is not None else np.ones(len(p), bool)
        cells = [f"`{model}`", folder.name, name, f"{(p[neg, ANY] >= thr).mean():.1%}",
                 f"{p[neg, ANY].mean():.3f}", str(int(neg.sum()))]
        aucs = [roc_auc(y[:, j], p[:, j]) if labelled else float("nan") for j in range(6)]
        cells += ["—" if np.isnan(a) else f"{a:.3f}" for a in aucs]
        rows.append("| " + " | ".join(cells) + " |")
    rows.append(f"| `{model}` | {folder.name} | brain noise (HU, median of {len(noise)} slabs) | "
                f"{np.median(noise):.2f} |" + " |" * 8)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=Path, nargs="+", required=True, help="classifiers (.onnx)")
    p.add_argument("--data", type=Path, nargs="+", required=True,
                   help="labelled phantom folders (RSNA layout) or folders of real series")
    p.add_argument("--threshold", type=float, default=None,
                   help="'any' threshold for the flagged share (default: each model's own)")
    args = p.parse_args(argv)
    print("| model | folder | input | bleed-free slabs flagged `any` | their mean `any` | slabs "
          "| " + " | ".join(f"{label} AUC" for label in LABELS) + " |")
    print("|" + " --- |" * 12)
    for model in args.models:
        for folder in args.data:
            for row in probe(model, folder, args.threshold):
                print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
