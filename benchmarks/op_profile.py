"""Where a model's time goes, node by node: onnxruntime's own profiler on this machine.

    .venv/bin/python benchmarks/op_profile.py models/seed_cnn.onnx models/seed_cnn.int8.onnx

One slice at a time on one thread, as each of ichinfer's CPU lanes runs it (the session made
with ``ichinfer.runtime.session_options``, as ``ichinfer.runtime.Session`` makes a lane's), on a
fixed random HU input (the kernels' time does not depend on the values). ``--runs`` timed
runs after three untimed ones; prints per model the mean time per slice by operator type (after
onnxruntime's graph rewrites, so e.g. ``ReorderInput`` and ``QLinearConv`` appear) and the
``--top`` slowest nodes with their input and output shapes. Decides nothing; prints Markdown.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ichinfer.runtime import session_options

WARM_RUNS = 3


def _shapes(entries: list[dict] | None) -> str:
    if not entries:
        return ""
    shapes = (next(iter(e.values())) for e in entries)
    return ", ".join("×".join(map(str, shape)) for shape in shapes if shape)  # scalars left out


def profile(path: Path, runs: int) -> tuple[dict[str, float], list[tuple[float, str, str, str]]]:
    """Mean seconds per slice by operator type, and per node (time, type, inputs, outputs)."""
    opts = session_options(1, ["CPUExecutionProvider"])  # a lane's session, as the runtime's
    with tempfile.TemporaryDirectory() as tmp:
        opts.enable_profiling = True
        opts.profile_file_prefix = os.path.join(tmp, "profile")
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        x = np.random.default_rng(0).uniform(-50, 150, (1, *inp.shape[1:])).astype(np.float32)
        for _ in range(WARM_RUNS + runs):
            sess.run(None, {inp.name: x})
        events = _events(sess.end_profiling())
    # every run records the same nodes, in order: drop the untimed runs' share
    per_run, rest = divmod(len(events), WARM_RUNS + runs)
    if rest:
        raise SystemExit(f"{path}: {len(events)} node events for {WARM_RUNS + runs} runs")
    events = events[WARM_RUNS * per_run :]
    by_type: dict[str, float] = collections.defaultdict(float)
    by_node: dict[str, list] = {}
    for e in events:
        dur = e["dur"] * 1e-6 / runs
        op = e["args"]["op_name"]
        by_type[op] += dur
        node = by_node.setdefault(e["name"], [0.0, op, _shapes(e["args"].get("input_type_shape")),
                                              _shapes(e["args"].get("output_type_shape"))])
        node[0] += dur
    return dict(by_type), sorted((tuple(v) for v in by_node.values()), reverse=True)


def _events(path: str) -> list[dict]:
    with open(path) as fh:
        events = json.load(fh)
    os.remove(path)
    return [e for e in events
            if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", type=Path, nargs="+")
    p.add_argument("--runs", type=int, default=20, help="timed runs per model")
    p.add_argument("--top", type=int, default=8, help="slowest nodes listed per model")
    args = p.parse_args(argv)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"{now}, {platform.node()} ({platform.processor() or platform.machine()}), onnxruntime "
          f"{ort.__version__}, one thread, batch 1, mean of {args.runs} runs "
          f"(`benchmarks/op_profile.py {' '.join(map(str, args.models))}`)")
    for path in args.models:
        by_type, nodes = profile(path, args.runs)
        total = sum(by_type.values())
        print(f"\n`{path.name}`: {total * 1e3:.2f} ms per slice in its nodes\n")
        print("| operator | ms | share |\n| --- | --- | --- |")
        for op, t in sorted(by_type.items(), key=lambda kv: -kv[1]):
            print(f"| {op} | {t * 1e3:.2f} | {t / total:.0%} |")
        print("\n| node (slowest) | ms | inputs | outputs |\n| --- | --- | --- | --- |")
        for t, op, ins, outs in nodes[: args.top]:
            print(f"| {op} | {t * 1e3:.2f} | {ins} | {outs} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
