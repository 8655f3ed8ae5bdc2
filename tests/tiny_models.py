"""Tiny ONNX models with the bundled models' contract, built with onnx.helper (no TensorFlow).

The classifier maps the mean windowed brain value of the centre slab to six probabilities; the
segmenter returns the dense-area prior channel as its mask. Both are deterministic, so tests can
predict their outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ichinfer.labels import LABELS
from ichinfer.models import MANIFEST, PREFIX, PREPROCESS_VERSION, sha256


def _meta(task: str, size: int, context: int, extra: dict) -> dict[str, str]:
    meta = {
        "task": task,
        "name": f"tiny_{task}",
        "version": "0.0-test",
        "preprocess": PREPROCESS_VERSION,
        "input_size": json.dumps([size, size]),
        "context": json.dumps(context),
        "slab_mm": json.dumps(5.0),
        "prior": json.dumps(task == "segment"),
        "windows": json.dumps([[40, 80]]),
        "thresholds": json.dumps({k: 0.5 for k in LABELS} if task == "classify" else {"mask": 0.5}),
        "training_data": "none: a test graph",
    }
    if task == "classify":
        meta["labels"] = json.dumps(list(LABELS))
        # a series-level operating point above the slice one, as export/to_onnx.py sets
        meta["series_thresholds"] = json.dumps({k: 0.6 for k in LABELS})
    meta.update(extra)
    return {PREFIX + k: str(v) for k, v in meta.items()}


def tiny_classifier(size: int = 32, context: int = 1, meta: dict | None = None) -> onnx.ModelProto:
    """probabilities[:, k] = sigmoid(w_k * (mean(clip((hu_centre - 0) / 80, 0, 1)) - 0.25))."""
    c = 2 * context + 1
    x = helper.make_tensor_value_info("hu", TensorProto.FLOAT, ["N", size, size, c])
    y = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", len(LABELS)])
    w = np.linspace(4.0, 24.0, len(LABELS)).astype(np.float32)[None, :]
    inits = [
        numpy_helper.from_array(np.array([context], np.int64), "start"),
        numpy_helper.from_array(np.array([context + 1], np.int64), "end"),
        numpy_helper.from_array(np.array([3], np.int64), "axis"),
        numpy_helper.from_array(np.array(80.0, np.float32), "width"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        numpy_helper.from_array(np.array(0.25, np.float32), "bias"),
        numpy_helper.from_array(w, "w"),
    ]
    nodes = [
        helper.make_node("Slice", ["hu", "start", "end", "axis"], ["centre"]),
        helper.make_node("Div", ["centre", "width"], ["scaled"]),
        helper.make_node("Clip", ["scaled", "zero", "one"], ["win"]),
        helper.make_node("ReduceMean", ["win"], ["m"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Unsqueeze", ["m", "start_axis"], ["m2"]),
        helper.make_node("Sub", ["m2", "bias"], ["d"]),
        helper.make_node("Mul", ["d", "w"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["probabilities"]),
    ]
    inits.append(numpy_helper.from_array(np.array([1], np.int64), "start_axis"))
    graph = helper.make_graph(nodes, "tiny_classifier", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for k, v in _meta("classify", size, context, meta or {}).items():
        p = model.metadata_props.add()
        p.key, p.value = k, v
    onnx.checker.check_model(model)
    return model


def tiny_segmenter(size: int = 32, context: int = 1, meta: dict | None = None) -> onnx.ModelProto:
    """mask = the prior channel (the last input channel)."""
    c = 2 * context + 2
    x = helper.make_tensor_value_info("hu_prior", TensorProto.FLOAT, ["N", size, size, c])
    y = helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["N", size, size, 1])
    inits = [
        numpy_helper.from_array(np.array([c - 1], np.int64), "start"),
        numpy_helper.from_array(np.array([c], np.int64), "end"),
        numpy_helper.from_array(np.array([3], np.int64), "axis"),
    ]
    nodes = [helper.make_node("Slice", ["hu_prior", "start", "end", "axis"], ["mask"])]
    graph = helper.make_graph(nodes, "tiny_segmenter", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for k, v in _meta("segment", size, context, meta or {}).items():
        p = model.metadata_props.add()
        p.key, p.value = k, v
    onnx.checker.check_model(model)
    return model


def write_model_dir(folder: Path, size: int = 32) -> Path:
    """A model folder like ``models/``: both tiny models and a manifest with their sha256."""
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(tiny_classifier(size), str(folder / "tiny_classifier.onnx"))
    onnx.save(tiny_segmenter(size), str(folder / "tiny_segmenter.onnx"))
    manifest = {
        "format": 1,
        "models": {
            name: {"sha256": sha256(folder / name), "task": task}
            for name, task in (
                ("tiny_classifier.onnx", "classify"),
                ("tiny_segmenter.onnx", "segment"),
            )
        },
        "defaults": {"classify": "tiny_classifier.onnx", "segment": "tiny_segmenter.onnx"},
    }
    (folder / MANIFEST).write_text(json.dumps(manifest))
    return folder
