"""training/evaluate.py's series-level figures (the verdict), with tiny models."""

from __future__ import annotations

import json

import onnx
import pytest
from tiny_models import tiny_classifier

from ichinfer.labels import LABELS


@pytest.mark.parametrize("series_threshold", [0.0, 1.01])
def test_series_figures_follow_the_verdict_thresholds(labelled_phantoms, tmp_path,
                                                     series_threshold):
    from training.evaluate import evaluate_classifier

    model = tmp_path / "tiny.onnx"
    meta = {"thresholds": json.dumps(dict.fromkeys(LABELS, 1.01)),  # no slice ever flagged
            "series_thresholds": json.dumps(dict.fromkeys(LABELS, series_threshold))}
    onnx.save(tiny_classifier(meta=meta), model)
    series = evaluate_classifier(model, labelled_phantoms)["series"]
    assert series["series"] == 4 and series["bleed_free_series"] == 2
    assert series["any"]["positive_series"] == 2
    every = series_threshold == 0.0  # 0: every series called; above 1: none
    for k in LABELS:
        row = series[k]
        assert row["verdict"]["threshold"] == series_threshold
        assert row["verdict"]["specificity"] == (0.0 if every else 1.0)
        if row["positive_series"]:
            assert row["verdict"]["sensitivity"] == (1.0 if every else 0.0)
            assert row["at_slice_threshold"]["sensitivity"] == 0.0
        assert row["at_slice_threshold"]["specificity"] == 1.0
