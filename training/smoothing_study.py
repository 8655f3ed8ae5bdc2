"""Does smoothing slice probabilities along the series help? Measured, per label and per series.

    python -m training.smoothing_study --model-dir DIR [--data PHANTOMS] [--generate 24]
        [--windows 0 5 10 15] [--modes max mean] [--out study.json]

Runs the classifier ONNX of ``--model-dir`` (``--model`` picks a file) on labelled data in the
RSNA layout (``stage_2_train/*.dcm`` + ``stage_2_train.csv``, e.g. ``training/synth.py`` output;
``--generate N`` writes N fresh phantoms to a temporary folder instead), then compares, for each
smoothing window (mm) and mode: per-label slice ROC AUC with DeLong 95 % intervals, and the
series-level AUC (series probability = highest slice). Window 0 is no smoothing. Only prints
from ``main``.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from pathlib import Path

import numpy as np

from ichinfer.calibrate import delong_ci
from ichinfer.classification import Classifier
from ichinfer.labels import LABELS
from ichinfer.smoothing import smooth_along_series


def read_labels(csv_path: Path) -> dict[tuple[str, str], int]:
    out = {}
    with open(csv_path, newline="") as fh:
        for row in csv.DictReader(fh):
            image, label = row["ID"].rsplit("_", 1)
            out[(image, label)] = int(float(row["Label"]))
    return out


def collect(classifier: Classifier, folder: Path, labels: dict) -> list[dict]:
    """Per series: probabilities (slices, 6), locations, truth (slices, 6)."""
    series = []
    for res in classifier.iter_series(folder, on_error="collect"):
        stems = [Path(s.path).name.split(".")[0] for s in res.slices]
        if not all((st, "any") in labels for st in stems):
            continue
        series.append(
            {
                "probs": np.array([[s.probabilities[k] for k in LABELS] for s in res.slices]),
                "loc": np.array([s.location_mm for s in res.slices]),
                "truth": np.array([[labels[(st, k)] for k in LABELS] for st in stems]),
            }
        )
    return series


def evaluate(series: list[dict], window_mm: float, mode: str) -> dict:
    probs, truth, s_prob, s_truth = [], [], [], []
    for s in series:
        p = smooth_along_series(s["probs"], locations_mm=s["loc"], window_mm=window_mm, mode=mode)
        probs.append(p)
        truth.append(s["truth"])
        s_prob.append(p.max(axis=0))
        s_truth.append(s["truth"].max(axis=0))
    P, T = np.concatenate(probs), np.concatenate(truth)
    SP, ST = np.array(s_prob), np.array(s_truth)
    out = {"window_mm": window_mm, "mode": mode, "slice_auc": {}, "series_auc": {}}
    for k, label in enumerate(LABELS):
        auc, lo, hi = delong_ci(T[:, k], P[:, k])
        out["slice_auc"][label] = [round(v, 4) if np.isfinite(v) else None for v in (auc, lo, hi)]
        auc, lo, hi = delong_ci(ST[:, k], SP[:, k])
        out["series_auc"][label] = [round(v, 4) if np.isfinite(v) else None for v in (auc, lo, hi)]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", type=Path, required=True)
    ap.add_argument("--model", default=None, help="classifier file in the folder")
    ap.add_argument("--data", type=Path, help="phantom/RSNA folder with stage_2_train.csv")
    ap.add_argument("--generate", type=int, default=24, help="phantoms to write if no --data")
    ap.add_argument("--seed", type=int, default=4242)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--windows", type=float, nargs="+", default=[0.0, 5.0, 10.0, 15.0])
    ap.add_argument("--modes", nargs="+", default=["max", "mean"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            from training.synth import generate

            data = Path(tmp)
            generate(data, args.generate, args.seed, size=args.size)
        clf = Classifier(args.model, model_dir=args.model_dir, device="cpu", threads=args.threads)
        series = collect(clf, data / "stage_2_train", read_labels(data / "stage_2_train.csv"))
    rows = [evaluate(series, 0.0, "max")]
    rows += [evaluate(series, w, m) for w in args.windows if w > 0 for m in args.modes]
    report = {
        "model": clf.spec.describe(),
        "n_series": len(series),
        "n_slices": int(sum(len(s["loc"]) for s in series)),
        "results": rows,
    }
    base = rows[0]
    print(f"{report['n_series']} series, {report['n_slices']} slices; AUC [95% DeLong CI]")
    for r in rows:
        cells = []
        for label in LABELS:
            a, b = r["slice_auc"][label], base["slice_auc"][label]
            delta = "" if a[0] is None or b[0] is None else f" ({a[0] - b[0]:+.3f})"
            cells.append(f"{label[:6]} {a[0]}{delta}")
        s_any = r["series_auc"]["any"]
        print(
            f"window {r['window_mm']:>4} {r['mode']:>4}: slice "
            + ", ".join(cells)
            + f" | series any {s_any[0]} [{s_any[1]}, {s_any[2]}]"
        )
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
