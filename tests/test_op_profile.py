"""benchmarks/op_profile.py runs on a model and prints its tables (a smoke test: onnxruntime's
profile format is not a stable interface)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "op_profile.py"


def _op_profile():
    spec = importlib.util.spec_from_file_location("op_profile", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _conv_net() -> onnx.ModelProto:
    """HU in (N, 16, 16, 2), a transpose, a 3x3 convolution and a ReLU."""
    w = numpy_helper.from_array(np.ones((4, 2, 3, 3), np.float32) / 18, "w")
    nodes = [helper.make_node("Transpose", ["hu"], ["nchw"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["nchw", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("hu", TensorProto.FLOAT, ["n", 16, 16, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_profile_and_tables(tmp_path, capsys) -> None:
    path = tmp_path / "seg.onnx"
    onnx.save(_conv_net(), path)
    op_profile = _op_profile()
    by_type, nodes = op_profile.profile(path, runs=4)
    assert any("Conv" in op for op in by_type) and all(t > 0 for t in by_type.values())
    assert [n[0] for n in nodes] == sorted((n[0] for n in nodes), reverse=True)
    assert {n[1] for n in nodes} == set(by_type)
    assert op_profile.main([str(path), "--runs", "2", "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "`seg.onnx`" in out and "| operator | ms | share |" in out
