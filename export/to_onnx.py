"""Convert trained Keras checkpoints to the ONNX models ichinfer runs, with their metadata.

    python export/to_onnx.py                       # runs/*.keras -> models/, default settings
    python export/to_onnx.py --classifier runs/densenet25d.keras \
        --segmenter runs/densenet_unet.keras --seed-cnn runs/seed_cnn.keras \
        --data data/phantoms-val --out models

For each checkpoint (with the ``.json`` sidecar its training script wrote) this:
1. converts it with tf2onnx (opset 17, dynamic batch, fixed height/width);
2. writes the metadata the runtime reads (``ichinfer.*``: task, labels, input size, context,
   slab, windows, thresholds, version, training data, validation figures);
3. runs Keras and onnxruntime on sample inputs and fails above ``--tolerance`` (1e-4) max diff;
4. with ``--data`` (a validation folder in the RSNA layout), quantizes to int8 (static QDQ,
   per-channel, calibrated on ``--calibration`` slices drawn across the whole folder) and
   keeps that variant only if validation AUC stays within 0.01 (Dice within 0.02) of
   float32, recording both figures; a segmenter's Dice counts at its mask threshold
   (``--mask-threshold``, chosen on validation data on the runtime's own masks with
   ``training/evaluate.py --mask-thresholds``; else the checkpoint's, 0.5);
5. with ``--series-data`` (validation folders; default ``--data``), gives each classifier its
   series thresholds (``ichinfer.series_thresholds``, what the verdict uses): per label the
   lowest with series-level specificity >= ``--series-specificity`` over those folders' series,
   scored by the runtime itself, and never below the slice threshold;
6. moves the new files into ``--out`` once every export has passed (a failed run changes
   nothing there) and writes ``models/manifest.json`` with the sha256 of every file; with
   ``--update`` the models of the manifest already in ``--out`` that this run does not export
   stay listed (their files untouched and checked against their recorded sha256), so one model
   can be replaced alone:

    python export/to_onnx.py --classifier /nonexistent --seed-cnn /nonexistent \
        --segmenter runs/densenet_unet.keras --data data/phantoms-val --update
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from ichinfer import __version__  # noqa: E402
from ichinfer.labels import LABELS  # noqa: E402
from ichinfer.metrics import dice, roc_auc, specificity_threshold  # noqa: E402
from ichinfer.models import MANIFEST, PREFIX, PREPROCESS_VERSION, sha256  # noqa: E402
from ichinfer.preprocess import with_prior  # noqa: E402

OPSET = 17
NOT_CLINICAL = "Not for clinical use."


def convert(model, out_path: Path) -> None:
    import tensorflow as tf
    import tf2onnx

    inp = model.inputs[0]
    _, h, w, c = inp.shape
    signature = [tf.TensorSpec((None, h, w, c), tf.float32, name=inp.name)]
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=OPSET)
    fuse_clips(proto.graph)
    windows = model.get_layer("windows")
    windows_as_conv(proto.graph, windows.windows, windows.hu_channels)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(proto.SerializeToString())


def fuse_clips(graph) -> int:
    """Rewrite tf2onnx's ``Max(Min(x, hi), lo)`` (scalar bounds: the in-graph HU windows) as one
    ``Clip(x, lo, hi)``. Same values; onnxruntime's broadcasting Min/Max kernels are slow (in
    seed_cnn they took more time than the convolutions), its Clip is a vectorised loop.
    Returns the number of pairs fused."""
    import numpy as np
    from onnx import helper, numpy_helper

    inits = {t.name: t for t in graph.initializer}

    def scalar(name: str):
        t = inits.get(name)
        if t is None:
            return None
        a = numpy_helper.to_array(t)
        return float(a) if a.size == 1 and a.dtype == np.float32 else None

    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    graph_outputs = {o.name for o in graph.output}
    fused = 0
    for node in list(graph.node):
        if node.op_type != "Min" or len(node.input) != 2:
            continue
        x, hi_name = node.input
        if scalar(hi_name) is None:
            x, hi_name = hi_name, x
        users = consumers.get(node.output[0], [])
        if scalar(hi_name) is None or len(users) != 1 or node.output[0] in graph_outputs:
            continue
        mx = users[0]
        if mx.op_type != "Max" or len(mx.input) != 2:
            continue
        lo_name = mx.input[1] if mx.input[0] == node.output[0] else mx.input[0]
        if scalar(lo_name) is None or scalar(lo_name) > scalar(hi_name):
            continue
        lo_s, hi_s = (
            numpy_helper.from_array(np.array(scalar(n), np.float32), f"{mx.name}_{k}")
            for n, k in ((lo_name, "lo"), (hi_name, "hi"))
        )
        graph.initializer.extend([lo_s, hi_s])
        clip = helper.make_node(
            "Clip", [x, lo_s.name, hi_s.name], list(mx.output), name=mx.name + "_clip"
        )
        idx = list(graph.node).index(mx)
        graph.node.remove(node)
        graph.node.remove(mx)
        graph.node.insert(idx - 1, clip)
        fused += 1
    used = {name for node in graph.node for name in node.input}
    for t in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(t)
    return fused


WINDOW_PREFIX = "ichinfer_windows/"


def windows_as_conv(graph, windows: list, hu_channels: int) -> None:
    """Rewrite the ``windows`` layer (per window: Sub, Mul, Clip; then Concat) as one 1x1 Conv
    whose weights are 1/width and biases -low/width, and one Clip(0, 1): the same values up to
    float rounding (checked by :func:`parity`). onnxruntime's scalar Sub and Mul over a batch
    of HU images were 45 % of seed_cnn's time at batch 32; its Conv + Clip is one fused,
    threaded kernel. Channels after ``hu_channels`` (the segmenter's prior) pass through the
    layer's own Slice, as before.
    """
    from onnx import helper, numpy_helper

    concats = [n for n in graph.node if n.op_type == "Concat" and "/windows" in n.name]
    if len(concats) != 1:
        raise RuntimeError(f"expected one windows Concat, found {[n.name for n in concats]}")
    concat = concats[0]
    layer_prefix = concat.name.rsplit("/", 1)[0] + "/"
    layer = [n for n in graph.node if n.name.startswith(layer_prefix)]
    producer = {out: n for n in layer for out in n.output}
    rest = [i for i in concat.input if i in producer and producer[i].op_type == "Slice"]
    keep = {producer[i].name for i in rest}
    hu = graph.input[0]
    c_in = hu.type.tensor_type.shape.dim[3].dim_value
    weight = np.zeros((len(windows) * hu_channels, c_in, 1, 1), np.float32)
    bias = np.zeros(len(windows) * hu_channels, np.float32)
    for j, (center, width) in enumerate(windows):  # channel order of HUWindows: window-major
        for i in range(hu_channels):
            weight[j * hu_channels + i, i] = 1.0 / width
            bias[j * hu_channels + i] = -(center - width / 2.0) / width
    p = WINDOW_PREFIX
    graph.initializer.extend(
        [
            numpy_helper.from_array(weight, p + "weight"),
            numpy_helper.from_array(bias, p + "bias"),
            numpy_helper.from_array(np.array(0.0, np.float32), p + "zero"),
            numpy_helper.from_array(np.array(1.0, np.float32), p + "one"),
        ]
    )
    nodes = [
        helper.make_node("Transpose", [hu.name], [p + "nchw"], perm=[0, 3, 1, 2], name=p + "nchw"),
        helper.make_node(
            "Conv",
            [p + "nchw", p + "weight", p + "bias"],
            [p + "affine"],
            kernel_shape=[1, 1],
            name=p + "conv",
        ),
        helper.make_node(
            "Clip", [p + "affine", p + "zero", p + "one"], [p + "clip"], name=p + "clip"
        ),
        helper.make_node(
            "Transpose", [p + "clip"], [p + "nhwc"], perm=[0, 2, 3, 1], name=p + "nhwc"
        ),
    ]
    for node in layer:
        if node.name not in keep:
            graph.node.remove(node)
    if not rest:  # the windows are the layer's whole output
        nodes[-1].output[0] = concat.output[0]
    for k, node in enumerate(nodes):
        graph.node.insert(k, node)
    if rest:
        after = max(k for k, n in enumerate(graph.node) if n.name in keep)
        joined = helper.make_node(
            "Concat", [p + "nhwc", *rest], list(concat.output), axis=-1, name=p + "concat"
        )
        graph.node.insert(after + 1, joined)
    used = {name for node in graph.node for name in node.input}
    for t in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(t)


def set_metadata(path: Path, meta: dict[str, str]) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in meta.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    model.producer_name = "ichinfer export/to_onnx.py"
    model.doc_string = meta.get(PREFIX + "description", "")
    onnx.save(model, str(path))


def metadata(info: dict, *, name: str, precision: str = "fp32", extra: dict | None = None) -> dict:
    task = info["task"]
    meta = {
        "task": task,
        "name": name,
        "architecture": info["arch"],
        "version": __version__,
        "preprocess": PREPROCESS_VERSION,
        "precision": precision,
        "input_size": json.dumps([info["image_size"], info["image_size"]]),
        "input_units": "HU",
        "input_layout": "NHWC: channels = slabs head side first, centre, foot side"
        + (", then the 50-90 HU inside-skull prior" if task == "segment" else ""),
        "context": json.dumps(info["context"]),
        "slab_mm": json.dumps(info["slab_mm"]),
        "prior": json.dumps(task == "segment"),
        "windows": json.dumps(info["windows"]),
        "thresholds": json.dumps(info["thresholds"]),
        "training_data": info["training_data"],
        "validation": json.dumps(info["validation"]),
        "params": json.dumps(info["params"]),
        "description": f"ichinfer {task} model {name}. {NOT_CLINICAL} Trained on: "
        f"{info['training_data']}.",
    }
    if task == "classify":
        meta["labels"] = json.dumps(list(LABELS))
    meta.update(extra or {})
    return {PREFIX + k: str(v) for k, v in meta.items()}


def sample_inputs(model, n: int = 4, seed: int = 0) -> np.ndarray:
    """HU-like inputs: air, soft tissue, bone, plus a prior channel when the model has one."""
    _, h, w, c = model.inputs[0].shape
    rng = np.random.default_rng(seed)
    x = rng.choice([-1024.0, 30.0, 70.0, 1000.0], size=(n, h, w, c)).astype(np.float32)
    x += rng.normal(0, 20, size=x.shape).astype(np.float32)
    if model.name == "densenet_unet":
        x[..., -1] = (rng.random((n, h, w)) < 0.1).astype(np.float32)
    return x


def parity(model, path: Path, tolerance: float) -> float:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = sample_inputs(model)
    want = np.asarray(model(x, training=False))
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    diff = float(np.abs(want - got).max())
    if diff > tolerance:
        raise SystemExit(f"{path}: Keras and onnxruntime differ by {diff:.2e} > {tolerance:.0e}")
    return diff


# --- validation and quantization ------------------------------------------------------------


def validation_batches(info: dict, data: Path, max_series: int | None, with_groups: bool = False):
    """Validation inputs/targets from a data folder, built the way training built them; with
    ``with_groups``, also each row's patient (``<folder>:<patient key>``), the unit a
    resampled interval draws (:func:`ichinfer.metrics.series_bootstrap`)."""
    from training.data import load_rsna
    from training.datasets import build_inputs, classifier_samples, segmenter_samples

    series = load_rsna(
        data,
        image_size=info["image_size"],
        with_masks=info["task"] == "segment",
        max_series=max_series,
    )
    if info["task"] == "classify":
        samples = classifier_samples(series)
        x = build_inputs(series, samples, slab_mm=info["slab_mm"], context=info["context"])
        y = np.stack([series[si].labels[i] for si, i in samples])
    else:
        samples = segmenter_samples(series)
        x = build_inputs(series, samples, slab_mm=info["slab_mm"], context=info["context"])
        x = with_prior(x, info["context"])
        y = np.stack([series[si].masks[i] for si, i in samples])
    if with_groups:
        groups = np.asarray([f"{data}:{series[si].patient_key}" for si, _ in samples])
        return x, y, groups
    return x, y


def predict(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i : i + 16]})[0] for i in range(0, len(x), 16)])


def thresholds(prob: np.ndarray, y: np.ndarray, specificity: float) -> dict:
    """Per label, the lowest threshold with slice-level specificity >= ``specificity``."""
    return {
        label: specificity_threshold(y[:, k], prob[:, k], specificity)
        for k, label in enumerate(LABELS)
    }


def score(pred: np.ndarray, task: str, y: np.ndarray, mask_threshold: float = 0.5) -> dict:
    """Validation figures of a model's predictions: per-label AUC, or pooled Dice."""
    if task == "classify":
        aucs = {label: roc_auc(y[:, k], pred[:, k]) for k, label in enumerate(LABELS)}
        return {"auc": aucs, "min_auc": float(np.nanmin(list(aucs.values())))}
    masks = pred[..., 0] >= mask_threshold
    return {"dice_pooled": dice(y > 0, masks)}


#: how much a smaller variant may lose against float32 on validation data and still be written:
#: every label's AUC, or the pooled Dice
TOLERANCE = {"classify": 0.01, "segment": 0.02}


def worst_change(ref: dict, got: dict) -> float:
    """The largest loss from ``ref`` to ``got`` (two :func:`score` results of one task): over the
    labels' AUCs (those defined in ``ref``), or of the pooled Dice. Negative is a loss."""
    if "auc" in ref:
        return min(got["auc"][k] - ref["auc"][k] for k in LABELS if not np.isnan(ref["auc"][k]))
    return got["dice_pooled"] - ref["dice_pooled"]


def window_nodes(path: Path) -> list[str]:
    """Names of the nodes between the HU input and the first convolutions (the in-graph windows).

    They stay float32: quantized, their input (HU, -1024..3071) would get 8-bit steps of ~16 HU,
    wider than the grey/white-matter contrast the brain window is there to show. The windows'
    own 1x1 Conv (:func:`windows_as_conv`) counts as one of them."""
    import onnx

    graph = onnx.load(str(path)).graph
    frontier = {i.name for i in graph.input}
    out: list[str] = []
    for node in graph.node:  # ONNX graphs list nodes in topological order: one pass suffices
        if node.op_type in ("Conv", "ConvTranspose", "MatMul", "Gemm") and not node.name.startswith(
            WINDOW_PREFIX
        ):
            continue
        if any(i in frontier for i in node.input):
            out.append(node.name)
            frontier.update(node.output)
    return out


def series_maxima(path: Path, folders: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Per validation series: its highest slice probability per label, from the exported file
    run by the runtime itself (slab sampling included), and its truth (any slice positive)."""
    from ichinfer.classification import Classifier
    from training.data import read_rsna_labels
    from training.evaluate import series_highest

    highest, truth = [], []
    with tempfile.TemporaryDirectory() as tmp:  # away from the manifest being rewritten
        clf = Classifier(shutil.copy(path, tmp), batch_size=16)
        for folder in folders:
            labels = read_rsna_labels(folder / "stage_2_train.csv")
            h, t, unlabelled = series_highest(clf.iter_series(folder / "stage_2_train"), labels)
            if unlabelled:
                raise SystemExit(f"{folder}: {unlabelled} series lack labels in stage_2_train.csv")
            highest.append(h)
            truth.append(t)
    return np.concatenate(highest), np.concatenate(truth)


def _share(flags: np.ndarray) -> float | None:
    return float(flags.mean()) if flags.size else None


def series_thresholds(
    path: Path, folders: list[Path], specificity: float, slice_thresholds: dict
) -> tuple[dict, dict]:
    """Per label, the lowest threshold with series-level ``specificity`` on ``folders``, never
    below ``slice_thresholds``; and the figures behind them (for the manifest)."""
    highest, truth = series_maxima(path, folders)
    out: dict[str, float] = {}
    figures: dict = {"series": len(truth), "bleed_free_series": int((truth[:, 0] == 0).sum())}
    for k, label in enumerate(LABELS):
        t = specificity_threshold(truth[:, k], highest[:, k], specificity)
        out[label] = max(float(t), float(slice_thresholds[label]))
        pos, neg = truth[:, k] == 1, truth[:, k] == 0
        called = highest[:, k] >= out[label]
        at_slice = highest[:, k] >= slice_thresholds[label]
        figures[label] = {
            "positive_series": int(pos.sum()),
            "sensitivity": _share(called[pos]),
            "specificity": _share(~called[neg]),
            "specificity_at_slice_threshold": _share(~at_slice[neg]),
        }
    return out, figures


def calibration_slices(x: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` validation inputs spread over the whole set (seeded), for int8 calibration. The
    first ``n`` would come from a handful of series in folder order: activation ranges set on
    them clip what other heads reach (densenet25d, convolutions-only int8: worst label AUC
    -0.037 on the first 256 slices of phantoms-val, -0.001 on 256 drawn from all of them)."""
    if n >= len(x):
        return x
    return x[np.sort(np.random.default_rng(seed).choice(len(x), n, replace=False))]


def quantize(src: Path, dst: Path, calib: np.ndarray, op_types: list[str] | None = None) -> None:
    """Static int8 QDQ (per-channel weights), the in-graph windows left in float32;
    ``op_types`` limits it to those node types (``training/precision_study.py`` compares)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, name: str):
            self.items = iter([{name: calib[i : i + 8]} for i in range(0, len(calib), 8)])

        def get_next(self):
            return next(self.items, None)

    import onnxruntime as ort

    name = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    pre = dst.with_suffix(".pre.onnx")
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    quantize_static(
        str(pre),
        str(dst),
        Reader(name),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QUInt8,
        nodes_to_exclude=window_nodes(pre),
        **({"op_types_to_quantize": op_types} if op_types else {}),
    )
    pre.unlink(missing_ok=True)


def add_series_thresholds(path: Path, info: dict, args, extra: dict) -> dict:
    """Series thresholds of an exported classifier, written to its metadata (step 5)."""
    chosen, figures = series_thresholds(
        path, args.series_data, args.series_specificity, info["thresholds"]
    )
    names = ", ".join(f.name for f in args.series_data)
    extra["series_thresholds"] = json.dumps(chosen)
    extra["series_threshold_rule"] = (
        f"lowest threshold with series-level specificity >= {args.series_specificity} "
        f"on {names} ({figures['series']} series, {figures['bleed_free_series']} bleed-free), "
        "never below the slice threshold"
    )
    precision = "int8" if "quantized_from" in extra else "fp32"
    set_metadata(path, metadata(info, name=info["arch"], precision=precision, extra=extra))
    print(f"{path}: series thresholds {chosen}")
    return {
        "series_thresholds": chosen,
        "series_threshold_rule": extra["series_threshold_rule"],
        "series_validation": figures,
    }


def forget(manifest: dict, out: Path) -> None:
    """Drop ``out`` and its variants from ``manifest``: this run exports it again, and keeps a
    variant only if it holds accuracy again (``main`` deletes the files of those it does not,
    once the new manifest is written)."""
    for fname, entry in list(manifest["models"].items()):
        if entry.get("variant_of") == out.name:
            del manifest["models"][fname]
    manifest["models"].pop(out.name, None)


def export_one(ckpt: Path, args, manifest: dict, *, default: bool) -> None:
    import keras

    import training.models  # noqa: F401 - registers the custom layers

    info = json.loads(ckpt.with_suffix(".json").read_text())
    name = info["arch"]
    model = keras.models.load_model(ckpt, compile=False)
    out = args.out / f"{name}.onnx"
    forget(manifest, out)
    t0 = time.time()
    convert(model, out)
    diff = parity(model, out, args.tolerance)
    x = y = None
    rule = "Youden's J on the training-time validation split"
    if info["task"] == "segment":
        if args.mask_threshold is not None:
            info["thresholds"] = {"mask": args.mask_threshold}
            rule = f"mask threshold {args.mask_threshold:g} given to export (--mask-threshold)"
        else:
            fixed = info["thresholds"]["mask"]
            rule = f"mask threshold {fixed:g}, the training script's fixed value"
    if args.data is not None:
        x, y = validation_batches(info, args.data, args.max_series)
        # float32 predictions, needed for the thresholds and the int8 check
        pred = predict(out, x) if info["task"] == "classify" or not args.no_quantize else None
        if info["task"] == "classify":
            info["thresholds"] = thresholds(pred, y, args.threshold_specificity)
            rule = (
                f"lowest threshold with slice-level specificity >= "
                f"{args.threshold_specificity} on {args.data.name}"
            )
    extra = {"threshold_rule": rule}
    set_metadata(out, metadata(info, name=name, extra=extra))
    series = None
    if info["task"] == "classify" and args.series_data:
        series = add_series_thresholds(out, info, args, extra)
    entry = {
        "task": info["task"],
        "precision": "fp32",
        "parity_max_abs_diff": diff,
        "validation": info["validation"],
        "params": info["params"],
        "thresholds": info["thresholds"],
        "threshold_rule": rule,
        **(series or {}),
        "training": {
            k: info.get(k)
            for k in (
                "command",
                "n_train_slices",
                "n_val_slices",
                "train_seconds",
                "epochs",
                "training_data",
            )
        },
    }
    print(f"{out}: converted in {time.time() - t0:.1f} s, max |Keras - ORT| = {diff:.2e}")
    if x is not None and not args.no_quantize:
        mask_t = info["thresholds"].get("mask", 0.5)
        fp32 = score(pred, info["task"], y, mask_t)
        qpath = args.out / f"{name}.int8.onnx"
        quantize(out, qpath, calibration_slices(x, args.calibration))
        qpred = predict(qpath, x)
        qinfo = dict(info)
        if info["task"] == "classify":  # its own operating point: quantization moves the scores
            qinfo["thresholds"] = thresholds(qpred, y, args.threshold_specificity)
        qextra = {"quantized_from": out.name, "threshold_rule": rule}
        set_metadata(qpath, metadata(qinfo, name=name, precision="int8", extra=qextra))
        int8 = score(qpred, info["task"], y, mask_t)
        keep = worst_change(fp32, int8) >= -TOLERANCE[info["task"]]
        entry["quantization"] = {
            "fp32": fp32,
            "int8": int8,
            "kept": bool(keep),
            "validation_slices": int(len(x)),
        }
        print(f"{qpath}: fp32 {fp32} int8 {int8} -> {'kept' if keep else 'dropped'}")
        if keep:
            qseries = None
            if info["task"] == "classify" and args.series_data:
                qseries = add_series_thresholds(qpath, qinfo, args, qextra)
            entry["variants"] = {"int8": qpath.name}
            manifest["models"][qpath.name] = {
                "task": info["task"],
                "precision": "int8",
                "variant_of": out.name,
                "thresholds": qinfo["thresholds"],
                **(qseries or {}),
            }
        else:
            qpath.unlink()
    manifest["models"][out.name] = entry
    if default:
        manifest["defaults"][info["task"]] = out.name


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--classifier", type=Path, default=ROOT / "runs" / "densenet25d.keras")
    p.add_argument("--segmenter", type=Path, default=ROOT / "runs" / "densenet_unet.keras")
    p.add_argument("--seed-cnn", type=Path, default=ROOT / "runs" / "seed_cnn.keras")
    p.add_argument("--out", type=Path, default=ROOT / "models")
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help="validation folder (RSNA layout): default thresholds and the int8 check",
    )
    p.add_argument(
        "--threshold-specificity",
        type=float,
        default=0.98,
        help="default thresholds: lowest with this slice specificity on --data",
    )
    p.add_argument(
        "--series-data",
        type=Path,
        nargs="+",
        default=None,
        help="validation folders (RSNA layout) for the series thresholds; default: --data",
    )
    p.add_argument(
        "--series-specificity",
        type=float,
        default=0.95,
        help="series thresholds: lowest with this series-level specificity on --series-data",
    )
    p.add_argument(
        "--mask-threshold",
        type=float,
        default=None,
        help="the segmenter's mask threshold, written to its metadata (default: its checkpoint's)",
    )
    p.add_argument("--max-series", type=int, default=None)
    p.add_argument("--calibration", type=int, default=256, help="calibration slices")
    p.add_argument("--no-quantize", action="store_true")
    p.add_argument("--tolerance", type=float, default=1e-4)
    p.add_argument(
        "--update",
        action="store_true",
        help="keep the other models of the manifest already in --out (files untouched)",
    )
    args = p.parse_args(argv)
    if args.series_data is None and args.data is not None:
        args.series_data = [args.data]

    manifest = {"format": 1, "ichinfer": __version__, "opset": OPSET, "models": {}, "defaults": {}}
    listed_before: set[str] = set()
    if args.update and (args.out / MANIFEST).exists():
        old = json.loads((args.out / MANIFEST).read_text())
        manifest["models"], manifest["defaults"] = old["models"], old["defaults"]
        for fname, entry in old["models"].items():  # checked before anything is written
            path = args.out / fname
            if not path.exists() or sha256(path) != entry.get("sha256"):
                raise SystemExit(f"{path}: missing or its sha256 differs from the manifest's")
        listed_before = set(old["models"])
    jobs = [(args.classifier, True), (args.segmenter, True), (args.seed_cnn, False)]
    found = [(c, d) for c, d in jobs if c.exists()]
    if not found:
        raise SystemExit(f"no checkpoints found: {[str(c) for c, _ in jobs]}")
    args.out.mkdir(parents=True, exist_ok=True)
    # every new file is written in a staging folder and moved into --out only once all exports
    # have passed their checks: a failed run leaves the models and manifest there as they were
    final, args.out = args.out, Path(tempfile.mkdtemp(prefix=".export-", dir=args.out))
    try:
        for ckpt, default in found:
            export_one(ckpt, args, manifest, default=default)
        for made in sorted(args.out.iterdir()):
            os.replace(made, final / made.name)
    finally:
        shutil.rmtree(args.out, ignore_errors=True)
        args.out = final
    for fname, entry in manifest["models"].items():
        path = args.out / fname
        entry["sha256"] = sha256(path)
        entry["bytes"] = path.stat().st_size
    (args.out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    for fname in listed_before - set(manifest["models"]):  # variants not made again
        (args.out / fname).unlink(missing_ok=True)
    print(f"wrote {args.out / MANIFEST}: {sorted(manifest['models'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
