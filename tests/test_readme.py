"""The README's Python example prints what the README says it prints (bundled models)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _block(text: str, opening: str, after: str) -> str:
    start = text.index(opening, text.index(after)) + len(opening)
    return text[start : text.index("```", start)]


def test_python_example_output_is_as_documented(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    code = _block(readme, "```python\n", "## Python")
    expected = _block(readme, "```text\n", "Output (bundled models")
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ICHINFER_")}
    env["PYTHONPATH"] = str(ROOT)
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout == expected
    assert (tmp_path / "overlay.png").stat().st_size > 0
