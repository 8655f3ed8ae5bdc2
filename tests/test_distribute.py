"""``--distribute mirrored``: MirroredStrategy over two logical CPU devices, one tiny epoch.

The logical devices must be configured before TensorFlow initialises, so the training runs in a
subprocess. Needs the [train] extra (TensorFlow).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tensorflow", reason="needs the [train] extra (pip install -e '.[train]')")
pytestmark = [pytest.mark.train, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
sys.path.insert(0, {root!r})
from training import {script}
sys.exit({script}.main(sys.argv[1:]))
"""


# the segmenter failed here when a batch split unevenly (or left a replica empty): AddN
# rejected it. Training batches are now cut to a multiple of the replica count
# (training/datasets.py: n_batches, _cut)
@pytest.mark.parametrize("script,extra", [
    ("train_classifier", ["--arch", "seed_cnn"]),
    # seed 2: 6 training slices, so batches of 5 leave a final batch of 1 (cut to 4 + dropped)
    ("train_segmenter",
     ["--crop", "0", "--monitor-slices", "8", "--seed", "2", "--batch-size", "5"]),
])
def test_mirrored_strategy_on_two_logical_cpus(labelled_phantoms, tmp_path, script, extra):
    args = ["--data", str(labelled_phantoms), "--epochs", "1", "--image-size", "32", "--batch-size",
            "8", "--val-fraction", "0.5", "--seed", "1", "--distribute", "mirrored",
            "--out", str(tmp_path / "m.keras"), *extra]
    code = SCRIPT.format(root=str(ROOT), script=script)
    # oneDNN's conv kernels fail on the second logical CPU device; plain TF kernels do not
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0"}
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         cwd=ROOT, timeout=600, env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "MirroredStrategy: 2 replicas" in out.stdout + out.stderr
    assert (tmp_path / "m.keras").exists()


def test_mirrored_needs_the_tensorflow_backend(monkeypatch):
    import keras

    from training import common

    args = common.base_parser("x", default_arch="a", default_size=32).parse_args(
        ["--data", ".", "--out", "x.keras", "--distribute", "mirrored"])
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(SystemExit, match="needs the TensorFlow Keras backend"):
        common.strategy_scope(args)
