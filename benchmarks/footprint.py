"""Footprint of ichinfer next to the TensorFlow route, written as JSON for ``render.py``.

    python benchmarks/footprint.py --model-dir models --keras-dir runs --out footprint.json

Measures, each in fresh subprocesses (median of ``--repeat``):
* ``import ichinfer`` time, and whether TensorFlow/Keras ended up in ``sys.modules``;
  ``import tensorflow`` / ``import keras`` time beside it;
* peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) of a classify + segment
  run on the CQ500 series (``../shared/data/cq500-ct0``), and of the same run with two decode
  processes (``ICHINFER_DECODE_PROCESSES=2``): PSS summed over every process, from /proc;
* the same for the command a user runs, ``ichinfer segment --subtypes`` on CQ500 (the bleed
  measurements, masks, overlays and summary written): PSS of its process tree (it decodes
  beside a worker process by default), with ``--decode-processes 1``, and with ``--dicom-out``
  (a DICOM SEG and a Secondary Capture overlay series, built by highdicom);
* installed size of the runtime distributions (ichinfer's requirements, recursively, from
  ``importlib.metadata`` file lists) next to tensorflow-cpu + keras and their requirements;
* a cold CLI call: process start to the first result, ``ichinfer classify`` against a small
  script that imports Keras, loads the checkpoint, reads the slices with ichinfer and predicts.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CQ500 = REPO.parent / "shared" / "data" / "cq500-ct0"
PHANTOM = REPO / "examples" / "phantom-ct"


def _run(code: str, *, env: dict | None = None) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
                         check=True)
    return out.stdout.strip().splitlines()[-1]


def import_time(module: str, repeat: int) -> dict:
    code = (f"import time, sys; t = time.perf_counter(); import {module}; "
            "d = time.perf_counter() - t; "
            "print(d, 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    runs = [_run(code).split() for _ in range(repeat)]
    return {"median_s": statistics.median(float(r[0]) for r in runs),
            "runs_s": [float(r[0]) for r in runs],
            "tensorflow_imported": runs[0][1] == "True", "keras_imported": runs[0][2] == "True"}


_PEAK = """
import resource, sys
import ichinfer
from ichinfer.classification import Classifier
from ichinfer.segmentation import Segmenter
clf = Classifier(model_dir={model_dir!r}, device="cpu")
seg = Segmenter(model_dir={model_dir!r}, device="cpu")
r1 = clf.classify({path!r})
r2 = seg.segment({path!r})
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, len(r1.slices), len(r2.slices))
"""


def peak_rss(model_dir: Path, path: Path, env: dict | None = None) -> dict:
    rss, n1, n2 = _run(_PEAK.format(model_dir=str(model_dir), path=str(path)), env=env).split()
    return {"peak_rss_bytes": int(rss), "slices": int(n1), "series": str(path.name),
            **(env or {})}


# the same run with decode worker processes: the proportional set size (PSS: shared pages split
# between the processes sharing them) of this process and of every process under it (fork
# server, workers), summed, sampled every 20 ms from /proc (Linux)
_TREE_SAMPLER = """
import os, threading, time
def tree_pss(root):
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                pass
    tree, grew = {root}, True
    while grew:
        more = {p for p, pp in parent.items() if pp in tree} - tree
        tree |= more
        grew = bool(more)
    total = 0
    for p in tree:  # proportional set size: pages shared between the processes counted once
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                total += next(int(l.split()[1]) for l in f if l.startswith("Pss:")) * 1024
        except (OSError, StopIteration):
            pass
    return total
peak, done = [0], threading.Event()
"""

# ... and sampling this process's own tree from a thread while the code after it runs
_SELF_SAMPLER = """
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], tree_pss(os.getpid()))
        time.sleep(0.02)
threading.Thread(target=sample, daemon=True).start()
"""


def peak_tree_pss(model_dir: Path, path: Path, processes: int) -> dict:
    run = _PEAK.format(model_dir=str(model_dir), path=str(path))
    code = _TREE_SAMPLER + _SELF_SAMPLER + run.replace("print(", "done.set()\nprint(peak[0], ")
    from ichinfer.pipeline import DECODE_PROCESSES_ENV

    tree, rss, n1, _ = _run(code, env={DECODE_PROCESSES_ENV: str(processes)}).split()
    return {"peak_tree_pss_bytes": int(tree), "peak_rss_bytes": int(rss), "slices": int(n1),
            "decode_processes": processes, "series": str(path.name)}


_CLI_PEAK = """
import resource, subprocess, sys, time
t = time.perf_counter()
proc = subprocess.Popen([sys.executable, "-m", "ichinfer", "segment", {path!r}, "--out", {out!r},
                         "--model-dir", {model_dir!r}, "--subtypes", "--quiet", *{extra!r}],
                        stdout=subprocess.DEVNULL)
while proc.poll() is None:
    peak[0] = max(peak[0], tree_pss(proc.pid))
    time.sleep(0.02)
wall = time.perf_counter() - t
if proc.returncode:
    raise SystemExit(proc.returncode)
print(peak[0], resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, wall)
"""


def peak_rss_cli(model_dir: Path, path: Path, *, dicom_out: bool = False,
                 decode_processes: int | None = None) -> dict:
    """Peak memory of ``ichinfer segment --subtypes`` on ``path``: what a user runs, with the
    bleed measurements, masks, overlays and summary written (to a temporary folder); with
    ``dicom_out``, the DICOM SEG and Secondary Capture overlay series too. The command decodes
    beside a worker process by default, so the figure is the PSS of its whole process tree
    (sampled, as above); the largest single process's ``ru_maxrss`` and the wall time beside
    it. ``decode_processes`` passes ``--decode-processes``."""
    with tempfile.TemporaryDirectory() as tmp:
        extra = ["--dicom-out", str(Path(tmp) / "dicom")] if dicom_out else []
        if decode_processes is not None:
            extra += ["--decode-processes", str(decode_processes)]
        code = _TREE_SAMPLER + _CLI_PEAK.format(
            path=str(path), out=str(Path(tmp) / "out"), model_dir=str(model_dir), extra=extra)
        tree, rss, wall = _run(code).split()
    return {"peak_tree_pss_bytes": int(tree), "peak_rss_bytes": int(rss),
            "wall_s": float(wall), "series": str(path.name),
            "decode_processes": "command default" if decode_processes is None
            else decode_processes,
            "command": "ichinfer segment SERIES --out OUT --subtypes"
                       + (" --dicom-out DIR" if dicom_out else "")
                       + (f" --decode-processes {decode_processes}"
                          if decode_processes is not None else "")}


def _dist_name(req: str) -> str | None:
    if "extra ==" in req:
        return None
    return re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0]


def closure(roots: list[str]) -> dict[str, int]:
    """Installed bytes of ``roots`` and every distribution they require, recursively."""
    seen: dict[str, int] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        total = 0
        for f in dist.files or []:
            try:
                total += Path(dist.locate_file(f)).stat().st_size
            except OSError:
                pass
        seen[key] = total
        todo.extend(n for n in (_dist_name(r) for r in dist.requires or []) if n)
    return seen


def runtime_requirements() -> list[str]:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [n for n in (_dist_name(r) for r in project["dependencies"]) if n]


def installed_sizes() -> dict:
    runtime = closure(runtime_requirements())
    tf = closure(["tensorflow-cpu", "keras"])
    ours = (REPO / "ichinfer")
    own = sum(p.stat().st_size for p in ours.rglob("*.py"))
    gdcm = {k: v for k, v in closure(["python-gdcm"]).items() if k not in runtime}
    nifti = {k: v for k, v in closure(["nibabel"]).items() if k not in runtime}
    codecs = {k: v for k, v in closure(["imagecodecs"]).items() if k not in runtime}
    return {"runtime_bytes": sum(runtime.values()) + own, "runtime_distributions": runtime,
            "runtime_versions": {k: metadata.version(k) for k in runtime},
            "gdcm_extra_bytes": sum(gdcm.values()) if gdcm else None,
            "nifti_extra_bytes": sum(nifti.values()) if nifti else None,
            "imagecodecs_extra_bytes": sum(codecs.values()) if codecs else None,
            "tensorflow_bytes": sum(tf.values()), "tensorflow_distributions": tf,
            "method": "importlib.metadata file sizes of each distribution and its requirements "
                      "(recursively) in this environment; ichinfer's own sources added"}


_KERAS_CLI = """
import sys, time
t0 = float(sys.argv[1])
import numpy as np, keras
import training.models  # registers HUWindows
from ichinfer import dicom
from ichinfer.pipeline import PreparedSeries, run_batched
from ichinfer.preprocess import model_inputs, sample_indices
model = keras.saving.load_model(sys.argv[2], compile=False)
series = dicom.read_series(sys.argv[3])
prepared = PreparedSeries(series)
size = model.inputs[0].shape[1]
loc = prepared.locations_mm
idx = sample_indices(loc, float(sys.argv[4]))[:1]
x = model_inputs(prepared.grid(size), loc, idx, slab_mm=float(sys.argv[4]), context=1)
y = model.predict(x, verbose=0)
print(time.time() - t0, y.shape)
"""


def cold_cli(model_dir: Path, keras_dir: Path, series: Path, repeat: int) -> dict:
    """Wall time from process start to the first result for one slice (``series``: one file);
    the CLI prints its table when the result is there."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "ICHINFER_MODEL_DIR": str(model_dir)}
    exe = [sys.executable, "-m", "ichinfer", "classify", str(series), "--device", "cpu"]
    ours = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(exe, cwd=REPO, env=env, capture_output=True, check=True)
        ours.append(time.perf_counter() - t)
    out: dict = {"ichinfer_classify_s": statistics.median(ours), "ichinfer_runs_s": ours,
                 "series": series.name, "command": " ".join(exe[1:])}
    manifest = json.loads((model_dir / "manifest.json").read_text())
    default = manifest["defaults"]["classify"]
    ckpt = keras_dir / (default.split(".")[0] + ".keras")
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        out["keras_skipped"] = "TensorFlow is not installed"
        return out
    if not ckpt.exists():
        out["keras_skipped"] = f"no checkpoint {ckpt}"
        return out
    sidecar = ckpt.with_suffix(".json")
    slab = json.loads(sidecar.read_text()).get("slab_mm", 5.0) if sidecar.exists() else 5.0
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(_KERAS_CLI)
    theirs = []
    try:
        for _ in range(repeat):
            t = time.perf_counter()
            subprocess.run([sys.executable, fh.name, str(time.time()), str(ckpt), str(series),
                            str(slab)], cwd=REPO, env=env, capture_output=True, check=True)
            theirs.append(time.perf_counter() - t)
    finally:
        os.unlink(fh.name)
    out.update(keras_first_result_s=statistics.median(theirs), keras_runs_s=theirs,
               keras_checkpoint=str(ckpt))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model-dir", type=Path,
                    default=Path(os.environ.get("ICHINFER_MODEL_DIR") or REPO / "models"))
    ap.add_argument("--keras-dir", type=Path,
                    default=Path(os.environ.get("ICHINFER_KERAS_DIR") or REPO / "runs"))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("footprint.json"))
    args = ap.parse_args(argv)
    from ichinfer.dicom import JPEG_LOSSLESS_DECODER_ENV, gdcm_installed, imagecodecs_installed

    # the base install's decoder (pylibjpeg) unless told otherwise; GDCM and imagecodecs (the
    # [gdcm] and [imagecodecs] extras) measured apart below when they are installed
    os.environ.setdefault(JPEG_LOSSLESS_DECODER_ENV, "pylibjpeg")
    result: dict = {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "python": sys.version.split()[0],
                    "model_dir": str(args.model_dir)}
    result["import_ichinfer"] = import_time("ichinfer", args.repeat)
    for heavy in ("tensorflow", "keras"):
        try:
            result[f"import_{heavy}"] = import_time(heavy, max(1, args.repeat // 2))
        except subprocess.CalledProcessError:
            result[f"import_{heavy}"] = {"skipped": f"{heavy} is not installed"}
    result["installed"] = installed_sizes()
    if CQ500.is_dir():
        result["peak_memory"] = peak_rss(args.model_dir, CQ500)
        result["peak_memory_cli"] = peak_rss_cli(args.model_dir, CQ500)
        result["peak_memory_cli_one_process"] = peak_rss_cli(args.model_dir, CQ500,
                                                             decode_processes=1)
        if importlib.util.find_spec("highdicom"):  # the [seg] extra
            result["peak_memory_cli_dicom"] = peak_rss_cli(args.model_dir, CQ500, dicom_out=True)
        result["peak_memory_decode_processes"] = peak_tree_pss(args.model_dir, CQ500, 2)
        if gdcm_installed():
            result["peak_memory_gdcm"] = peak_rss(args.model_dir, CQ500,
                                                  {JPEG_LOSSLESS_DECODER_ENV: "gdcm"})
        if imagecodecs_installed():
            result["peak_memory_imagecodecs"] = peak_rss(
                args.model_dir, CQ500, {JPEG_LOSSLESS_DECODER_ENV: "imagecodecs"})
    else:
        result["peak_memory"] = {"skipped": f"{CQ500} is absent"}
    # one slice, so the figure is start-up + first result, not the decode of a whole series
    one = sorted((CQ500 if CQ500.is_dir() else PHANTOM).iterdir())[0]
    result["cold_cli"] = cold_cli(args.model_dir, args.keras_dir, one, max(1, args.repeat // 2))
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
