"""Evaluate exported ONNX models through the ichinfer runtime itself (the product's own path).

    python training/evaluate.py --data data/phantoms-test --out models/evaluation.json
    python training/evaluate.py --data data/phantoms-test --real ../shared/data   # + real checks
    python training/evaluate.py --data data/test-a data/test-b   # several folders, one set

On a labelled folder in the RSNA layout (phantoms from ``training.synth`` with a seed never used
for training, or real RSNA data), every classifier in the model folder is scored per slice
(per-label ROC AUC, RSNA weighted log loss, sensitivity/specificity at the model's default
thresholds) and per series (the verdict: its highest slice against the series thresholds, and
against the slice thresholds for comparison), and the segmenter by Dice against ``masks/`` on
each slice's own grid, next to plain 50–90 HU masking inside the skull; series volumes are
compared with ``studies.csv`` when present. ``--real`` adds the checks on real scans: the share
of CQ500 slices flagged ``any`` and the series' verdict, the known-negative RSNA samples, and
what each segmenter marks on CQ500 (slices and mL, all false). ``--only segment`` scores the
segmenters alone, and ``--mask-threshold`` / ``--between`` / ``--mirror`` / ``--gate`` override
their runtime settings (to see what a setting does, never to change the bundled figures).
``--mask-thresholds A B ...`` scores the segmenters at each threshold from one run of the model,
each against ``--mask-threshold`` (the model's own by default) with paired intervals: thresholds
are chosen on the masks the runtime makes, on each slice's own grid (``threshold-y.md``).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import ichinfer  # noqa: E402
from ichinfer import models as model_store  # noqa: E402
from ichinfer.labels import LABELS  # noqa: E402
from ichinfer.metrics import (  # noqa: E402
    SERIES_INTERVAL,
    roc_auc,
    sensitivity_specificity,
    series_bootstrap,
    series_interval,
    weighted_auc,
    weighted_log_loss,
)
from ichinfer.pipeline import PreparedSeries, scan_inputs  # noqa: E402
from ichinfer.preprocess import dense_prior  # noqa: E402
from training.data import read_rsna_labels, slice_mask  # noqa: E402

KNOWN_NEGATIVE_RSNA = ("ID_63eb1e259", "ID_0000aee4b", "ID_0000f1657")


def _interval(statistic, groups, *about) -> list | None:
    """:func:`ichinfer.metrics.series_interval` as JSON: ``[low, high]``, or None where too few
    series carry what it is about."""
    low, high = series_interval(statistic, groups, *about)
    return None if np.isnan(low) else [low, high]


def _folders(data: Path | Sequence[Path]) -> list[Path]:
    return [data] if isinstance(data, Path) else list(data)


def _labels(data: Path | Sequence[Path]) -> dict:
    """The labels of every folder (RSNA layout), merged: slice IDs are unique across them."""
    labels: dict = {}
    for folder in _folders(data):
        labels.update(read_rsna_labels(folder / "stage_2_train.csv"))
    return labels


def evaluate_classifier(path: Path, data: Path | Sequence[Path]) -> dict:
    """``data``: one test folder in the RSNA layout, or several scored as one set."""
    labels = _labels(data)
    clf = ichinfer.Classifier(path, device="cpu")
    t0 = time.time()
    result = clf.classify([f / "stage_2_train" for f in _folders(data)], on_error="collect")
    seconds = time.time() - t0
    ys, ps, groups = [], [], []
    for series in result.series:
        for s in series.slices:
            y = labels.get(Path(s.path).name.removesuffix(".dcm"))
            if y is not None and not np.isnan(y).any():
                ys.append(y)
                ps.append([s.probabilities[k] for k in LABELS])
                groups.append(series.series_uid)
    y, p, g = np.asarray(ys), np.asarray(ps), np.asarray(groups)
    positive_series = {
        k: len(set(g[y[:, i] == 1])) if len(y) else 0 for i, k in enumerate(LABELS)
    }
    out = {
        "model": path.name,
        "slices": len(y),
        "positive_slices": {k: int(y[:, i].sum()) for i, k in enumerate(LABELS)},
        "positive_series": positive_series,
        "auc": {k: roc_auc(y[:, i], p[:, i]) for i, k in enumerate(LABELS)},
        "auc_ci95": {
            k: _interval(weighted_auc(y[:, i], p[:, i]), g, y[:, i] == 1, y[:, i] == 0)
            for i, k in enumerate(LABELS)
        },
        "interval": SERIES_INTERVAL,
        "weighted_log_loss": weighted_log_loss(y, p),
        "seconds": round(seconds, 1),
    }
    at = {}
    for i, k in enumerate(LABELS):
        sens, spec = sensitivity_specificity(y[:, i], p[:, i] >= clf.thresholds[k])
        at[k] = {"threshold": clf.thresholds[k], "sensitivity": sens, "specificity": spec}
    out["at_default_thresholds"] = at
    out["series"] = series_figures(result, labels, clf)
    return out


def series_highest(series_results, labels: dict) -> tuple[np.ndarray, np.ndarray, int]:
    """Per series labelled on every slice: its highest slice probability per label and its
    truth (a label is present if any slice has it); and the number of series left out for
    want of labels."""
    highest, truth, unlabelled = [], [], 0
    for series in series_results:
        ys = [labels.get(Path(s.path).name.removesuffix(".dcm")) for s in series.slices]
        if any(y is None or np.isnan(y).any() for y in ys):
            unlabelled += 1
            continue
        truth.append(np.max(ys, axis=0))
        highest.append([series.probabilities[k] for k in LABELS])
    return np.asarray(highest), np.asarray(truth), unlabelled


def series_figures(result, labels: dict, clf) -> dict:
    """Per label, series-level sensitivity and specificity of the verdict (highest slice against
    the series thresholds) and of the highest slice against the slice thresholds."""
    p, y, _ = series_highest(result.series, labels)
    out: dict = {"series": len(y), "bleed_free_series": int((y[:, 0] == 0).sum()) if len(y) else 0}
    for i, k in enumerate(LABELS):
        row = {"positive_series": int(y[:, i].sum()) if len(y) else 0}
        for name, t in (
            ("verdict", clf.series_thresholds[k]),
            ("at_slice_threshold", clf.thresholds[k]),
        ):
            sens, spec = sensitivity_specificity(y[:, i], p[:, i] >= t) if len(y) else (None, None)
            row[name] = {"threshold": t, "sensitivity": sens, "specificity": spec}
        out[k] = row
    return out


def _dice_parts(truth: np.ndarray, pred: np.ndarray) -> tuple[int, int]:
    return int(np.logical_and(truth, pred).sum()), int(truth.sum() + pred.sum())


def evaluate_segmenter(path: Path, data: Path | Sequence[Path], gate_with=None,
                       **settings) -> dict:
    """``settings``: ``ichinfer.Segmenter``'s ``threshold``, ``between`` and ``mirror``;
    ``gate_with``: a classifier gating the masks (``ichinfer segment --gate``). Each slice's
    truth is ``masks/<its file's stem>.png`` beside its ``stage_2_train`` folder."""
    seg = ichinfer.Segmenter(path, device="cpu", **settings)
    t0 = time.time()
    segmented = seg.segment([f / "stage_2_train" for f in _folders(data)], on_error="collect",
                            gate_with=gate_with).series
    seconds = time.time() - t0
    inter = total = p_inter = p_total = 0
    per, per_prior = [], []
    parts, groups = [], []  # per slice, for the intervals: (overlap, sizes) twice, has a bleed
    volumes = []
    truth_volumes = _truth_volumes_of(data)
    for series in segmented:
        for sl in series.slices:
            own = Path(sl.path)
            truth = slice_mask(own.parent.parent, own) > 0
            prior = dense_prior(series.source.load_hu(sl.index)) > 0
            a, b = _dice_parts(truth, sl.mask > 0)
            c, d = _dice_parts(truth, prior)
            inter, total, p_inter, p_total = inter + a, total + b, p_inter + c, p_total + d
            parts.append((a, b, c, d, int(truth.any())))
            groups.append(series.series_uid)
            if truth.any():
                per.append(2 * a / b)
                per_prior.append(2 * c / d)
        true_ml = truth_volumes.get(series.series_uid)
        if true_ml is not None and true_ml > 0.5:
            volumes.append((true_ml, series.volume_ml))
    rel = [abs(v - t) / t for t, v in volumes if v is not None]
    c = np.asarray(parts, dtype=np.float64).reshape(-1, 5)
    bleeding_series = len({gr for gr, row in zip(groups, parts, strict=True) if row[4]})

    def pooled(first: int):
        return _pooled_dice(c[:, first], c[:, first + 1], c[:, 4])

    return {
        "model": path.name,
        "slices": sum(len(series.slices) for series in segmented),
        "bleeding_series": bleeding_series,
        "dice_pooled": 2 * inter / max(total, 1),
        "dice_pooled_ci95": _interval(pooled(0), groups, c[:, 4] == 1),
        "plain_masking_dice_pooled_ci95": _interval(pooled(2), groups, c[:, 4] == 1),
        "interval": SERIES_INTERVAL,
        "dice_mean_bleeding_slices": float(np.mean(per)) if per else None,
        "plain_masking_dice_pooled": 2 * p_inter / max(p_total, 1),
        "plain_masking_dice_mean_bleeding_slices": float(np.mean(per_prior)) if per_prior else None,
        "bleeding_slices": len(per),
        "volume_series": len(volumes),
        "volume_median_relative_error": float(np.median(rel)) if rel else None,
        "seconds": round(seconds, 1),
        "threshold": seg.threshold,
        "between": seg.between,
        "mirror": seg.mirror,
        **({"gate": f"any, {gate_with.spec.path.name} at {gate_with.thresholds['any']:.3f}"}
           if gate_with is not None else {}),
    }


def _pooled_dice(overlap: np.ndarray, sizes: np.ndarray, bleeding: np.ndarray):
    """Pooled Dice of per-slice (overlap, sizes) with each slice weighted ``w[slice]``, as a
    statistic for :func:`ichinfer.metrics.series_bootstrap`; NaN for a draw without a bleed."""
    return lambda w: (2 * w @ overlap / (w @ sizes)) if w @ bleeding else np.nan


def _mean_dice(overlap: np.ndarray, sizes: np.ndarray, bleeding: np.ndarray):
    """Mean Dice over the bleeding slices, weighted ``w[slice]``; NaN for a draw without one."""
    dice = np.divide(2 * overlap, sizes, out=np.zeros_like(overlap), where=sizes > 0) * bleeding
    return lambda w: (w @ dice / (w @ bleeding)) if w @ bleeding else np.nan


def _paired(statistic, other, groups: np.ndarray) -> list | None:
    """``statistic - other`` with the interval from draws of whole series, both figures
    computed on the same draw (paired)."""
    low, high, used = series_bootstrap(lambda w: statistic(w) - other(w), groups)
    return [low, high] if used else None


def evaluate_segmenter_thresholds(path: Path, data: Path | Sequence[Path],
                                  thresholds: Sequence[float], **settings) -> dict:
    """The segmenter at each of ``thresholds`` through the runtime, one run of the model per
    series (:meth:`ichinfer.Segmenter.segment_series_at`): per threshold, the figures of
    :func:`evaluate_segmenter` (pooled Dice and its interval, mean Dice over bleeding slices,
    median volume error), what it marks on the bleed-free series (slices, mL), and its pooled
    Dice and mean Dice over bleeding slices minus the reference threshold's (the segmenter's
    own, or ``settings["threshold"]``), with the interval of paired draws of whole series."""
    seg = ichinfer.Segmenter(path, device="cpu", **settings)
    reference = seg.threshold
    ts = sorted({float(t) for t in thresholds} | {reference})
    t0 = time.time()
    scan = scan_inputs([f / "stage_2_train" for f in _folders(data)], on_error="raise")
    truth_volumes = _truth_volumes_of(data)
    parts: dict[float, list] = {t: [] for t in ts}  # per slice: (overlap, sizes)
    free = {t: [0, 0.0] for t in ts}  # on bleed-free series: slices marked, mL
    volumes: dict[float, list] = {t: [] for t in ts}
    bleeding, groups = [], []
    free_series = free_slices = 0
    for series in scan.series:
        at = seg.segment_series_at(PreparedSeries(series), ts)
        truths = [slice_mask(Path(sl.path).parent.parent, Path(sl.path)) > 0
                  for sl in at[0].slices]
        bleeds = [bool(truth.any()) for truth in truths]
        bleed_free = not any(bleeds)
        bleeding += bleeds
        groups += [series.series_uid] * len(truths)
        free_series += bleed_free
        free_slices += len(truths) if bleed_free else 0
        true_ml = truth_volumes.get(series.series_uid)
        for t, result in zip(ts, at, strict=True):
            parts[t] += [_dice_parts(truth, sl.mask > 0)
                         for truth, sl in zip(truths, result.slices, strict=True)]
            if bleed_free:
                free[t][0] += sum(bool(sl.mask.any()) for sl in result.slices)
                free[t][1] += result.volume_ml or 0.0
            if true_ml is not None and true_ml > 0.5 and result.volume_ml is not None:
                volumes[t].append(abs(result.volume_ml - true_ml) / true_ml)
    seconds = time.time() - t0
    g = np.asarray(groups)
    b = np.asarray(bleeding, dtype=np.float64)
    cols = {t: np.asarray(parts[t], dtype=np.float64).reshape(-1, 2) for t in ts}
    pooled = {t: _pooled_dice(cols[t][:, 0], cols[t][:, 1], b) for t in ts}
    mean = {t: _mean_dice(cols[t][:, 0], cols[t][:, 1], b) for t in ts}
    everything = np.ones(len(g))
    rows = []
    for t in ts:
        rows.append({
            "threshold": t,
            "dice_pooled": float(pooled[t](everything)),
            "dice_pooled_ci95": _interval(pooled[t], g, b == 1),
            "dice_mean_bleeding_slices": float(mean[t](everything)),
            "volume_median_relative_error": float(np.median(volumes[t])) if volumes[t] else None,
            "bleed_free_slices_marked": free[t][0],
            "bleed_free_volume_ml": round(free[t][1], 2),
            **({} if t == reference else {
                "dice_pooled_minus_reference": float(pooled[t](everything)
                                                     - pooled[reference](everything)),
                "dice_pooled_minus_reference_ci95": _paired(pooled[t], pooled[reference], g),
                "dice_mean_minus_reference": float(mean[t](everything)
                                                   - mean[reference](everything)),
                "dice_mean_minus_reference_ci95": _paired(mean[t], mean[reference], g),
            }),
        })
    return {
        "model": path.name,
        "reference_threshold": reference,
        "between": seg.between,
        "mirror": seg.mirror,
        "slices": len(g),
        "series": len(set(groups)),
        "bleeding_series": len(set(g[b == 1])),
        "bleeding_slices": int(b.sum()),
        "bleed_free_series": free_series,
        "bleed_free_slices": free_slices,
        "volume_series": len(volumes[reference]),
        "interval": SERIES_INTERVAL + "; differences: both figures on the same draws",
        "seconds": round(seconds, 1),
        "thresholds": rows,
    }


def _truth_volumes_of(data: Path | Sequence[Path]) -> dict[str, float]:
    """:func:`_truth_volumes` of every folder, merged (series UIDs are unique across them)."""
    return {k: v for f in _folders(data) for k, v in _truth_volumes(f).items()}


def _truth_volumes(data: Path) -> dict[str, float]:
    path = data / "studies.csv"
    if not path.exists():
        return {}
    out = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            uid = row.get("series_uid") or row.get("SeriesInstanceUID")
            vol = row.get("true_volume_ml") or row.get("volume_ml")
            if uid and vol not in (None, ""):
                out[uid] = float(vol)
    return out


def real_checks(path: Path, shared: Path) -> dict:
    clf = ichinfer.Classifier(path, device="cpu")
    out: dict = {"model": path.name}
    cq = shared / "cq500-ct0"
    if cq.is_dir():
        t0 = time.time()
        r = clf.classify(cq)
        flagged = sum(s.probabilities["any"] >= clf.thresholds["any"] for s in r.slices)
        by_label = {
            k: int(sum(s.probabilities[k] >= clf.thresholds[k] for s in r.slices)) for k in LABELS
        }
        out["cq500_ct0_flagged_by_label"] = by_label
        out["cq500_ct0"] = {
            "slices": len(r.slices),
            "flagged_any": int(flagged),
            "flagged_fraction": flagged / max(len(r.slices), 1),
            "series_any_probability": r.probabilities["any"],
            "series_verdict": {k: bool(v) for k, v in r.series[0].verdict.items()},
            "series_thresholds": dict(clf.series_thresholds),
            "seconds": round(time.time() - t0, 2),
        }
    rsna = shared / "rsna-samples"
    if rsna.is_dir():
        everything = clf.classify(rsna, on_error="collect")  # one pass over all samples
        flagged = {
            Path(s.path).stem: s.probabilities["any"] >= clf.thresholds["any"]
            for s in everything.slices
        }
        negatives = [s for s in everything.slices if Path(s.path).stem in KNOWN_NEGATIVE_RSNA]
        out["rsna_known_negatives"] = {
            Path(s.path).stem: round(s.probabilities["any"], 4) for s in negatives
        }
        out["rsna_known_negatives_flagged"] = int(
            sum(flagged[Path(s.path).stem] for s in negatives)
        )
        out["rsna_samples_flagged_any"] = int(sum(flagged.values()))
        out["rsna_samples"] = len(everything.slices)
    return out


def real_segmenter_checks(path: Path, shared: Path, gate_with=None, **settings) -> dict | None:
    """On the real normal CQ500 series: what the segmenter marks (all of it is false)."""
    cq = shared / "cq500-ct0"
    if not cq.is_dir():
        return None
    seg = ichinfer.Segmenter(path, device="cpu", **settings)
    t0 = time.time()
    segmented = seg.segment(cq, gate_with=gate_with).series
    slices = [sl for series in segmented for sl in series.slices]
    return {
        "model": path.name,
        "cq500_ct0": {
            "slices": len(slices),
            "slices_marked": int(sum(bool(sl.mask.any()) for sl in slices)),
            "volume_ml": round(float(sum(series.volume_ml for series in segmented)), 2),
            "seconds": round(time.time() - t0, 2),
        },
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, nargs="+", required=True,
                   help="test folders (RSNA layout), scored as one set")
    p.add_argument("--model-dir", type=Path, default=None)
    p.add_argument("--real", type=Path, default=None, help="../shared/data for the real checks")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--only", choices=("classify", "segment"), default=None, help="one task")
    p.add_argument("--mask-threshold", type=float, default=None, help="segmenters' threshold")
    p.add_argument("--mask-thresholds", type=float, nargs="+", default=None,
                   help="segmenters scored at each of these thresholds from one run, each "
                        "against --mask-threshold (default: the model's own) with paired "
                        "intervals")
    p.add_argument("--between", choices=("interpolate", "nearest"), default=None)
    p.add_argument("--mirror", action="store_true",
                   help="segmenters also run on each slab mirrored left to right, averaged")
    p.add_argument("--gate", action="store_true",
                   help="segmenters' masks only on slices the folder's default classifier "
                        "calls 'any' (ichinfer segment --gate)")
    args = p.parse_args(argv)
    if args.mask_thresholds and (args.gate or args.real):
        p.error("--mask-thresholds scores the phantoms' masks only: not with --gate or --real")
    settings = {
        k: v
        for k, v in (("threshold", args.mask_threshold), ("between", args.between),
                     ("mirror", args.mirror or None))
        if v is not None
    }
    folder = model_store.model_dir(args.model_dir)
    manifest = model_store.read_manifest(folder)
    gate = ichinfer.Classifier(model_dir=folder, device="cpu") if args.gate else None
    names = ", ".join(f.name for f in args.data)
    report: dict = {"data": names, "classifiers": [], "segmenters": [], "real": []}
    for name, entry in sorted(manifest["models"].items()):
        path = folder / name
        if args.only and entry.get("task") != args.only:
            continue
        if entry.get("task") == "classify":
            report["classifiers"].append(evaluate_classifier(path, args.data))
            if args.real:
                report["real"].append(real_checks(path, args.real))
        elif entry.get("task") == "segment":
            if args.mask_thresholds:
                report["segmenters"].append(evaluate_segmenter_thresholds(
                    path, args.data, args.mask_thresholds, **settings))
                continue
            report["segmenters"].append(evaluate_segmenter(path, args.data, gate, **settings))
            real = (real_segmenter_checks(path, args.real, gate, **settings) if args.real
                    else None)
            if real:
                report.setdefault("real_segmenters", []).append(real)
        print(json.dumps(report, indent=1)[-600:], flush=True)
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
