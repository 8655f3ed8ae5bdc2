"""Training and export end to end, tiny: phantoms -> a training step -> ONNX -> ichinfer.

Needs the [train] extra (TensorFlow, tf2onnx); the README's test command installs it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="needs the [train] extra (pip install -e '.[train]')")
pytestmark = [pytest.mark.train, pytest.mark.slow]


@pytest.fixture(scope="module")
def phantom_data(tmp_path_factory):
    from training.synth import make_study, write_label_csv, write_studies_csv, write_study

    root = tmp_path_factory.mktemp("phantoms")
    records = [
        write_study(
            make_study(500 + i, size=96, positive=i % 2 == 0, thin=i == 1), root, study_index=i
        )
        for i in range(6)
    ]
    write_label_csv(records, root / "stage_2_train.csv")
    write_studies_csv(records, root / "studies.csv")
    return root


@pytest.fixture(scope="module")
def trained(phantom_data, tmp_path_factory):
    from training import train_classifier, train_segmenter

    runs = tmp_path_factory.mktemp("runs")
    common = [
        "--data",
        str(phantom_data),
        "--epochs",
        "1",
        "--image-size",
        "32",
        "--batch-size",
        "8",
        "--val-fraction",
        "0.5",
        "--seed",
        "1",
    ]
    assert (
        train_classifier.main(
            [*common, "--arch", "densenet25d", "--out", str(runs / "densenet25d.keras")]
        )
        == 0
    )
    assert (
        train_classifier.main(
            [*common, "--arch", "seed_cnn", "--out", str(runs / "seed_cnn.keras")]
        )
        == 0
    )
    assert (
        train_segmenter.main([*common, "--crop", "16", "--out", str(runs / "densenet_unet.keras")])
        == 0
    )
    return runs


def test_sidecars_hold_validation_figures(trained):
    info = json.loads((trained / "densenet25d.json").read_text())
    from ichinfer import LABELS

    assert set(info["validation"]["auc"]) == set(LABELS)
    assert info["context"] == 1 and info["image_size"] == 32
    seg = json.loads((trained / "densenet_unet.json").read_text())
    assert 0.0 <= seg["validation"]["dice_pooled"] <= 1.0


def test_export_and_run_with_ichinfer_same_as_keras(trained, phantom_data, tmp_path):
    import keras

    import ichinfer
    from export import to_onnx
    from ichinfer import preprocess as pp

    out = tmp_path / "models"
    assert (
        to_onnx.main(
            [
                "--classifier",
                str(trained / "densenet25d.keras"),
                "--segmenter",
                str(trained / "densenet_unet.keras"),
                "--seed-cnn",
                str(trained / "seed_cnn.keras"),
                "--out",
                str(out),
                "--data",
                str(phantom_data),
                "--calibration",
                "16",
            ]
        )
        == 0
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["defaults"] == {"classify": "densenet25d.onnx", "segment": "densenet_unet.onnx"}
    assert all(e["sha256"] for e in manifest["models"].values())

    clf = ichinfer.Classifier(model_dir=out, device="cpu")
    assert clf.spec.input_size == (32, 32) and clf.spec.labels == ichinfer.LABELS
    series = ichinfer.read_series(
        next(iter(sorted((phantom_data / "stage_2_train").glob("*.dcm"))))
    )
    result = clf.classify(series.slices[0].path)
    # the same input through Keras
    model = keras.models.load_model(trained / "densenet25d.keras", compile=False)
    grid = pp.to_model_grid(series.load_hu(0), 32)[None]
    x = pp.model_inputs(grid, series.locations_mm, [0], slab_mm=5.0, context=1)
    want = np.asarray(model(x, training=False))[0]
    got = np.array([result.slices[0].probabilities[k] for k in ichinfer.LABELS])
    np.testing.assert_allclose(got, want, atol=1e-4)

    seg = ichinfer.segment(phantom_data / "stage_2_train", model=out / "densenet_unet.onnx")
    assert seg.slices and seg.slices[0].mask.dtype == np.uint8
