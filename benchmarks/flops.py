"""Count the floating-point work of an ONNX model per slice (batch 1).

    python benchmarks/flops.py models/*.onnx

Walks the graph after ONNX shape inference with the batch dimension fixed to 1 and counts the
multiply-accumulates of Conv, MatMul and Gemm (and their quantized forms), times 2 for FLOPs.
Element-wise ops, pooling, resizing and normalisation are left out: they are a small share of the
work of these networks and no matrix-multiply unit runs them, so the count is what the
matmul-rate comparison needs. Needs the ``onnx`` package (the ``[train]`` extra), not the runtime.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

#: op type -> (index of the data input, index of the weight input)
_CONV = {"Conv": (0, 1), "ConvInteger": (0, 1), "QLinearConv": (0, 3)}
_MATMUL = {"MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3), "Gemm": (0, 1)}


def _shapes(model) -> dict[str, list[int | None]]:
    def dims(t) -> list[int | None]:
        return [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]

    graph = model.graph
    out: dict[str, list[int | None]] = {}
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        if vi.type.HasField("tensor_type"):
            out[vi.name] = dims(vi.type.tensor_type)
    for init in graph.initializer:
        out[init.name] = list(init.dims)
    return out


def _fix_batch(model, batch: int) -> None:
    for inp in model.graph.input:
        shape = inp.type.tensor_type.shape
        if shape.dim and not shape.dim[0].HasField("dim_value"):
            shape.dim[0].dim_value = batch
    for out in model.graph.output:
        shape = out.type.tensor_type.shape
        if shape.dim and not shape.dim[0].HasField("dim_value"):
            shape.dim[0].dim_value = batch


def _prod(values) -> int:
    return int(np.prod([int(v) for v in values], dtype=np.int64))


def count_macs(path: str | Path) -> dict[str, int]:
    """Multiply-accumulates per op type for one input slice (batch 1)."""
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(path))
    _fix_batch(model, 1)
    model = shape_inference.infer_shapes(model, data_prop=True)
    shapes = _shapes(model)
    macs: dict[str, int] = {}
    for node in model.graph.node:
        op = node.op_type
        if op in _CONV:
            _, w_at = _CONV[op]
            w = shapes.get(node.input[w_at])
            y = shapes.get(node.output[0])
            if not w or not y or None in w or None in y:
                raise ValueError(f"{path}: no static shape for {op} {node.name!r}")
            # W: (C_out, C_in / group, kH, kW); Y: (N, C_out, H_out, W_out)
            n = _prod(y) * _prod(w[1:])
        elif op in _MATMUL:
            a_at, b_at = _MATMUL[op]
            a = shapes.get(node.input[a_at])
            y = shapes.get(node.output[0])
            if not a or not y or None in a or None in y:
                raise ValueError(f"{path}: no static shape for {op} {node.name!r}")
            trans_a = any(att.name == "transA" and att.i for att in node.attribute)
            k = a[-2] if op == "Gemm" and trans_a else a[-1]
            n = _prod(y) * int(k)
        else:
            continue
        macs[op] = macs.get(op, 0) + n
    return macs


def flops_per_slice(path: str | Path) -> int:
    """2 × the multiply-accumulates of :func:`count_macs`."""
    return 2 * sum(count_macs(path).values())


def main(argv: list[str]) -> int:
    for name in argv:
        macs = count_macs(name)
        detail = ", ".join(f"{op} {m / 1e6:.1f}M MAC" for op, m in sorted(macs.items()))
        print(f"{Path(name).name}: {2 * sum(macs.values()) / 1e9:.3f} GFLOP per slice ({detail})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
