"""False positives on bleed-free phantoms: a proxy for what models do on real normal scans.

    python -m training.synth --out data/hardneg-a --studies 6 --seed 93 --positive-fraction 0 \
        --thin-fraction 1 --thin-extent whole
    python training/hard_negatives.py --data data/hardneg-a data/hardneg-b \
        --classifiers runs/ft5/models/densenet25d.onnx models/densenet25d.onnx \
        --segmenters runs/ft5/models/densenet_unet.onnx models/densenet_unet.onnx

Every slice of the folders must be bleed-free (checked against their ``stage_2_train.csv``).
Per classifier: slices at or above its own ``any`` slice threshold, and series whose verdict
says ``any``; per segmenter: slices with any mask and the volume marked, at its own mask
threshold or at each of ``--mask-thresholds``. All of it is false.
With ``--paired``, each later classifier's flagged slices minus the first's follow, with a
95 % interval from ``ichinfer.metrics.RESAMPLES`` paired draws of whole series (a few series
hold most flags).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import ichinfer  # noqa: E402
from ichinfer.metrics import RESAMPLES_TEXT, series_bootstrap  # noqa: E402
from ichinfer.pipeline import PreparedSeries, scan_inputs  # noqa: E402
from training.data import read_rsna_labels  # noqa: E402


def check_bleed_free(folders: list[Path]) -> None:
    for folder in folders:
        labels = read_rsna_labels(folder / "stage_2_train.csv")
        bleeding = [k for k, y in labels.items() if y[0] == 1]
        if bleeding:
            raise SystemExit(f"{folder}: {len(bleeding)} slices have a bleed, e.g. {bleeding[0]}")


def classifier_flags(path: Path, folders: list[Path]) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Per slice, whether ``any`` reaches the model's slice threshold, and the slice's series;
    the series called ``any`` and the series count."""
    clf = ichinfer.Classifier(path)
    series = [s for f in folders for s in clf.classify(f / "stage_2_train").series]
    flags = np.array(
        [x.probabilities["any"] >= clf.thresholds["any"] for s in series for x in s.slices]
    )
    groups = np.array([f"{s.study_uid}/{s.series_uid}" for s in series for _ in s.slices])
    return flags, groups, sum(s.verdict["any"] for s in series), len(series)


def classifier_row(path: Path, flags: np.ndarray, called: int, n_series: int) -> str:
    n = len(flags)
    return (
        f"| `{path}` | {int(flags.sum())} / {n} ({flags.sum() / n:.2%}) "
        f"| {called} / {n_series} |"
    )


def paired_row(path: Path, first: np.ndarray, flags: np.ndarray, groups: np.ndarray) -> str:
    """Flagged slices of ``flags`` minus ``first`` (same slices), with the interval."""
    d = flags.astype(np.float64) - first
    low, high, _ = series_bootstrap(lambda w: float((w * d).sum()), groups)
    return f"| `{path}` | {int(d.sum()):+d} [{low:+.0f}, {high:+.0f}] |"


def segmenter_rows(path: Path, folders: list[Path],
                   thresholds: list[float] | None = None) -> list[str]:
    """Slices with a mask and the volume marked, at each of ``thresholds`` (None: the model's
    own), from one run of the model (:meth:`ichinfer.Segmenter.segment_series_at`)."""
    seg = ichinfer.Segmenter(path)
    at = thresholds or [seg.threshold]
    marked, ml = [0] * len(at), [0.0] * len(at)
    scan = scan_inputs([f / "stage_2_train" for f in folders], on_error="raise")
    for series in scan.series:
        for k, result in enumerate(seg.segment_series_at(PreparedSeries(series), at)):
            marked[k] += sum(bool(x.mask.any()) for x in result.slices)
            ml[k] += result.volume_ml or 0.0
    n_slices, n_series = sum(len(s.slices) for s in scan.series), len(scan.series)
    return [
        f"| {f'`{path}`' if thresholds is None else f'`{path}` at {t:.2f}'} | {marked[k]} / "
        f"{n_slices} | {ml[k]:.1f} mL ({ml[k] / n_series:.1f} a series) |"
        for k, t in enumerate(at)
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, nargs="+", required=True, help="bleed-free folders")
    p.add_argument("--classifiers", type=Path, nargs="*", default=[])
    p.add_argument("--segmenters", type=Path, nargs="*", default=[])
    p.add_argument("--paired", action="store_true",
                   help="each later classifier's flagged slices minus the first's, with a "
                        "paired 95 %% interval over series")
    p.add_argument("--mask-thresholds", type=float, nargs="+", default=None,
                   help="segmenters: a row at each of these mask thresholds instead of their own")
    args = p.parse_args(argv)
    check_bleed_free(args.data)
    if args.classifiers:
        print("| classifier | slices flagged `any` | series called `any` |")
        print("| --- | --- | --- |")
        scored = []
        for path in args.classifiers:
            flags, groups, called, n_series = classifier_flags(path, args.data)
            scored.append((path, flags, groups))
            print(classifier_row(path, flags, called, n_series))
        print()
        if args.paired and len(scored) > 1:
            first_path, first, groups = scored[0]
            print(f"| classifier | slices flagged minus `{first_path}`'s, 95 % interval from "
                  f"{RESAMPLES_TEXT} paired draws of the {len(set(groups))} series |")
            print("| --- | --- |")
            for path, flags, groups_b in scored[1:]:
                if not np.array_equal(groups_b, groups):  # other series, or other slice counts
                    print(f"| `{path}` | not paired: its slices differ from the first's |")
                    continue
                print(paired_row(path, first, flags, groups))
            print()
    if args.segmenters:
        print("| segmenter | slices with a mask | volume marked |")
        print("| --- | --- | --- |")
        for path in args.segmenters:
            print("\n".join(segmenter_rows(path, args.data, args.mask_thresholds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
