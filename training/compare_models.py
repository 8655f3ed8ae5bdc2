"""Models side by side on validation phantoms, over the union of the folders.

    python training/compare_models.py --data data/phantoms-val data/phantoms-val2a \
        --models runs/ft3/models/densenet25d.onnx runs/ft4/models/densenet25d.onnx

Inputs are built the way training and export build them (``export.to_onnx.validation_batches``,
the model's own metadata for size, slabs and context). Prints a Markdown table per task:
classifiers get each label's AUC, their mean and their minimum; segmenters get pooled Dice, mean
Dice over bleeding slices, and the share of bleed-free slices where they mark anything (with the
mean area marked there, in pixels of the model grid), at the mask threshold in their metadata or,
with ``--mask-thresholds``, at each of those (one row per model and threshold). Used to choose
between candidate checkpoints on validation data only (never the test phantoms or the real
scans). Segmenters are scored here on the model's own grid, slab by slab, not on the masks the
runtime makes (each slab's map put back on its slice's grid, and interpolated between sampled
slabs on thin series), and the two rank thresholds differently (``trials/threshold-y.md``): a
segmenter's threshold is chosen with ``training/evaluate.py --mask-thresholds`` instead.

With ``--paired``, each later classifier's difference from the first follows, per label and in
the mean of the labels, with a 95 % interval from ``ichinfer.metrics.RESAMPLES`` draws of
whole patients with replacement, the same draws for both models (paired), so a rule's margin
can be read against how far the validation folders can resolve it. A label found in fewer than
three patients gets no interval (nor does the mean then): its AUC rests on too few bleeds to
resample; a last column gives the mean over the labels that do have one, with its interval.
Segmenters get the same: each later one's pooled Dice and mean Dice over bleeding slices minus
the first's, at each model's own mask threshold (or at each ``--mask-thresholds`` value, both
models at that one), with the paired interval over patients (needs bleeding slices in at least
three). With one segmenter, ``--paired`` and ``--mask-thresholds``, each threshold's Dice minus
the model's own threshold's, with the same interval: how far a threshold's choice is resolved.
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
from ichinfer.metrics import (  # noqa: E402
    MIN_SERIES_FOR_INTERVAL,
    RESAMPLES_TEXT,
    roc_auc,
    series_interval,
    weighted_auc,
)
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
    p.add_argument("--paired", action="store_true",
                   help="after each table, each later model's difference from the first "
                        "(classifiers: AUC; segmenters: Dice) with a paired 95 %% interval over "
                        "patients")
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
        if task == "segment":
            score_segmenters(paths, infos, heads, args)
            continue
        print(f"| model | slices | {' | '.join(heads)} |")
        print("|" + " --- |" * (len(heads) + 2))
        inputs: dict[tuple, tuple[np.ndarray, ...]] = {}  # candidates share their inputs
        scored = []  # (path, inputs key, probabilities) of each plain run, for --paired
        for path in paths:
            key = tuple(sorted(infos[path].items()))
            if key not in inputs:
                xs, ys, gs = zip(
                    *(validation_batches(infos[path], d, None, with_groups=True)
                      for d in args.data),
                    strict=True,
                )
                inputs[key] = np.concatenate(xs), np.concatenate(ys), np.concatenate(gs)
            x, y, _ = inputs[key]
            prob = predict(path, x)
            scored.append((path, key, prob))
            runs = [(f"`{path}`", prob)]
            if args.mirror:
                of_mirror = predict(path, np.ascontiguousarray(x[:, :, ::-1]))
                runs.append((f"`{path}` mirrored", average_with_mirrored(prob, of_mirror)))
            for label, p_run in runs:
                cells = classifier_cells(p_run, y, args.digits)
                print(f"| {label} | {len(y)} | {' | '.join(cells)} |")
        print()
        if args.paired and len(scored) > 1:
            print_paired(scored, inputs, args.digits)
    return 0


def score_segmenters(paths: list[Path], infos: dict, heads: list[str], args) -> None:
    """The segmenters' table (and ``--paired``'s), one folder at a time: a folder's inputs are
    built once for the models that read them alike, each model's maps become per-slice counts
    (:func:`slice_overlaps`), and the inputs go before the next folder's. On the 200 studies
    of ``phantoms-val10a/-10b`` the whole set's inputs and maps outgrew 24 GB."""
    sweep = args.mask_thresholds is not None
    at = [args.mask_thresholds if sweep else [infos[path]["mask_threshold"]] for path in paths]
    # --paired with one segmenter and a sweep: each threshold against the model's own, so its
    # counts are kept at its own threshold too (not a row of the table unless swept)
    own = infos[paths[0]]["mask_threshold"] if args.paired and sweep and len(paths) == 1 else None
    counted = list(at)  # the thresholds each model's counts are kept at
    if own is not None and own not in at[0]:
        counted[0] = [*at[0], own]
    reads = [tuple(sorted((k, v) for k, v in infos[path].items() if k != "mask_threshold"))
             for path in paths]  # what building the inputs depends on
    # (model's index, row label, mirrored): a model listed twice gets its rows twice
    runs = [(m, f"`{path}`", False) for m, path in enumerate(paths)]
    if args.mirror:
        runs = [r for m, path in enumerate(paths)
                for r in ((m, f"`{path}`", False), (m, f"`{path}` mirrored", True))]
    counts: dict[tuple[int, float], list[np.ndarray]] = {}  # (run, threshold): per folder
    groups: dict[tuple, list[np.ndarray]] = {}
    for folder in args.data:
        for key in dict.fromkeys(reads):
            x, y, g = validation_batches(dict(key), folder, None, with_groups=True)
            groups.setdefault(key, []).append(g)
            for m in (m for m, read in enumerate(reads) if read == key):
                prob = predict(paths[m], x)
                for r, (m_run, _, mirrored) in enumerate(runs):
                    if m_run != m:
                        continue
                    p_run = prob
                    if mirrored:
                        of_mirror = predict(paths[m], np.ascontiguousarray(x[:, :, ::-1]))
                        p_run = average_with_mirrored(prob, of_mirror)
                    for t in counted[m]:
                        counts.setdefault((r, t), []).append(slice_overlaps(p_run, y, t))
            del x, y
    first = ["model", "threshold"] if sweep else ["model"]
    print(f"| {' | '.join(first)} | slices | {' | '.join(heads)} |")
    print("|" + " --- |" * (len(heads) + len(first) + 1))
    for r, (m, label, _) in enumerate(runs):
        for t in at[m]:
            o = np.concatenate(counts[r, t])
            name = f"{label} | {t:.2f}" if sweep else label
            print(f"| {name} | {len(o)} | {' | '.join(segmenter_cells(o, args.digits))} |")
    print()
    if own is not None:
        print_paired_thresholds(paths[0], np.concatenate(groups[reads[0]]), own,
                                {t: np.concatenate(counts[0, t]) for t in counted[0]},
                                args.digits)
    if args.paired and len(paths) > 1:
        plain = {m: r for r, (m, _, mirrored) in enumerate(runs) if not mirrored}
        print_paired_dice(
            [(path, np.concatenate(groups[reads[m]]),
              {t: np.concatenate(counts[plain[m], t]) for t in at[m]})
             for m, path in enumerate(paths)],
            args.digits,
        )


def slice_overlaps(prob: np.ndarray, y: np.ndarray, threshold: float) -> np.ndarray:
    """Per slice: (true and marked pixels, true pixels, marked pixels) at ``threshold``, the
    counts pooled and per-slice Dice are made of."""
    masks, truth = prob[..., 0] >= threshold, y > 0
    return np.stack([np.logical_and(truth, masks).sum(axis=(1, 2)), truth.sum(axis=(1, 2)),
                     masks.sum(axis=(1, 2))], axis=1).astype(np.float64)


def pooled_dice(overlaps: np.ndarray, weights: np.ndarray | None = None,
                empty: float = float("nan")) -> float:
    """Pooled Dice of :func:`slice_overlaps`' counts, each slice counted ``weights`` times (a
    resampling draw; once each when None); ``empty`` when nothing is true or marked."""
    w = np.ones(len(overlaps)) if weights is None else weights
    denom = float(w @ (overlaps[:, 1] + overlaps[:, 2]))
    return 2.0 * float(w @ overlaps[:, 0]) / denom if denom > 0 else empty


def bleeding_slice_dice(overlaps: np.ndarray) -> np.ndarray:
    """Dice of each slice with a true bleed, from :func:`slice_overlaps`' counts."""
    o = overlaps[overlaps[:, 1] > 0]
    return 2.0 * o[:, 0] / (o[:, 1] + o[:, 2])


def dice_cells(
    first: np.ndarray, later: np.ndarray, groups: np.ndarray, digits: int = 3
) -> list[str]:
    """Pooled Dice and mean Dice over bleeding slices of ``later`` minus ``first`` (each
    :func:`slice_overlaps` of the same rows), with the interval of
    :func:`ichinfer.metrics.series_interval` over ``groups`` (needs bleeding slices in at least
    ``MIN_SERIES_FOR_INTERVAL`` groups)."""
    bleeding = first[:, 1] > 0
    da, db = bleeding_slice_dice(first), bleeding_slice_dice(later)

    def mean_bleeding(d: np.ndarray, w: np.ndarray) -> float:
        wb = w[bleeding]
        return float(wb @ d) / float(wb.sum()) if wb.sum() > 0 else float("nan")

    cells = []
    for statistic in (lambda w: pooled_dice(later, w) - pooled_dice(first, w),
                      lambda w: mean_bleeding(db, w) - mean_bleeding(da, w)):
        d = statistic(np.ones(len(first)))
        low, high = series_interval(statistic, groups, bleeding)
        if np.isnan(low):
            cells.append(f"{d:+.{digits}f} (fewer than {MIN_SERIES_FOR_INTERVAL} patients)")
        else:
            cells.append(f"{d:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]")
    return cells


def patients_text(groups: np.ndarray, truth: np.ndarray) -> str:
    """``"N patients, M with a bleeding slice"`` for the paired Dice tables' headings."""
    return f"{len(set(groups))} patients, {len(set(groups[truth > 0]))} with a bleeding slice"


def print_paired_dice(overlaps: list, digits: int = 3) -> None:
    """``--paired``'s table for segmenters: each later one minus the first, per threshold;
    ``overlaps`` holds per model ``(path, each slice's patient, {threshold: slice_overlaps})``."""
    first_path, groups, first_at = overlaps[0]
    truth = first_at[next(iter(first_at))][:, 1]
    print(f"Difference in Dice from `{first_path}` (later minus first), 95 % interval from "
          f"{RESAMPLES_TEXT} paired draws of whole patients; {patients_text(groups, truth)}")
    print()
    print("| model | threshold | Dice pooled | Dice mean (bleeding slices) |")
    print("| --- | --- | --- | --- |")
    for path, groups_b, at in overlaps[1:]:
        truth_b = at[next(iter(at))][:, 1]
        if not (np.array_equal(groups_b, groups) and np.array_equal(truth_b, truth)):
            print(f"| `{path}` | not paired: its inputs differ from the first model's | | |")
            continue
        for (t_first, o_first), (t, o) in zip(first_at.items(), at.items(), strict=True):
            shown = f"{t:.2f}" if t == t_first else f"{t_first:.2f} / {t:.2f}"
            print(f"| `{path}` | {shown} | {' | '.join(dice_cells(o_first, o, groups, digits))} |")
    print()


def print_paired_thresholds(path: Path, groups: np.ndarray, own: float, at: dict,
                            digits: int = 3) -> None:
    """``--paired``'s table for one segmenter and ``--mask-thresholds``: each threshold's Dice
    minus the model's own threshold's, with the paired interval over patients (the same slices
    and draws at every threshold); ``at`` holds :func:`slice_overlaps` per threshold."""
    truth = at[own][:, 1]
    print(f"Difference in Dice from `{path}` at its own mask threshold {own:.2f} (each threshold "
          f"minus {own:.2f}), 95 % interval from {RESAMPLES_TEXT} paired draws of whole "
          f"patients; {patients_text(groups, truth)}")
    print()
    print("| threshold | Dice pooled | Dice mean (bleeding slices) |")
    print("| --- | --- | --- |")
    for t, o in at.items():
        if t != own:
            print(f"| {t:.2f} | {' | '.join(dice_cells(at[own], o, groups, digits))} |")
    print()


def print_paired(scored: list, inputs: dict, digits: int = 3) -> None:
    """``--paired``'s table: each later classifier minus the first, with paired intervals."""
    first_path, first_key, first_prob = scored[0]
    _, y, groups = inputs[first_key]
    positives = [len(set(groups[y[:, k] == 1])) for k in range(len(LABELS))]
    print(f"Difference in AUC from `{first_path}` (later minus first), 95 % interval from "
          f"{RESAMPLES_TEXT} paired draws of whole patients; {len(set(groups))} patients")
    print()
    print(f"| model | {' | '.join(LABELS)} | mean | mean of the labels with an interval |")
    print("|" + " --- |" * (len(LABELS) + 3))
    print(f"| patients with the label | {' | '.join(map(str, positives))} | | |")
    for path, key, prob in scored[1:]:
        _, y_b, groups_b = inputs[key]
        if not (np.array_equal(y_b, y) and np.array_equal(groups_b, groups)):
            print(f"| `{path}` | not paired: its inputs differ from the first model's |"
                  + " |" * (len(LABELS) + 1))
            continue
        print(f"| `{path}` | {' | '.join(paired_cells(first_prob, prob, y, groups, digits))} |")
    print()


def paired_cells(
    prob_a: np.ndarray, prob_b: np.ndarray, y: np.ndarray, groups: np.ndarray, digits: int = 3
) -> list[str]:
    """Per label, for the labels' mean, and for the mean of the labels that get an interval:
    AUC of ``prob_b`` minus that of ``prob_a`` on the same rows, with the interval of
    :func:`ichinfer.metrics.series_interval` over ``groups`` where each label is found, and
    missing, in at least ``MIN_SERIES_FOR_INTERVAL`` groups."""
    n = len(LABELS)
    auc_a = [weighted_auc(y[:, k], prob_a[:, k]) for k in range(n)]
    auc_b = [weighted_auc(y[:, k], prob_b[:, k]) for k in range(n)]
    ones = np.ones(len(y))
    about = [[y[:, k] == 1, y[:, k] == 0] for k in range(n)]

    def mean_diff(labels):
        def statistic(w):
            return float(np.mean([auc_b[k](w) - auc_a[k](w) for k in labels]))

        return statistic

    def figure(statistic, *masks) -> tuple[float, float, float]:
        return (statistic(ones), *series_interval(statistic, groups, *masks))

    def text(d: float, low: float, high: float) -> str:
        if np.isnan(low):
            return f"{d:+.{digits}f} (fewer than {MIN_SERIES_FOR_INTERVAL} patients)"
        return f"{d:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"

    per_label = [figure(mean_diff([k]), *about[k]) for k in range(n)]
    cells = [text(*f) for f in per_label]
    cells.append(text(*figure(mean_diff(range(n)), *(m for pair in about for m in pair))))
    resolved = [k for k, (_, low, _) in enumerate(per_label) if not np.isnan(low)]
    if not resolved:
        return [*cells, "no label has an interval"]
    mean = figure(mean_diff(resolved), *(m for k in resolved for m in about[k]))
    return [*cells, f"{text(*mean)} ({', '.join(LABELS[k] for k in resolved)})"]


def classifier_cells(prob: np.ndarray, y: np.ndarray, digits: int = 3) -> list[str]:
    aucs = [roc_auc(y[:, k], prob[:, k]) for k in range(len(LABELS))]
    return [f"{a:.{digits}f}" for a in [*aucs, np.mean(aucs), np.min(aucs)]]


def segmenter_cells(overlaps: np.ndarray, digits: int = 3) -> list[str]:
    """Pooled Dice, mean Dice over bleeding slices, the share of bleed-free slices marked and
    the mean pixels marked there, from :func:`slice_overlaps`' counts."""
    free = overlaps[:, 1] == 0
    marked = overlaps[free, 2]
    return [
        f"{pooled_dice(overlaps, empty=1.0):.{digits}f}",
        f"{np.mean(bleeding_slice_dice(overlaps)):.{digits}f}",
        f"{np.mean(marked > 0):.1%}",
        f"{marked.mean():.1f}",
    ]


if __name__ == "__main__":
    raise SystemExit(main())
