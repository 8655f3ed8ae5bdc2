"""Batch scoring throughput: the single-process path vs ``ichinfer batch`` on Ray, 1 and 2 workers.

    .venv/bin/python benchmarks/scaling.py --model-dir models --series 12 --out scaling.json

Writes a phantom archive (training/synth.py, 128², 5 mm) once under --work, then times on the
same archive: ``Classifier.classify`` in this process, and ``ichinfer.batch.run_batch`` with a
local Ray instance (started once, outside the timings) for each --workers value. Prints and
writes JSON: seconds, series/s and slices/s per run. Needs the [ray] extra.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_archive(root: Path, n: int) -> Path:
    from training.synth import make_study, write_study

    folder = root / "stage_2_train"
    if folder.is_dir() and (root / f".done-{n}").exists():
        return folder
    shutil.rmtree(root, ignore_errors=True)
    for k in range(n):
        write_study(make_study(100 + k, size=128, positive=k % 2 == 0, thin=False), root,
                    study_index=k)
    shutil.rmtree(root / "masks")
    (root / f".done-{n}").touch()
    return folder


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", type=Path, default=None, help="default: bundled models")
    p.add_argument("--series", type=int, default=12)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--work", type=Path, default=Path("/tmp/ichinfer-scaling"))
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)

    import ray

    from ichinfer import batch
    from ichinfer.classification import Classifier

    archive = make_archive(args.work / "archive", args.series)
    runs = []
    clf = Classifier(model_dir=args.model_dir, threads=1)
    clf.classify(archive, on_error="collect")  # warm: session, page cache
    t0 = time.perf_counter()
    ref = clf.classify(archive, on_error="collect")
    dt = time.perf_counter() - t0
    n_slices = len(ref.slices)
    runs.append({"path": "single process (Classifier.classify, 1 intra-op thread)",
                 "workers": 1, "seconds": dt})
    clf4 = Classifier(model_dir=args.model_dir)
    t0 = time.perf_counter()
    clf4.classify(archive, on_error="collect")
    runs.append({"path": "single process (Classifier.classify, onnxruntime default threads)",
                 "workers": 1, "seconds": time.perf_counter() - t0})

    ray.init(num_cpus=max(max(args.workers), os.cpu_count() or 1), include_dashboard=False,
             log_to_driver=False)
    try:
        for w in args.workers:
            out = args.work / f"out-{w}"
            shutil.rmtree(out, ignore_errors=True)
            t0 = time.perf_counter()
            s = batch.run_batch(archive, out=out, model_dir=args.model_dir, workers=w)
            dt = time.perf_counter() - t0
            assert s.written == len(ref.series), s.failures
            runs.append({"path": "ichinfer batch (Ray Data, local, incl. scan + Parquet)",
                         "workers": w, "seconds": dt})
    finally:
        ray.shutdown()
    for r in runs:
        r["series_per_s"] = len(ref.series) / r["seconds"]
        r["slices_per_s"] = n_slices / r["seconds"]
        r["ms_per_slice"] = 1000 * r["seconds"] / n_slices
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "ray": ray.__version__},
        "models": str(args.model_dir or "bundled"),
        "archive": {"series": len(ref.series), "slices": n_slices, "size": 128},
        "runs": runs,
    }
    for r in runs:
        print(f"{r['path']:<70} workers={r['workers']}  {r['seconds']:7.2f} s  "
              f"{r['slices_per_s']:7.1f} slices/s  {r['ms_per_slice']:6.2f} ms/slice")
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
