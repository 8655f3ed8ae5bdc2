"""Would channel counts in multiples of 16 make the segmenter faster? A measurement.

onnxruntime's CPU convolutions work on blocks of 16 channels (AVX-512, "NCHWc"). The bundled
segmenter's dense blocks add 8 channels a layer, so half its tensors are not multiples of 16 and
onnxruntime reorders them around each convolution (ReorderInput/ReorderOutput in a profile).
This pads every convolution's output to a multiple of ``--block`` with zero filters and gives
the next convolutions zero weights for the padded channels: the same function (checked), with
aligned channels and more multiply-adds. Both graphs are timed in this process, alternating,
at one batch size, float32 and (``--int8``) quantized the same way as ``export/to_onnx.py``
with random HU calibration (timing only; the calibration does not change the kernels).

    .venv/bin/python benchmarks/channel_padding.py --model models/densenet_unet.onnx --int8
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def pad_channels(model, block: int = 16, skip_prefix: str = "ichinfer_windows/"):
    """Zero-pad each Conv's output channels (but a 1-channel head) to a multiple of ``block``,
    tracking through Relu, pooling, Resize and channel Concat which channels are real."""
    from onnx import numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    real: dict[str, list[int | None]] = {}  # tensor -> original channel of each channel
    for node in graph.node:
        if node.op_type == "Conv" and not node.name.startswith(skip_prefix):
            w = numpy_helper.to_array(inits[node.input[1]])
            out_c, in_c = w.shape[:2]
            src = real.get(node.input[0], list(range(in_c)))
            wi = np.zeros((out_c, len(src), *w.shape[2:]), w.dtype)
            for p, c in enumerate(src):
                if c is not None:
                    wi[:, p] = w[:, c]
            padded = out_c if out_c < 2 else -(-out_c // block) * block
            wo = np.zeros((padded, *wi.shape[1:]), w.dtype)
            wo[:out_c] = wi
            inits[node.input[1]].CopyFrom(numpy_helper.from_array(wo, node.input[1]))
            if len(node.input) > 2:
                b = numpy_helper.to_array(inits[node.input[2]])
                bo = np.zeros(padded, b.dtype)
                bo[:out_c] = b
                inits[node.input[2]].CopyFrom(numpy_helper.from_array(bo, node.input[2]))
            real[node.output[0]] = list(range(out_c)) + [None] * (padded - out_c)
        elif node.op_type in ("Relu", "AveragePool", "MaxPool", "Resize") and node.input[0] in real:
            real[node.output[0]] = real[node.input[0]]
        elif node.op_type == "Concat" and any(i in real for i in node.input):
            out, offset = [], 0
            for name in node.input:
                src = real[name]
                out += [None if c is None else c + offset for c in src]
                offset += sum(c is not None for c in src)
            real[node.output[0]] = out
    del graph.value_info[:]
    return model


def timed(path: Path, x: np.ndarray, rounds: int) -> list[float]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    sess.run(None, {name: x})
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        sess.run(None, {name: x})
        out.append(time.perf_counter() - t0)
    return out


def main(argv: list[str] | None = None) -> int:
    import onnx
    import onnxruntime as ort

    from export.to_onnx import quantize

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "densenet_unet.onnx")
    ap.add_argument("--block", type=int, default=16)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--int8", action="store_true", help="also quantize both and time them")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    sess = ort.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
    shape = [args.batch, *sess.get_inputs()[0].shape[1:]]
    x = rng.uniform(-100, 120, shape).astype(np.float32)
    if shape[-1] == 4:  # the segmenter's prior channel is 0/1
        x[..., 3] = x[..., 3] > 60
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        variants = {"as exported": args.model, f"padded to {args.block}": tmp / "padded.onnx"}
        onnx.save(
            pad_channels(onnx.load(str(args.model)), args.block),
            variants[f"padded to {args.block}"],
        )
        ref = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        padded_sess = ort.InferenceSession(
            str(tmp / "padded.onnx"), providers=["CPUExecutionProvider"]
        )
        diff = float(np.abs(padded_sess.run(None, {sess.get_inputs()[0].name: x})[0] - ref).max())
        if diff > 1e-4:
            raise SystemExit(f"padding changed the outputs (max |difference| {diff:.1e})")
        if args.int8:
            calib = rng.uniform(-50, 90, [16, *shape[1:]]).astype(np.float32)
            if shape[-1] == 4:
                calib[..., 3] = calib[..., 3] > 60
            for name in list(variants):
                q = tmp / f"{len(variants)}.int8.onnx"
                quantize(variants[name], q, calib)
                variants[f"{name}, int8"] = q
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(2):  # alternate, so drift in the machine's speed hits all alike
            for name, path in variants.items():
                times[name] += timed(path, x, args.rounds)
    print(
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"onnxruntime {ort.__version__}, {args.model.name}, batch {args.batch}; "
        f"padded graph's max |difference| {diff:.1e}\n"
    )
    print("| graph | median | min |\n| --- | --- | --- |")
    for name, t in times.items():
        print(f"| {name} | {np.median(t) * 1e3:.1f} ms | {min(t) * 1e3:.1f} ms |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
