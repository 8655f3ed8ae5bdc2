"""Where models live, the manifest's sha256 check, and what each model expects.

A model describes itself in its ONNX ``metadata_props`` (written by ``export/to_onnx.py``);
:func:`parse_spec` turns that into a :class:`ModelSpec` and refuses a model whose metadata does
not match the runtime's contract. Model folders are found in this order: the ``model_dir``
argument, the ``ICHINFER_MODEL_DIR`` environment variable, the models bundled in the package.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ichinfer.errors import ModelIntegrityError, ModelNotFoundError
from ichinfer.labels import LABELS

MODEL_DIR_ENV = "ICHINFER_MODEL_DIR"
MANIFEST = "manifest.json"
#: metadata keys, all prefixed "ichinfer." in the ONNX file
PREFIX = "ichinfer."
TASKS = ("classify", "segment")
#: the preprocessing contract version this runtime implements (ichinfer.preprocess)
PREPROCESS_VERSION = "1"


@dataclass(frozen=True)
class ModelSpec:
    """What a model expects and promises, read from its own metadata."""

    path: Path
    task: str
    name: str
    version: str
    input_name: str
    output_name: str
    input_size: tuple[int, int]
    context: int
    prior: bool
    slab_mm: float
    windows: tuple[tuple[float, float], ...]
    thresholds: dict[str, float]
    labels: tuple[str, ...] = ()
    #: per label, the threshold a series' highest slice probability is held to for its verdict
    #: (``ichinfer.series_thresholds``); empty in models exported without one
    series_thresholds: dict[str, float] = field(default_factory=dict)
    precision: str = "fp32"
    training_data: str = ""
    metadata: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def channels(self) -> int:
        return 2 * self.context + 1 + (1 if self.prior else 0)

    def describe(self) -> dict:
        """Public description (for ``ichinfer info`` and result files)."""
        return {
            "file": self.path.name,
            "task": self.task,
            "name": self.name,
            "version": self.version,
            "precision": self.precision,
            "input_size": list(self.input_size),
            "context_slabs": self.context,
            "slab_mm": self.slab_mm,
            "prior": self.prior,
            "windows": [list(w) for w in self.windows],
            "thresholds": self.thresholds,
            "series_thresholds": self.series_thresholds,
            "labels": list(self.labels),
            "training_data": self.training_data,
        }


def bundled_model_dir() -> Path:
    """The models shipped with the package: ``ichinfer/bundled_models`` in a wheel (setuptools maps
    the repository's ``models/`` there), ``models/`` in a source checkout."""
    try:
        path = Path(str(resources.files("ichinfer.bundled_models")))
        if (path / MANIFEST).exists():
            return path
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parents[1] / "models"


def model_dir(override: str | os.PathLike | None = None) -> Path:
    """Resolve the model folder: argument → ``ICHINFER_MODEL_DIR`` → bundled."""
    chosen = override if override is not None else os.environ.get(MODEL_DIR_ENV) or None
    path = Path(chosen) if chosen is not None else bundled_model_dir()
    if not path.is_dir():
        source = "argument" if override is not None else MODEL_DIR_ENV if chosen else "bundled"
        raise ModelNotFoundError(f"{path}: model folder ({source}) does not exist")
    return path


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.exists():
        raise ModelNotFoundError(f"{path}: no model manifest in {folder}")
    try:
        manifest = json.loads(path.read_text())
        manifest["models"]  # noqa: B018 - presence check
    except (ValueError, KeyError, TypeError) as err:
        raise ModelIntegrityError(f"{path}: not a valid ichinfer manifest ({err})") from err
    return manifest


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def verify(path: Path, manifest: dict) -> None:
    """Raise :class:`ModelIntegrityError` unless ``path``'s sha256 is the manifest's."""
    entry = manifest["models"].get(path.name)
    if entry is None:
        raise ModelIntegrityError(f"{path}: not listed in the manifest of {path.parent}")
    actual = sha256(path)
    if actual != entry.get("sha256"):
        raise ModelIntegrityError(
            f"{path}: sha256 {actual[:12]}… does not match the manifest's "
            f"{str(entry.get('sha256'))[:12]}… (file changed or corrupted; re-export or reinstall)"
        )


def locate(
    task: str,
    *,
    model: str | os.PathLike | None = None,
    model_dir_override: str | os.PathLike | None = None,
    variant: str | None = None,
) -> Path:
    """The verified model file for ``task``.

    ``model`` is a file path, or a file name / model name inside the model folder. Without it the
    manifest's default for the task is used (``variant`` such as ``"int8"`` picks the manifest's
    named variant of that default). A file listed in a manifest beside it is sha256-checked; an
    explicit file with no manifest entry is accepted on its metadata alone.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, not {task!r}")
    if model is not None and Path(model).suffix == ".onnx" and Path(model).exists():
        path = Path(model)
        manifest_path = path.parent / MANIFEST
        if manifest_path.exists():
            manifest = read_manifest(path.parent)
            if path.name in manifest["models"]:
                verify(path, manifest)
        return path
    folder = model_dir(model_dir_override)
    manifest = read_manifest(folder)
    if model is None:
        name = manifest.get("defaults", {}).get(task)
        if name is None:
            raise ModelNotFoundError(f"{folder / MANIFEST}: no default {task} model")
        if variant:
            name = manifest["models"].get(name, {}).get("variants", {}).get(variant)
            if name is None:
                raise ModelNotFoundError(
                    f"{folder / MANIFEST}: no {variant!r} variant of the {task} model"
                )
    else:
        name = str(model)
        if not name.endswith(".onnx"):
            name += ".onnx"
    path = folder / name
    if not path.exists():
        raise ModelNotFoundError(f"{path}: model file does not exist")
    verify(path, manifest)
    return path


def _json(meta: dict[str, str], key: str, path: Path, default=None):
    raw = meta.get(PREFIX + key)
    if raw is None:
        if default is not None:
            return default
        raise ModelIntegrityError(f"{path}: metadata {PREFIX + key!r} is missing")
    try:
        return json.loads(raw)
    except ValueError as err:
        raise ModelIntegrityError(
            f"{path}: metadata {PREFIX + key!r} is not JSON: {raw!r}"
        ) from err


def parse_spec(
    path: Path,
    meta: dict[str, str],
    *,
    input_name: str,
    input_shape: list,
    output_name: str,
    output_shape: list,
) -> ModelSpec:
    """Read and check a model's metadata against the runtime's contract."""
    task = meta.get(PREFIX + "task")
    if task not in TASKS:
        raise ModelIntegrityError(f"{path}: metadata ichinfer.task is {task!r}, not one of {TASKS}")
    pre = meta.get(PREFIX + "preprocess", "")
    if pre != PREPROCESS_VERSION:
        raise ModelIntegrityError(
            f"{path}: made for preprocessing version {pre!r}, this runtime implements "
            f"{PREPROCESS_VERSION!r}"
        )
    size = tuple(int(v) for v in _json(meta, "input_size", path))
    context = int(_json(meta, "context", path))
    prior = bool(_json(meta, "prior", path, default=False))
    labels = tuple(_json(meta, "labels", path, default=[])) if task == "classify" else ()
    if task == "classify" and labels != LABELS:
        raise ModelIntegrityError(
            f"{path}: labels {list(labels)} are not ichinfer's {list(LABELS)}"
        )
    spec = ModelSpec(
        path=path,
        task=task,
        name=meta.get(PREFIX + "name", path.stem),
        version=meta.get(PREFIX + "version", "unknown"),
        input_name=input_name,
        output_name=output_name,
        input_size=(size[0], size[1]),
        context=context,
        prior=prior,
        slab_mm=float(_json(meta, "slab_mm", path)),
        windows=tuple(tuple(float(v) for v in w) for w in _json(meta, "windows", path, default=[])),
        thresholds={k: float(v) for k, v in _json(meta, "thresholds", path).items()},
        labels=labels,
        series_thresholds={
            k: float(v) for k, v in _json(meta, "series_thresholds", path, default={}).items()
        },
        precision=meta.get(PREFIX + "precision", "fp32"),
        training_data=meta.get(PREFIX + "training_data", ""),
        metadata=dict(meta),
    )
    _check_shapes(spec, input_shape, output_shape)
    return spec


def _check_shapes(spec: ModelSpec, input_shape: list, output_shape: list) -> None:
    if len(input_shape) != 4:
        raise ModelIntegrityError(f"{spec.path}: input must be NHWC, got shape {input_shape}")
    _, h, w, c = input_shape
    for got, want, what in (
        (h, spec.input_size[0], "height"),
        (w, spec.input_size[1], "width"),
        (c, spec.channels, "channels"),
    ):
        if isinstance(got, int) and got != want:
            raise ModelIntegrityError(
                f"{spec.path}: input {what} is {got} but the metadata implies {want}"
            )
    if spec.task == "classify":
        if output_shape[-1] not in (len(LABELS), None) and isinstance(output_shape[-1], int):
            raise ModelIntegrityError(
                f"{spec.path}: output has {output_shape[-1]} values, expected {len(LABELS)} labels"
            )
        missing = [label for label in LABELS if label not in spec.thresholds]
        if missing:
            raise ModelIntegrityError(f"{spec.path}: no default threshold for {missing}")
        if spec.series_thresholds and set(spec.series_thresholds) != set(LABELS):
            raise ModelIntegrityError(
                f"{spec.path}: series thresholds for {sorted(spec.series_thresholds)}, "
                f"expected {list(LABELS)}"
            )
