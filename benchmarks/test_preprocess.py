"""Preprocessing per slice: onto the model grid, model inputs (slabs + context), the prior."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ichinfer import dicom
from ichinfer.pipeline import PreparedSeries
from ichinfer.preprocess import model_inputs, sample_indices, to_model_grid, with_prior


@pytest.fixture(scope="module")
def cq500_prepared(cq500: Path) -> PreparedSeries:
    prepared = PreparedSeries(dicom.read_series(str(cq500)))
    prepared.decode([192])
    return prepared


def test_to_model_grid(benchmark, cq500_prepared: PreparedSeries) -> None:
    """One 512² HU slice to the 192² model grid (pad to square, area resize)."""
    hu = cq500_prepared.series.load_hu(100)
    benchmark.group = "preprocess one slice"
    benchmark.extra_info.update(shape=list(hu.shape), size=192)
    benchmark(to_model_grid, hu, 192)


@pytest.mark.parametrize("task", ["classify", "segment"])
def test_model_inputs_one_slice(benchmark, cq500_prepared: PreparedSeries, classifier, segmenter,
                                task: str) -> None:
    """Slab averages and ± context slabs for one sampled slice of the thin CQ500 series
    (+ the dense-area prior channel for the segmenter)."""
    spec = (classifier if task == "classify" else segmenter).spec
    grid = cq500_prepared.grid(spec.input_size[0])
    loc = cq500_prepared.locations_mm
    sampled = sample_indices(loc, spec.slab_mm)
    i = np.array([sampled[len(sampled) // 2]])

    def build() -> np.ndarray:
        x = model_inputs(grid, loc, i, slab_mm=spec.slab_mm, context=spec.context)
        return with_prior(x, spec.context) if spec.prior else x

    benchmark.group = "preprocess one slice"
    benchmark.extra_info.update(model=spec.path.name, channels=spec.channels, prior=spec.prior)
    assert benchmark(build).shape[-1] == spec.channels
