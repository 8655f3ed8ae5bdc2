"""Fixtures for the benchmarks: model sessions, series on disk, machine facts.

Run with ``pytest benchmarks --benchmark-only`` (not part of the default test run). Sessions,
models and series are built in fixtures so that set-up is never timed.

Where things come from (option → environment → default):
  models           ``--model-dir``  → ``ICHINFER_MODEL_DIR`` → the bundled ``models/``
  Keras checkpoints ``--keras-dir`` → ``ICHINFER_KERAS_DIR`` → ``runs/``
  real scans       ``../shared/data`` beside the repository (tests that need it skip without it)
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
CQ500 = SHARED / "cq500-ct0"
RSNA = SHARED / "rsna-samples"
PHANTOM = REPO / "examples" / "phantom-ct"
KERAS_DIR_ENV = "ICHINFER_KERAS_DIR"
BATCH_SIZES = (1, 8, 32)


def pytest_configure(config: pytest.Config) -> None:
    """JPEG Lossless through pylibjpeg, as in the base install, unless a benchmark (the ``gdcm``
    and ``imagecodecs`` variants) says otherwise: the environment that runs these may have the
    ``[gdcm]`` or ``[imagecodecs]`` extra."""
    from ichinfer.dicom import JPEG_LOSSLESS_DECODER_ENV

    os.environ.setdefault(JPEG_LOSSLESS_DECODER_ENV, "pylibjpeg")


def gdcm_or_skip() -> None:
    from ichinfer.dicom import gdcm_installed

    if not gdcm_installed():
        pytest.skip("python-gdcm is not installed (pip install '.[gdcm]')")


def extra_or_skip(decoder: str) -> None:
    """Skip unless the JPEG Lossless decoder ``decoder`` (pylibjpeg or an extra) is installed."""
    from ichinfer.dicom import imagecodecs_installed

    if decoder == "gdcm":
        gdcm_or_skip()
    elif decoder == "imagecodecs" and not imagecodecs_installed():
        pytest.skip("imagecodecs is not installed (pip install '.[imagecodecs]')")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ichinfer benchmarks")
    group.addoption("--model-dir", default=None,
                    help="ONNX model folder (default: ICHINFER_MODEL_DIR, then models/)")
    group.addoption("--keras-dir", default=None,
                    help=f"Keras checkpoints (default: {KERAS_DIR_ENV}, then runs/)")


def _model_dir(config: pytest.Config) -> Path:
    chosen = config.getoption("--model-dir") or os.environ.get("ICHINFER_MODEL_DIR")
    return Path(chosen) if chosen else REPO / "models"


def _manifest(config: pytest.Config) -> dict | None:
    path = _model_dir(config) / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``model_file``: every ONNX file in the manifest (fp32, int8 and fp16 variants alike)."""
    if "model_file" in metafunc.fixturenames:
        manifest = _manifest(metafunc.config)
        names = sorted(manifest["models"]) if manifest else ["(no manifest)"]
        metafunc.parametrize("model_file", names)


# --------------------------------------------------------------------------------------------
# machine facts


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def physical_cores() -> int:
    """Distinct (physical id, core id) pairs in /proc/cpuinfo; os.cpu_count() elsewhere."""
    try:
        pairs, phys = set(), "0"
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "physical id":
                phys = value.strip()
            elif key == "core id":
                pairs.add((phys, value.strip()))
        if pairs:
            return len(pairs)
    except OSError:
        pass
    return os.cpu_count() or 1


def machine_facts() -> dict:
    import onnxruntime as ort

    return {
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "physical_cores": physical_cores(),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        **{name: _version(name) for name in ("pydicom", "opencv-python-headless")},
    }


def _version(distribution: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def pytest_benchmark_update_machine_info(config, machine_info: dict) -> None:
    machine_info["ichinfer"] = {
        **machine_facts(),
        "model_dir": str(_model_dir(config)),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


def session_info(session) -> dict:
    """What to record with every timing: where and how the model ran."""
    return {"provider": session.providers[0], "providers": list(session.providers),
            "intra_op_threads": session.threads or f"0 (onnxruntime default: "
                                                    f"{physical_cores()} physical cores)",
            "lanes": session.lanes,
            "model": session.spec.path.name, "precision": session.spec.precision,
            "physical_cores": physical_cores()}


# --------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="session")
def model_dir(pytestconfig: pytest.Config) -> Path:
    path = _model_dir(pytestconfig)
    if not (path / "manifest.json").exists():
        pytest.skip(f"no models: {path}/manifest.json is absent (train and export them, or pass "
                    "--model-dir / ICHINFER_MODEL_DIR)")
    return path


@pytest.fixture(scope="session")
def manifest(model_dir: Path) -> dict:
    return json.loads((model_dir / "manifest.json").read_text())


@pytest.fixture(scope="session")
def keras_dir(pytestconfig: pytest.Config) -> Path:
    chosen = pytestconfig.getoption("--keras-dir") or os.environ.get(KERAS_DIR_ENV)
    return Path(chosen) if chosen else REPO / "runs"


@pytest.fixture(scope="session")
def classifier(model_dir: Path):
    from ichinfer.classification import Classifier

    return Classifier(model_dir=model_dir, device="cpu")


@pytest.fixture(scope="session")
def segmenter(model_dir: Path):
    from ichinfer.segmentation import Segmenter

    return Segmenter(model_dir=model_dir, device="cpu")


@pytest.fixture(scope="session")
def cq500() -> Path:
    if not CQ500.is_dir():
        pytest.skip(f"{CQ500} is absent (real CQ500 series; see ../shared/data/README.md)")
    return CQ500


@pytest.fixture(scope="session")
def rsna() -> Path:
    if not RSNA.is_dir():
        pytest.skip(f"{RSNA} is absent (real RSNA slices; see ../shared/data/README.md)")
    return RSNA


@pytest.fixture(scope="session")
def phantom() -> Path:
    if not PHANTOM.is_dir():
        pytest.skip(f"{PHANTOM} is absent")
    return PHANTOM


@pytest.fixture(scope="session")
def series40(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-slice uncompressed (Explicit VR Little Endian, 512²) synthetic head CT series.

    ``training.synth`` seed 55 gives a 40-slice 4.8 mm series (since a5c415a, where the head
    follows the gantry tilt, seed 6 gives 38 slices); any slices past 40 would be removed.
    """
    from ichinfer.dicom import read_series
    from training.synth import make_study, write_study

    out = tmp_path_factory.mktemp("series40")
    write_study(make_study(55, size=512, thin=False), out)
    folder = out / "stage_2_train"
    for info in read_series(folder).slices[40:]:
        Path(info.path).unlink()
    assert len(read_series(folder).slices) == 40
    return folder


def random_hu(batch: int, size: int, channels: int, seed: int = 0) -> np.ndarray:
    """Head-CT-like HU values (air, brain, bone) as a float32 NHWC batch."""
    rng = np.random.default_rng(seed)
    x = rng.choice(np.array([-1000.0, 40.0, 60.0, 800.0], dtype=np.float32),
                   size=(batch, size, size, channels), p=[0.3, 0.55, 0.05, 0.1])
    return x.astype(np.float32)
