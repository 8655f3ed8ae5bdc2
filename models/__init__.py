"""The bundled ONNX models (installed as ``ichinfer.models``); see README.md here."""
