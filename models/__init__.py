"""The bundled ONNX models (installed as ``ichinfer.bundled_models``); see README.md here."""
