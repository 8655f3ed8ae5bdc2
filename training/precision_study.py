"""Which reduced-precision variant of a model keeps its accuracy, and is it faster here?

    python training/precision_study.py --model models/densenet25d.onnx --data data/phantoms-val

For one exported float32 model, builds in a temporary folder: the int8 variant exactly as
``export/to_onnx.py`` makes it (static QDQ, per-channel, windows in float32), an int8 variant
with only its convolutions and matrix products quantized (every other node float32), and an
fp16 variant (weights and arithmetic in half precision, the HU input and windows in float32).
Each is scored on the validation folder against float32 by the exporter's own rule (every
label's AUC within 0.01; pooled Dice, at the model's mask threshold, within 0.02), and timed
beside float32 at batch 1 and 32 on this machine (median of alternating rounds, one session
each, default threads). Prints a Markdown table; decides nothing. On a CPU, onnxruntime runs a
half-precision node it has no kernel for in float32 between casts, so an fp16 row measured here
says little about a GPU, where its arithmetic would be half precision.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from export.to_onnx import (  # noqa: E402
    TOLERANCE,
    calibration_slices,
    predict,
    quantize,
    score,
    validation_batches,
    window_nodes,
    worst_change,
)
from training.compare_models import model_info  # noqa: E402


def to_fp16(src: Path, dst: Path) -> None:
    """Half-precision copy of ``src``; input, output and the in-graph windows stay float32 (HU
    above 2 048 would get 2 HU steps, the brain window's contrast is a few HU)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True,
                                     node_block_list=window_nodes(src))
    onnx.save(model, str(dst))


def seconds_per_run(path: Path, x: np.ndarray, rounds: int) -> float:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: x}
    sess.run(None, feed)
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True, help="a float32 model of export/to_onnx.py")
    p.add_argument("--data", type=Path, required=True, help="validation folder (RSNA layout)")
    p.add_argument("--calibration", type=int, default=256, help="int8 calibration slices")
    p.add_argument("--rounds", type=int, default=3, help="alternating timing rounds")
    args = p.parse_args(argv)
    info = model_info(args.model)
    task, mask_t = info["task"], info["mask_threshold"]
    x, y = validation_batches(info, args.data, None)
    base = predict(args.model, x)
    ref = score(base, task, y, mask_t)
    tol = TOLERANCE[task]
    with tempfile.TemporaryDirectory() as tmp:
        variants = {"float32": args.model}
        variants["int8 (export's recipe)"] = Path(tmp) / "int8.onnx"
        calib = calibration_slices(x, args.calibration)
        quantize(args.model, variants["int8 (export's recipe)"], calib)
        variants["int8 (convolutions only)"] = Path(tmp) / "int8conv.onnx"
        quantize(args.model, variants["int8 (convolutions only)"], calib,
                 op_types=["Conv", "ConvTranspose", "MatMul", "Gemm"])
        variants["fp16"] = Path(tmp) / "fp16.onnx"
        to_fp16(args.model, variants["fp16"])
        timing: dict[str, dict[int, list[float]]] = {k: {1: [], 32: []} for k in variants}
        for _ in range(args.rounds):  # alternating, so drifts of a busy machine hit all alike
            for name, path in variants.items():
                for b in (1, 32):
                    timing[name][b].append(seconds_per_run(path, x[:b], 20 if b == 1 else 5))
        heads = list(ref["auc"]) if task == "classify" else ["pooled Dice"]
        print(f"`{args.model.name}` on `{args.data.name}` ({len(x)} slices); rule: each figure "
              f"within {tol} of float32")
        print()
        print(f"| variant | {' | '.join(heads)} | worst change | kept by the rule | "
              "batch 1 (ms) | batch 32 (ms) | batch 32 vs float32 |")
        print("|" + " --- |" * (len(heads) + 6))
        t32 = np.median(timing["float32"][32])
        for name, path in variants.items():
            got = score(base if name == "float32" else predict(path, x), task, y, mask_t)
            worst = worst_change(ref, got)
            values = got["auc"].values() if task == "classify" else [got["dice_pooled"]]
            cells = " | ".join(f"{v:.4f}" for v in values)
            b1, b32 = (1000 * np.median(timing[name][b]) for b in (1, 32))
            print(f"| {name} | {cells} | {worst:+.4f} | {'yes' if worst >= -tol else 'no'} | "
                  f"{b1:.1f} | {b32:.1f} | {t32 / np.median(timing[name][32]):.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
