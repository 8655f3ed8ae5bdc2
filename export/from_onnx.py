"""Rebuild Keras checkpoints from exported float32 ONNX files (the bundled ones included).

    python export/from_onnx.py                                  # models/*.onnx -> runs/bundled/
    python export/from_onnx.py --model-dir models --out runs/bundled densenet_unet

Why: the Keras checkpoints behind the bundled files are not in the repository (``*.keras`` is
ignored; rebuilding them is hours of ``training/make_bundled_models.sh``). This gives the
benchmarks' Keras side the same weights in a fresh clone, and a researcher a Keras model of the
bundled weights to fine-tune (``--init``).

For each file it builds the architecture its metadata names (``training/models.py``) and copies
every weight from the graph's initializers, found by the Keras layer names tf2onnx keeps in them.
tf2onnx folds a batch normalisation that follows a convolution into it, and turns one that
does not into a multiply and an add; either way the scale and shift are all that is left, so
each batch normalisation layer gets moving mean 0 and moving variance ``1 - epsilon`` (it divides
by exactly 1), ``gamma`` the scale (1 where folded into the convolution) and ``beta`` the shift.
Inference is the same function as the ONNX file, checked on sample inputs (above ``--tolerance``
max difference it fails and writes nothing): random HU and the slices of ``examples/phantom-ct``
as the runtime prepares them. Training from it is not the same as training from the original
checkpoint: in training mode a batch normalisation layer normalises by each batch's own
statistics, which the folded form no longer matches, so a fine-tuning starts from a different
parametrisation.
Writes ``<name>.keras`` and the ``<name>.json`` sidecar ``export/to_onnx.py`` reads; an
existing checkpoint it did not write (or a link to one) is kept, not replaced.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

DEFAULT_NAMES = ("densenet25d", "densenet_unet", "seed_cnn")


class RecoveryError(Exception):
    """An ONNX file this tool cannot turn back into a Keras model (the message says why)."""


REQUIRED = ("task", "architecture", "input_size", "context", "slab_mm", "windows", "thresholds",
            "training_data")


def load_onnx(path: Path):
    import onnx

    try:
        return onnx.load(str(path))
    except Exception as err:  # protobuf's DecodeError and OSError alike: not a readable model
        raise RecoveryError(f"not a readable ONNX file ({type(err).__name__}: {err})") from err


def read_metadata(path: Path, model=None) -> dict[str, str]:
    """The ``ichinfer.*`` metadata of an exported file (prefix removed); ``model``: the file
    already loaded."""
    model = model if model is not None else load_onnx(path)
    meta = {p.key.removeprefix("ichinfer."): p.value for p in model.metadata_props
            if p.key.startswith("ichinfer.")}
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise RecoveryError("not exported by export/to_onnx.py: no ichinfer."
                            + ", ichinfer.".join(missing) + " metadata")
    return meta


def build_keras(meta: dict[str, str], *, preactivation: bool = False):
    from training.models import ARCHITECTURES

    arch = meta["architecture"]
    if arch not in ARCHITECTURES:
        raise RecoveryError(f"architecture {arch!r} is not one of {sorted(ARCHITECTURES)}")
    size = json.loads(meta["input_size"])[0]
    windows = json.loads(meta["windows"])
    if arch == "seed_cnn":
        return ARCHITECTURES[arch](size, windows=windows)
    kwargs = {"context": json.loads(meta["context"]), "windows": windows}
    if arch == "densenet_unet":
        kwargs["preactivation"] = preactivation
    return ARCHITECTURES[arch](size, **kwargs)


class _Graph:
    """The initializers and nodes of an ONNX graph, looked up by Keras layer name."""

    def __init__(self, model):
        from onnx import numpy_helper

        graph = model.graph
        self.values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        self.nodes = list(graph.node)
        self.consumers: dict[str, list] = {}
        for node in self.nodes:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)

    def node_with(self, op_types: tuple[str, ...], layer: str, slot: int = 1):
        """The one node of ``op_types`` whose input ``slot`` is an initializer of ``layer``."""
        tag = f"/{layer}_1/"
        found = [n for n in self.nodes if n.op_type in op_types and len(n.input) > slot
                 and n.input[slot] in self.values and tag in n.input[slot]]
        if len(found) != 1:
            raise RecoveryError(f"layer {layer}: {len(found)} {'/'.join(op_types)} nodes hold its "
                                "weights, expected 1")
        return found[0]

    def constant_input(self, node) -> np.ndarray:
        consts = [self.values[i] for i in node.input if i in self.values]
        if len(consts) != 1:
            raise RecoveryError(f"node {node.name}: {len(consts)} constant inputs, expected 1")
        return consts[0]

    def next_add(self, node):
        adds = [n for n in self.consumers.get(node.output[0], []) if n.op_type == "Add"]
        if len(adds) != 1:
            raise RecoveryError(f"node {node.name}: no single Add after it")
        return adds[0]


def _bn_weights(layer, scale: np.ndarray, shift: np.ndarray) -> list[np.ndarray]:
    c = layer.gamma.shape[0]
    eps = float(layer.epsilon)
    return [np.broadcast_to(np.asarray(scale, np.float32).reshape(-1), (c,)).copy(),
            np.asarray(shift, np.float32).reshape(c),
            np.zeros(c, np.float32), np.full(c, 1.0 - eps, np.float32)]


def copy_weights(model, graph: _Graph) -> None:
    """Set every weight of ``model`` from ``graph``; raises if any layer is left without."""
    import keras

    layers = {layer.name: layer for layer in model.layers if layer.weights}
    done: set[str] = set()
    for name, layer in layers.items():
        if isinstance(layer, keras.layers.Conv2D):
            node = graph.node_with(("Conv",), name)
            kernel = graph.values[node.input[1]].transpose(2, 3, 1, 0)
            bias = graph.values[node.input[2]] if len(node.input) > 2 and node.input[2] else None
            if layer.use_bias:
                if bias is None:
                    raise RecoveryError(f"layer {name}: the graph's convolution has no bias")
                layer.set_weights([kernel, bias.reshape(-1)])
            else:
                layer.set_weights([kernel])
                if bias is not None:  # a batch normalisation folded in: its shift is the bias
                    bn_name = node.input[2].split("/")[1].removesuffix("_1")
                    bn = layers.get(bn_name)
                    if not isinstance(bn, keras.layers.BatchNormalization):
                        raise RecoveryError(f"layer {name}: its bias names {bn_name!r}, not a "
                                            "batch normalisation layer of the model")
                    bn.set_weights(_bn_weights(bn, np.ones(1), bias))
                    done.add(bn_name)
            done.add(name)
        elif isinstance(layer, keras.layers.Dense):
            node = graph.node_with(("MatMul",), name)  # tf2onnx: MatMul, then Add of the bias
            add = graph.next_add(node)
            layer.set_weights([graph.values[node.input[1]], graph.constant_input(add).reshape(-1)])
            done.add(name)
    for name, layer in layers.items():
        if name in done or not isinstance(layer, keras.layers.BatchNormalization):
            continue
        mul = graph.node_with(("Mul",), name)
        add = graph.next_add(mul)
        layer.set_weights(_bn_weights(layer, graph.values[mul.input[1]],
                                      graph.constant_input(add)))
        done.add(name)
    missing = sorted(set(layers) - done)
    if missing:
        raise RecoveryError(f"no weights found in the graph for {', '.join(missing)}")


def sample_inputs(meta: dict[str, str], shape: tuple[int, ...], n: int = 4) -> np.ndarray:
    """HU over the whole scanner range (every window's ramp and both clips), and a 0/1 prior."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1100.0, 2000.0, size=(n, *shape)).astype(np.float32)
    x[:, : shape[0] // 2] = rng.normal(40.0, 30.0, size=(n, shape[0] // 2, *shape[1:]))
    if json.loads(meta.get("prior", "null")):
        x[..., -1] = rng.random((n, *shape[:-1])) < 0.1
    return x


@functools.cache
def _example_series():
    """``examples/phantom-ct``, scanned once; its grids are decoded once per size."""
    from ichinfer import dicom
    from ichinfer.pipeline import PreparedSeries

    folder = ROOT / "examples" / "phantom-ct"
    if not folder.is_dir():
        return None
    return PreparedSeries(dicom.scan(folder, on_error="raise").series[0])


def example_inputs(meta: dict[str, str]) -> np.ndarray | None:
    """Model inputs of every slice of ``examples/phantom-ct`` (bleeds among them), built by the
    runtime's own preprocessing; None where the folder is absent."""
    from ichinfer.preprocess import model_inputs, with_prior

    prepared = _example_series()
    if prepared is None:
        return None
    grid = prepared.grid(json.loads(meta["input_size"])[0])
    index = np.arange(len(grid))
    context = json.loads(meta["context"])
    x = model_inputs(grid, prepared.locations_mm, index, slab_mm=json.loads(meta["slab_mm"]),
                     context=context)
    return with_prior(x, context) if json.loads(meta.get("prior", "null")) else x


def recover(path: Path, *, tolerance: float = 1e-4):
    """The Keras model of ``path`` and the max difference of its outputs to onnxruntime's."""
    import onnxruntime as ort

    onnx_model = load_onnx(path)
    meta = read_metadata(path, onnx_model)  # first: what the file is, before building anything
    if meta.get("precision", "fp32") != "fp32":
        raise RecoveryError(f"precision {meta['precision']}: recover from the float32 file it "
                            "was quantized from")
    graph = _Graph(onnx_model)
    preact = any(n.op_type == "Mul" and "_bn1_1/" in "".join(n.input) for n in graph.nodes)
    model = build_keras(meta, preactivation=preact)
    expected = json.loads(meta.get("params", "null"))
    if expected is not None and model.count_params() != expected:
        raise RecoveryError(f"the rebuilt {meta['architecture']} has {model.count_params()} "
                            f"parameters, the file's metadata says {expected}")
    copy_weights(model, graph)
    x = sample_inputs(meta, tuple(model.input_shape[1:]))
    real = example_inputs(meta)
    if real is not None:
        x = np.concatenate([x, real.astype(np.float32)])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ref = session.run(None, {session.get_inputs()[0].name: x})[0]
    diff = float(np.max(np.abs(np.asarray(model(x, training=False)) - ref)))
    if not diff <= tolerance:
        raise RecoveryError(f"Keras and onnxruntime differ by {diff:.2e} (> {tolerance:g})")
    return model, meta, diff


def sidecar(meta: dict[str, str], model, source: Path) -> dict:
    """The ``.json`` a training script writes beside its checkpoint, from the file's metadata."""
    return {
        "task": meta["task"],
        "arch": meta["architecture"],
        "image_size": json.loads(meta["input_size"])[0],
        "context": json.loads(meta["context"]),
        "slab_mm": json.loads(meta["slab_mm"]),
        "windows": json.loads(meta["windows"]),
        "prior": json.loads(meta.get("prior", "null")),
        "params": model.count_params(),
        "thresholds": json.loads(meta["thresholds"]),
        "validation": json.loads(meta.get("validation", "{}")),
        "training_data": meta["training_data"],
        "recovered_from": source.name,
    }


def replaceable(dst: Path) -> bool:
    """Whether ``dst`` may be written: absent, or a file this tool wrote (its sidecar says
    ``recovered_from``). A link is never written through: ``training/make_bundled_models.sh``
    links ``runs/bundled`` to the original checkpoints."""
    if dst.is_symlink():
        return False
    if not dst.exists():
        return True
    try:
        return "recovered_from" in json.loads(dst.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return False


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", default=list(DEFAULT_NAMES),
                   help=f"model names in --model-dir (default: {' '.join(DEFAULT_NAMES)})")
    p.add_argument("--model-dir", type=Path, default=ROOT / "models")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bundled")
    p.add_argument("--tolerance", type=float, default=1e-4)
    args = p.parse_args(argv)
    failed = 0
    for name in args.names:
        src = args.model_dir / f"{name.removesuffix('.onnx')}.onnx"
        try:
            if not src.is_file():
                raise RecoveryError("no such file")
            model, meta, diff = recover(src, tolerance=args.tolerance)
        except RecoveryError as e:
            print(f"{src}: {e}", file=sys.stderr)
            failed += 1
            continue
        dst = args.out / f"{src.stem}.keras"
        if not replaceable(dst):
            print(f"{dst}: kept, not replaced (a checkpoint this tool did not write, or a link "
                  "to one: the original weights)")
            continue
        args.out.mkdir(parents=True, exist_ok=True)
        model.save(dst)
        (args.out / f"{src.stem}.json").write_text(
            json.dumps(sidecar(meta, model, src), indent=2) + "\n")
        print(f"{src} -> {dst} ({model.count_params()} parameters; max difference {diff:.1e})")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
