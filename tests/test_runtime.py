"""Models and sessions: manifest + sha256, metadata contract, providers, the session cache."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
from tiny_models import tiny_classifier, write_model_dir

import ichinfer
from ichinfer import models, runtime


def test_locate_uses_argument_then_environment(tiny_model_dir, monkeypatch, tmp_path):
    assert (
        models.locate("classify", model_dir_override=tiny_model_dir).name == "tiny_classifier.onnx"
    )
    monkeypatch.setenv(models.MODEL_DIR_ENV, str(tiny_model_dir))
    assert models.locate("segment").name == "tiny_segmenter.onnx"
    monkeypatch.setenv(models.MODEL_DIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(ichinfer.ModelNotFoundError, match="ICHINFER_MODEL_DIR"):
        models.locate("segment")


def test_sha256_mismatch_is_refused(tiny_model_dir, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder)
    with open(folder / "tiny_classifier.onnx", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ichinfer.ModelIntegrityError, match="sha256"):
        models.locate("classify", model_dir_override=folder)


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"labels": json.dumps(["any", "epidural"])}, "labels"),
        ({"preprocess": "99"}, "preprocessing version"),
        ({"input_size": json.dumps([64, 64])}, "height"),
        ({"context": json.dumps(2)}, "channels"),
        ({"series_thresholds": json.dumps({"any": 0.5})}, "series thresholds"),
    ],
)
def test_metadata_contract_is_checked(tmp_path, meta, message):
    path = tmp_path / "bad.onnx"
    onnx.save(tiny_classifier(32, meta=meta), str(path))
    with pytest.raises(ichinfer.ModelIntegrityError, match=message):
        runtime.get_session(path, device="cpu")


def test_spec_comes_from_metadata(tiny_model_dir):
    session = runtime.get_session(tiny_model_dir / "tiny_classifier.onnx", device="cpu")
    assert session.spec.labels == ichinfer.LABELS
    assert session.spec.input_size == (32, 32) and session.spec.context == 1
    assert session.spec.input_name == "hu" and session.providers == ["CPUExecutionProvider"]


def test_cpu_sessions_plan_no_memory_pattern(tiny_model_dir):
    # the per-shape activation block roughly doubled the segmenter's peak memory on CPU
    session = runtime.get_session(tiny_model_dir / "tiny_classifier.onnx", device="cpu")
    assert session._session.get_session_options().enable_mem_pattern is False


@pytest.mark.parametrize("name", ["tiny_classifier.onnx", "tiny_segmenter.onnx"])
def test_cpu_batches_run_in_lanes_with_the_same_outputs(tiny_model_dir, name):
    # a batch of at least `lanes` slices runs one slice per run on parallel single-threaded
    # runs; a smaller batch runs whole on the session's threads
    runtime.clear_cache()  # a fresh session: an earlier test may have run this one in lanes
    session = runtime.get_session(tiny_model_dir / name, device="cpu", threads=2)
    assert session.lanes == 2
    size, channels = session.spec.input_size[0], session.spec.channels
    x = np.random.default_rng(0).uniform(-1000, 2000, (5, size, size, channels))
    x = x.astype(np.float32)
    whole = session._session.run([session.spec.output_name], {session.spec.input_name: x})[0]
    assert session._single is None
    assert session.run(x[:1]).shape == whole[:1].shape and session._single is None
    lanes = session.run(x)
    assert session._single is not None
    assert lanes.shape == whole.shape
    np.testing.assert_allclose(lanes, whole, rtol=1e-5, atol=1e-5)


def test_sessions_are_cached_per_providers_and_threads(tiny_model_dir):
    path = tiny_model_dir / "tiny_classifier.onnx"
    a = runtime.get_session(path, device="cpu", threads=1)
    assert runtime.get_session(path, device="cpu", threads=1) is a
    assert runtime.get_session(path, device="cpu", threads=2) is not a


def test_cuda_that_cannot_be_honoured_lists_providers(monkeypatch):
    monkeypatch.setattr(runtime, "available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(ichinfer.ProviderUnavailableError, match="CPUExecutionProvider"):
        runtime.resolve_providers("cuda")
    assert runtime.resolve_providers("auto") == ["CPUExecutionProvider"]
    with pytest.raises(ValueError):
        runtime.resolve_providers("tpu")


def test_device_and_threads_from_environment(monkeypatch):
    monkeypatch.setenv(runtime.DEVICE_ENV, "cpu")
    monkeypatch.setenv(runtime.THREADS_ENV, "3")
    assert runtime.resolve_providers() == ["CPUExecutionProvider"]
    assert runtime.resolve_threads(None) == 3 and runtime.resolve_threads(1) == 1


def test_explicit_file_outside_a_manifest_is_accepted(tmp_path):
    write_model_dir(tmp_path / "src")
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(tmp_path / "src" / "tiny_classifier.onnx", lone / "mine.onnx")
    assert models.locate("classify", model=lone / "mine.onnx") == lone / "mine.onnx"


def test_bundled_int8_classifiers_carry_their_own_thresholds():
    """export/to_onnx.py sets an int8 classifier's thresholds on its own validation scores
    (quantization moves scores near a threshold) and records them in the manifest."""
    folder = models.bundled_model_dir()
    manifest = json.loads((folder / "manifest.json").read_text())
    variants = [
        (name, entry)
        for name, entry in manifest["models"].items()
        if entry["precision"] == "int8" and entry["task"] == "classify"
    ]
    if not variants:
        pytest.skip("no int8 classifier among the bundled models")
    for name, entry in variants:
        meta = {p.key: p.value for p in onnx.load(str(folder / name)).metadata_props}
        assert json.loads(meta["ichinfer.thresholds"]) == entry["thresholds"], name


def test_bundled_classifiers_carry_series_thresholds():
    """Every bundled classifier's verdict has its own series-level operating point
    (export/to_onnx.py --series-data), at or above its slice thresholds, as the manifest says."""
    folder = models.bundled_model_dir()
    manifest = json.loads((folder / "manifest.json").read_text())
    classifiers = [n for n, e in manifest["models"].items() if e["task"] == "classify"]
    assert classifiers
    for name in classifiers:
        entry = manifest["models"][name]
        meta = {p.key: p.value for p in onnx.load(str(folder / name)).metadata_props}
        series = json.loads(meta["ichinfer.series_thresholds"])
        assert series == entry["series_thresholds"], name
        assert all(series[k] >= entry["thresholds"][k] for k in series), name
        assert runtime.get_session(folder / name).spec.series_thresholds == series


def test_release_memory_leaves_the_outputs_as_they_were(tiny_model_dir):
    # one run with onnxruntime's arena shrinkage; the runs after it compute the same
    session = runtime.get_session(tiny_model_dir / "tiny_segmenter.onnx", device="cpu")
    size, channels = session.spec.input_size[0], session.spec.channels
    x = np.random.default_rng(1).uniform(-1000, 2000, (4, size, size, channels))
    before = session.run(x.astype(np.float32))
    session.release_memory()
    np.testing.assert_array_equal(session.run(x.astype(np.float32)), before)
