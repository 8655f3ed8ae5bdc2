"""benchmarks/render.py writes a figure next to its target without rounding it across it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _render():
    spec = importlib.util.spec_from_file_location("bench_render", ROOT / "benchmarks" / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_figure_just_short_of_its_target_keeps_the_digits_that_show_it():
    near = _render()._near
    assert near(2.4974, 2.5, "{:.2f}×") == "2.4974×"  # "2.50×" beside "not met" misleads
    assert near(0.3951, 0.4, "{:.0%}") == "39.51%"
    assert near(2.63, 2.5, "{:.2f}×") == "2.63×"  # far from the target: as before
    assert near(2.5, 2.5, "{:.2f}×") == "2.50×"  # on it: met, and shown so
    assert near(0.2775, 0.4, "{:.0%}") == "28%"
    assert near(0.4001, 0.4, "{:.0%}") == "40%"
