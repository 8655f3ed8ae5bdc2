"""The runtime stays light: ``import ichinfer`` never loads TensorFlow or Keras."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys, ichinfer
ichinfer.classify, ichinfer.segment, ichinfer.Classifier, ichinfer.Segmenter
import ichinfer.cli, ichinfer.dicom, ichinfer.overlay, ichinfer.runtime
print(",".join(m for m in ("tensorflow", "keras", "tf2onnx", "ray", "pyarrow") if m in sys.modules))
"""


def test_import_ichinfer_leaves_tensorflow_and_keras_out():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_bare_import_is_lazy():
    code = "import sys, ichinfer; print('onnxruntime' in sys.modules, 'pydicom' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_decode_workers_leave_onnxruntime_out():
    """Decode worker processes import the module their task names and nothing of inference:
    onnxruntime in each of them would be memory for nothing (benchmarks/README.md)."""
    code = (
        "import sys, ichinfer.decode_worker, ichinfer.pipeline\n"
        "w = ichinfer.pipeline.decode_file\n"
        "print(w.__module__, 'onnxruntime' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["ichinfer.decode_worker", "True"]  # pipeline itself needs it
    code = "import sys, ichinfer.decode_worker; print('onnxruntime' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
