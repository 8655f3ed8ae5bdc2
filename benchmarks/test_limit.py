"""The machine's float32 matrix-multiply rate, measured in the same run as the models.

``render.py`` divides each model's FLOPs per second (``flops.py`` × batch / time) by this;
``test_inference.py::test_flop_rate_paired`` times the two alternately, pair by pair.
"""

from __future__ import annotations

import numpy as np

N = 2048


def matmul_operands() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two random N × N float32 matrices and the array their product is written into."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((N, N), dtype=np.float32)
    b = rng.standard_normal((N, N), dtype=np.float32)
    return a, b, np.empty((N, N), dtype=np.float32)


def test_numpy_matmul(benchmark) -> None:
    a, b, out = matmul_operands()
    benchmark.group = "machine limit"
    benchmark.extra_info.update(n=N, flops=2 * N**3, dtype="float32",
                                blas=_blas_name())
    benchmark(np.matmul, a, b, out=out)


def _blas_name() -> str:
    try:
        info = np.show_config(mode="dicts")
        return str(info["Build Dependencies"]["blas"].get("name", "unknown"))
    except Exception:  # noqa: BLE001 - numpy's config layout varies between versions
        return "unknown"
