"""Does the segmenter see the small bleeds the classifier misses? `any` by bleed size, and fused.

    python training/fusion_study.py --fit data/phantoms-val data/phantoms-val2a \
        --score data/phantoms-test2 data/phantoms-test5a --real ../shared/data/cq500-ct0

For every slice of the phantom folders (RSNA layout with ``masks/``, ``training/synth.py``
output), both bundled models run through the runtime on one decode (slabs; thin series
sampled, each slice taking its nearest sampled slice's outputs, as the classifier does): the
classifier's ``any`` probability, the segmenter's highest pixel probability on the slice and
its pixels at or above the mask threshold. A per-slice logistic regression on the classifier's
logit, the peak's logit and log(1 + pixels) is fitted on ``--fit`` (folders neither model
trained on) and scored on ``--score``: ``any`` AUC overall and by the bleed's area on the
slice (as ``training/auc_by_size.py``), for each score alone and fused. On ``--real`` (a
bleed-free real series) it counts the slices flagged by the classifier at its default
threshold and by the fused score at the threshold that flags the same share of the ``--fit``
folders' bleed-free slices. Only prints from ``main``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from ichinfer import pipeline  # noqa: E402
from ichinfer.classification import Classifier  # noqa: E402
from ichinfer.metrics import roc_auc  # noqa: E402
from ichinfer.preprocess import nearest_sampled, sample_indices  # noqa: E402
from ichinfer.segmentation import Segmenter  # noqa: E402
from training.auc_by_size import (  # noqa: E402
    auc_by_bin,
    bin_names,
    pixel_spacings,
    slice_areas_mm2,
)
from training.context_study import fit_logistic, logit, predict  # noqa: E402
from training.data import read_rsna_labels, slice_id, slice_mask  # noqa: E402

BINS_MM2 = (0.0, 30.0, 100.0, 300.0)


def slice_scores(clf: Classifier, seg: Segmenter, prepared: pipeline.PreparedSeries) -> np.ndarray:
    """(slices, 3): classifier ``any``, segmenter peak probability, segmenter pixels marked."""
    any_prob = np.array([s.probabilities["any"] for s in clf.classify_series(prepared).slices])
    loc = prepared.locations_mm
    sampled = sample_indices(loc, seg.spec.slab_mm)

    def peak_and_marked(y: np.ndarray) -> np.ndarray:
        maps = y[..., 0].reshape(len(y), -1)
        return np.stack([maps.max(axis=1), (maps >= seg.threshold).sum(axis=1)], axis=1)

    stats = pipeline.run_batched(seg.session, prepared, sampled, batch_size=seg.batch_size,
                                 transform=peak_and_marked)
    return np.c_[any_prob, stats[nearest_sampled(loc, sampled)]]


def folder_rows(clf: Classifier, seg: Segmenter, folder: Path) -> np.ndarray:
    """(slices, 5): the three scores, ``any`` truth, the bleed's area in mm²."""
    labels = read_rsna_labels(folder / "stage_2_train.csv")
    spacings = pixel_spacings(folder)
    rows = []
    for series in pipeline.scan_inputs(str(folder / "stage_2_train"), on_error="raise").series:
        scores = slice_scores(clf, seg, pipeline.PreparedSeries(series))
        spacing = spacings[series.series_uid]
        for k, s in enumerate(series.slices):
            stem = slice_id(s.path)
            area = slice_areas_mm2(slice_mask(folder, s.path), spacing)[0]
            rows.append([*scores[k], labels[stem][0], area])
    return np.array(rows)


def features(scores: np.ndarray) -> np.ndarray:
    return np.c_[logit(scores[:, 0]), logit(scores[:, 1]), np.log1p(scores[:, 2])]


def auc_cells(score: np.ndarray, truth: np.ndarray, area: np.ndarray) -> list[str]:
    return [f"{roc_auc(truth, score):.3f}",
            *(f"{auc:.3f}" for _, auc in auc_by_bin(truth, score, area, BINS_MM2))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fit", type=Path, nargs="+", required=True,
                   help="phantom folders neither model trained on")
    p.add_argument("--score", type=Path, nargs="+", required=True, help="phantom folders")
    p.add_argument("--real", type=Path, default=None, help="a bleed-free real series")
    p.add_argument("--classifier", type=Path, default=None, help="ONNX (default: bundled)")
    p.add_argument("--segmenter", type=Path, default=None, help="ONNX (default: bundled)")
    p.add_argument("--l2", type=float, default=10.0)
    args = p.parse_args(argv)
    clf = Classifier(args.classifier, device="cpu")
    seg = Segmenter(args.segmenter, device="cpu")
    fit = np.concatenate([folder_rows(clf, seg, f) for f in args.fit])
    w = fit_logistic(features(fit), fit[:, 3], l2=args.l2)
    test = np.concatenate([folder_rows(clf, seg, f) for f in args.score])
    truth, area = test[:, 3], test[:, 4]
    print(f"{clf.spec.path.name} and {seg.spec.path.name} (mask threshold {seg.threshold:g}); "
          f"fitted on {len(fit)} slices of {', '.join(f.name for f in args.fit)}; "
          f"weights (classifier logit, peak logit, log(1 + pixels), bias) "
          + ", ".join(f"{v:.3f}" for v in w))
    print(f"scored on {len(test)} slices ({int(truth.sum())} with a bleed) of "
          + ", ".join(f.name for f in args.score))
    names = bin_names(BINS_MM2)
    print("| `any` score | all | " + " | ".join(names) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in names) + " |")
    for name, score in (("classifier", test[:, 0]), ("segmenter peak", test[:, 1]),
                        ("segmenter pixels", test[:, 2]), ("fused", predict(features(test), w))):
        print(f"| {name} | " + " | ".join(auc_cells(score, truth, area)) + " |")
    if args.real is not None:
        negatives = fit[:, 3] == 0
        t_clf = clf.thresholds["any"]
        kept = float((fit[negatives, 0] < t_clf).mean())
        t_fused = float(np.quantile(predict(features(fit[negatives]), w), kept))
        for series in pipeline.scan_inputs(str(args.real), on_error="raise").series:
            scores = slice_scores(clf, seg, pipeline.PreparedSeries(series))
            fused = predict(features(scores), w)
            print(f"{args.real.name}: {len(scores)} slices; classifier at {t_clf:.3f} flags "
                  f"{int((scores[:, 0] >= t_clf).sum())}; fused at {t_fused:.3f} (the same "
                  f"{1 - kept:.1%} of the fit folders' bleed-free slices) flags "
                  f"{int((fused >= t_fused).sum())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
