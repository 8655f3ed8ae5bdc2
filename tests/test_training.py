"""Training and export end to end, tiny: phantoms -> a training step -> ONNX -> ichinfer.

Needs the [train] extra (TensorFlow, tf2onnx); the README's test command installs it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="needs the [train] extra (pip install -e '.[train]')")
pytestmark = [pytest.mark.train, pytest.mark.slow]

#: what every tiny training run here shares (besides --data, --epochs and --out)
TINY = ["--image-size", "32", "--batch-size", "8", "--val-fraction", "0.5", "--seed", "1"]


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
    common = ["--data", str(phantom_data), "--epochs", "1", *TINY]
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


def test_export_and_run_with_ichinfer_same_as_keras(trained, phantom_data, tmp_path, capsys):
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
                "--mask-threshold",
                "0.4",
            ]
        )
        == 0
    )
    manifest = json.loads((out / "manifest.json").read_text())
    # the segmenter's mask threshold is export's, in the metadata the runtime reads
    seg_entry = manifest["models"]["densenet_unet.onnx"]
    assert seg_entry["thresholds"] == {"mask": 0.4}
    assert "--mask-threshold" in seg_entry["threshold_rule"]
    assert ichinfer.Segmenter(out / "densenet_unet.onnx").threshold == 0.4
    assert manifest["defaults"] == {"classify": "densenet25d.onnx", "segment": "densenet_unet.onnx"}
    assert all(e["sha256"] for e in manifest["models"].values())

    clf = ichinfer.Classifier(model_dir=out, device="cpu")
    assert clf.spec.input_size == (32, 32) and clf.spec.labels == ichinfer.LABELS
    # series thresholds (step 5): scored on --data's series, never below the slice thresholds
    for name in ("densenet25d.onnx", "seed_cnn.onnx"):
        entry = manifest["models"][name]
        assert entry["series_validation"]["series"] >= 2, name
        assert all(entry["series_thresholds"][k] >= entry["thresholds"][k] for k in ichinfer.LABELS)
    assert clf.spec.series_thresholds == manifest["models"]["densenet25d.onnx"]["series_thresholds"]
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

    import onnx

    for name in manifest["models"]:
        graph = onnx.load(str(out / name)).graph
        ops = [n.op_type for n in graph.node]
        # HU are never quantized (8-bit steps of ~16 HU would erase the brain window)
        assert not _hu_quantized(graph), name
        # the HU windows are one 1x1 Conv + Clip (export.to_onnx.windows_as_conv), not
        # tf2onnx's per-window Sub, Mul and Min + Max, all slow in onnxruntime
        assert "Min" not in ops and "Max" not in ops and "Sub" not in ops, name
        window_ops = [n.op_type for n in graph.node if n.name.startswith("ichinfer_windows/")]
        assert window_ops.count("Conv") == 1, (name, window_ops)

    # candidates side by side on validation folders (training/compare_models.py)
    from training import compare_models

    capsys.readouterr()
    models = [str(out / "densenet25d.onnx"), str(out / "densenet_unet.onnx")]
    compare_models.main(["--data", str(phantom_data), "--models", *models])
    printed = capsys.readouterr().out.splitlines()
    row = [r for r in printed if "densenet25d.onnx" in r]
    assert len(row) == 1 and len(row[0].split("|")) == len(ichinfer.LABELS) + 6
    row = [r for r in printed if "densenet_unet.onnx" in r]
    assert len(row) == 1 and len(row[0].split("|")) == 4 + 4, row  # Dice, Dice, marked, area
    # a threshold sweep: one row per threshold, and a higher threshold never marks more
    compare_models.main(
        ["--data", str(phantom_data), "--models", models[1], "--mask-thresholds", "0.1", "0.9"]
    )
    rows = [r.split("|") for r in capsys.readouterr().out.splitlines() if "densenet_unet" in r]
    assert [r[2].strip() for r in rows] == ["0.10", "0.90"], rows
    marked = [float(r[6].strip().rstrip("%")) for r in rows]  # bleed-free slices marked
    assert marked[1] <= marked[0], rows

    # int8 variants are kept only when accurate, which tiny models may not be: quantize one here
    rng = np.random.default_rng(0)
    calib = rng.uniform(-1000, 1500, (8, 32, 32, 1)).astype(np.float32)
    to_onnx.quantize(out / "seed_cnn.onnx", tmp_path / "seed.int8.onnx", calib)
    graph = onnx.load(str(tmp_path / "seed.int8.onnx")).graph
    assert "QLinearConv" in [n.op_type for n in graph.node] or "QuantizeLinear" in [
        n.op_type for n in graph.node
    ]
    assert not _hu_quantized(graph)
    window_conv = [n for n in graph.node if n.name.startswith("ichinfer_windows/conv")]
    assert len(window_conv) == 1 and window_conv[0].op_type == "Conv"
    # the segmenter's BNs follow its convolutions: they fold, leaving no quantized Add / Mul
    calib = rng.uniform(-1000, 1500, (8, 32, 32, 4)).astype(np.float32)
    calib[..., 3] = calib[..., 3] > 0
    to_onnx.quantize(out / "densenet_unet.onnx", tmp_path / "unet.int8.onnx", calib)
    ops = {n.op_type for n in onnx.load(str(tmp_path / "unet.int8.onnx")).graph.node}
    assert "QLinearConv" in ops or "QuantizeLinear" in ops
    assert not ops & {"QLinearAdd", "QLinearMul", "Add", "Mul"}, ops


def test_export_update_replaces_one_model_and_keeps_the_others(trained, tmp_path):
    """--update: the models this run does not export stay listed with their files untouched;
    the replaced model's old variants go; a kept file that changed is refused."""
    import hashlib

    from export import to_onnx

    out = tmp_path / "models"
    ckpts = ["--classifier", str(trained / "densenet25d.keras"), "--segmenter",
             str(trained / "densenet_unet.keras"), "--seed-cnn", str(trained / "seed_cnn.keras")]
    assert to_onnx.main([*ckpts, "--out", str(out), "--no-quantize"]) == 0  # fmt: skip
    before = json.loads((out / "manifest.json").read_text())
    files = {f: (out / f).read_bytes() for f in ("densenet25d.onnx", "seed_cnn.onnx")}
    # a variant of the segmenter from an earlier run, which this one does not make again
    (out / "densenet_unet.int8.onnx").write_bytes(b"stale")
    before["models"]["densenet_unet.int8.onnx"] = {
        "variant_of": "densenet_unet.onnx", "precision": "int8",
        "sha256": hashlib.sha256(b"stale").hexdigest()}  # fmt: skip
    (out / "manifest.json").write_text(json.dumps(before))
    none = str(tmp_path / "none.keras")
    only_seg = ["--classifier", none, "--seed-cnn", none, "--segmenter",
                str(trained / "densenet_unet.keras"), "--out", str(out), "--no-quantize",
                "--mask-threshold", "0.7"]  # fmt: skip
    assert to_onnx.main([*only_seg, "--update"]) == 0
    after = json.loads((out / "manifest.json").read_text())
    assert sorted(after["models"]) == ["densenet25d.onnx", "densenet_unet.onnx", "seed_cnn.onnx"]
    assert not (out / "densenet_unet.int8.onnx").exists()
    assert after["models"]["densenet_unet.onnx"]["thresholds"] == {"mask": 0.7}
    assert after["defaults"] == before["defaults"]
    for f, data in files.items():
        assert (out / f).read_bytes() == data and after["models"][f] == before["models"][f], f
    # a listed file that no longer matches its sha256 stops the update before anything is written
    (out / "seed_cnn.onnx").write_bytes(files["seed_cnn.onnx"] + b"x")
    segmenter = (out / "densenet_unet.onnx").stat().st_mtime_ns
    with pytest.raises(SystemExit, match="seed_cnn.onnx: missing or its sha256 differs"):
        to_onnx.main([*only_seg, "--update"])
    assert (out / "densenet_unet.onnx").stat().st_mtime_ns == segmenter
    # a run that fails a check (here parity, at a tolerance nothing meets) changes nothing,
    # though it had written the converted file it failed on
    (out / "seed_cnn.onnx").write_bytes(files["seed_cnn.onnx"])
    everything = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(SystemExit, match="differ by"):
        to_onnx.main([*only_seg, "--update", "--tolerance", "-1"])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == everything
    # without --update the manifest lists this run's models alone
    assert to_onnx.main(only_seg) == 0
    assert list(json.loads((out / "manifest.json").read_text())["models"]) == ["densenet_unet.onnx"]


def test_soup_averages_every_weight_and_refuses_other_architectures(trained, tmp_path):
    """training/soup.py: weight * b + (1 - weight) * a for every weight; the sidecar says what
    was done; two different architectures are refused."""
    import keras

    from training import soup

    ckpt = trained / "densenet_unet.keras"
    a = keras.models.load_model(ckpt, compile=False)
    b = keras.models.clone_model(a)
    rng = np.random.default_rng(0)
    b.set_weights([w + rng.normal(0, 0.1, w.shape).astype(w.dtype) for w in a.get_weights()])
    b.save(tmp_path / "b.keras")
    (tmp_path / "b.json").write_text((trained / "densenet_unet.json").read_text())
    out = tmp_path / "soup" / "densenet_unet.keras"
    assert soup.main(["--a", str(ckpt), "--b", str(tmp_path / "b.keras"), "--weight", "0.25",
                      "--out", str(out)]) == 0  # fmt: skip
    got = keras.models.load_model(out, compile=False).get_weights()
    for g, wa, wb in zip(got, a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(g, 0.25 * wb + 0.75 * wa, rtol=1e-6, atol=1e-6)
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["soup"]["weight_b"] == 0.25 and "weights averaged" in info["training_data"]
    assert info["command"].startswith("python training/soup.py --a ")
    other = keras.models.load_model(trained / "seed_cnn.keras", compile=False)
    with pytest.raises(ValueError, match="different layers"):
        soup.soup(a, other, 0.5)


def _hu_quantized(graph) -> bool:
    """Whether a QuantizeLinear takes HU: a slice of the input, or a window's (hu - low)."""
    producer = {out: node for node in graph.node for out in node.output}
    for node in graph.node:
        if node.op_type != "QuantizeLinear":
            continue
        src = producer.get(node.input[0])
        if node.input[0] == graph.input[0].name or (
            src is not None and (src.op_type == "Sub" or graph.input[0].name in src.input)
        ):
            return True
    return False


def test_fine_tune_from_checkpoint_within_a_time_budget(trained, phantom_data, tmp_path):
    """--init starts from a checkpoint's weights; --time-budget 0 stops after the first epoch;
    --workers cuts batches in processes (two folders: caches built in parallel)."""
    import shutil

    import keras

    from training import train_classifier

    second = tmp_path / "second"
    shutil.copytree(phantom_data, second, ignore=shutil.ignore_patterns(".ichinfer_cache"))
    out = tmp_path / "ft.keras"
    args = [
        "--data", str(phantom_data), str(second), "--epochs", "5", *TINY, "--lr", "0",
        "--init", str(trained / "densenet25d.keras"), "--time-budget", "0", "--workers", "2",
        "--out", str(out),
    ]  # fmt: skip
    assert train_classifier.main(args) == 0
    info = json.loads(out.with_suffix(".json").read_text())
    assert len(info["history"]) == 1  # stopped after one epoch of five
    # learning rate 0: the trainable weights are exactly the ones it started from (batch-norm
    # statistics still move); a fresh model's differ
    start = keras.models.load_model(trained / "densenet25d.keras", compile=False)
    tuned = keras.models.load_model(out, compile=False)
    for a, b in zip(start.trainable_weights, tuned.trainable_weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    from training.models import ARCHITECTURES

    fresh = ARCHITECTURES["densenet25d"](32, context=1)
    assert any(
        not np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(start.trainable_weights, fresh.trainable_weights, strict=True)
    )


def test_keras_checkpoint_recovered_from_onnx_computes_the_same(trained, tmp_path, capsys):
    """export/from_onnx.py: the exported weights back in the Keras architecture, batch
    normalisation folded into the convolutions (the segmenter) or left as multiply-add (the
    pre-activation classifier) alike, on batch-norm statistics far from their initial ones."""
    import shutil

    import keras

    from export import from_onnx, to_onnx

    rng = np.random.default_rng(3)
    src = tmp_path / "src"
    src.mkdir()
    originals = {}
    for stem in ("densenet25d", "densenet_unet", "seed_cnn"):
        model = keras.models.load_model(trained / f"{stem}.keras", compile=False)
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                c = layer.gamma.shape[0]
                layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.3, c),
                                   rng.normal(0, 0.5, c), rng.uniform(0.3, 3.0, c)])
        model.save(src / f"{stem}.keras")
        shutil.copy(trained / f"{stem}.json", src / f"{stem}.json")
        originals[stem] = model
    out = tmp_path / "models"
    assert to_onnx.main([
        "--classifier", str(src / "densenet25d.keras"), "--segmenter",
        str(src / "densenet_unet.keras"), "--seed-cnn", str(src / "seed_cnn.keras"),
        "--out", str(out), "--no-quantize",
    ]) == 0  # fmt: skip
    rec = tmp_path / "recovered"
    assert from_onnx.main(["--model-dir", str(out), "--out", str(rec)]) == 0
    for stem, original in originals.items():
        recovered = keras.models.load_model(rec / f"{stem}.keras", compile=False)
        meta = from_onnx.read_metadata(out / f"{stem}.onnx")
        x = np.concatenate([from_onnx.sample_inputs(meta, tuple(original.input_shape[1:])),
                            from_onnx.example_inputs(meta)])
        want = np.asarray(original(x, training=False))
        got = np.asarray(recovered(x, training=False))
        np.testing.assert_allclose(got, want, atol=1e-4, err_msg=stem)
        assert json.loads((rec / f"{stem}.json").read_text())["recovered_from"] == f"{stem}.onnx"
    # a rerun replaces its own files; an original checkpoint, or a link to one, is kept
    assert from_onnx.main(["--model-dir", str(out), "--out", str(rec)]) == 0
    (rec / "seed_cnn.keras").unlink()
    (rec / "seed_cnn.keras").symlink_to(src / "seed_cnn.keras")
    shutil.copy(src / "densenet25d.keras", rec / "densenet25d.keras")
    shutil.copy(src / "densenet25d.json", rec / "densenet25d.json")
    before = {p: p.read_bytes() for p in (src / "seed_cnn.keras", rec / "densenet25d.keras")}
    assert from_onnx.main(["--model-dir", str(out), "--out", str(rec)]) == 0
    assert all(p.read_bytes() == b for p, b in before.items())
    assert "kept, not replaced" in capsys.readouterr().out
    # an int8 file is refused, naming the float32 route
    shutil.copy(out / "seed_cnn.onnx", tmp_path / "q.onnx")
    meta = from_onnx.read_metadata(out / "seed_cnn.onnx")
    to_onnx.set_metadata(tmp_path / "q.onnx",
                         {f"ichinfer.{k}": v for k, v in {**meta, "precision": "int8"}.items()})
    with pytest.raises(from_onnx.RecoveryError, match="float32"):
        from_onnx.recover(tmp_path / "q.onnx")
    # a file without ichinfer's metadata, and one that is not ONNX: one line each, exit 1
    to_onnx.set_metadata(tmp_path / "q.onnx", {"producer": "elsewhere"})
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    for stem, reason in [("q", "not exported by export/to_onnx.py"),
                         ("junk", "not a readable ONNX file"), ("absent", "no such file")]:
        assert from_onnx.main([stem, "--model-dir", str(tmp_path), "--out", str(rec)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(str(tmp_path / f"{stem}.onnx")) and reason in err, err


def test_sharpness_augmentation_blurs_or_sharpens_an_edge():
    from training.datasets import sharpness

    edge = np.zeros((32, 32, 3), np.float32)
    edge[:, 16:] = 1000.0  # a bone edge
    seen = set()
    for seed in range(40):
        out = sharpness(edge.copy(), np.random.default_rng(seed))
        assert out.shape == edge.shape and out.dtype == np.float32
        if out.max() > 1000.5:
            seen.add("sharpened")  # overshoot next to the edge, as with a bone kernel
        elif out[0, 15, 0] > 0.5:
            seen.add("blurred")  # bone spreads into the neighbouring pixel
        else:
            np.testing.assert_array_equal(out, edge)
            seen.add("unchanged")
    assert seen == {"sharpened", "blurred", "unchanged"}


def test_tversky_loss_is_the_dice_loss_at_one_half_and_weighs_misses_above():
    from training.train_segmenter import tversky_bce

    truth = np.zeros((1, 8, 8, 1), np.float32)
    truth[0, 2:6, 2:6] = 1.0  # 16 bleed pixels
    missed, extra = truth.copy(), truth.copy()
    missed[0, 2:4, 2:6] = 0.0  # 8 bleed pixels missed
    extra[0, 6:8, 2:6] = 1.0  # 8 false pixels
    p = np.clip(missed, 0.02, 0.98)
    tp = float((truth * p).sum())  # soft counts of the "missed" prediction
    fp, fn = float(p.sum()) - tp, float(truth.sum()) - tp
    dice = (2 * tp + 1) / (2 * tp + fp + fn + 1)  # the soft Dice term: TP/(TP+FP/2+FN/2)
    bce = -np.mean(truth * np.log(p) + (1 - truth) * np.log(1 - p))
    assert float(tversky_bce(0.5)(truth, p)[0]) == pytest.approx(bce + 1 - dice, rel=1e-5)
    # 8 pixels missed against 8 false ones: a higher fn_weight makes the misses cost more
    q_missed, q_extra = np.clip(missed, 0.02, 0.98), np.clip(extra, 0.02, 0.98)
    gaps = [float(f(truth, q_missed)[0] - f(truth, q_extra)[0])
            for f in (tversky_bce(0.3), tversky_bce(0.5), tversky_bce(0.7))]
    assert gaps[0] < gaps[1] < gaps[2]
    with pytest.raises(ValueError):
        tversky_bce(1.0)


@pytest.mark.parametrize("freeze", [True, False])
def test_freeze_bn_fine_tunes_the_convolutions_alone(trained, phantom_data, tmp_path, freeze):
    """--freeze-bn: batch normalisations keep their scale, shift and statistics (in inference
    mode, as a checkpoint of export/from_onnx.py needs them) while the convolutions learn;
    without it the statistics move."""
    import keras

    from training import train_segmenter

    out = tmp_path / "ft.keras"
    args = [
        "--data", str(phantom_data), "--epochs", "1", *TINY, "--crop", "16", "--lr", "1e-2",
        "--init", str(trained / "densenet_unet.keras"), "--out", str(out),
        *(["--freeze-bn"] if freeze else []),
    ]  # fmt: skip
    assert train_segmenter.main(args) == 0
    start = keras.models.load_model(trained / "densenet_unet.keras", compile=False)
    tuned = keras.models.load_model(out, compile=False)
    bn_same, conv_same = [], []
    for a, b in zip(start.layers, tuned.layers, strict=True):
        same = all(np.array_equal(np.asarray(u), np.asarray(v))
                   for u, v in zip(a.weights, b.weights, strict=True))
        if isinstance(a, keras.layers.BatchNormalization):
            bn_same.append(same)
        elif isinstance(a, keras.layers.Conv2D):
            conv_same.append(same)
    assert bn_same and conv_same
    assert not all(conv_same)
    assert all(bn_same) if freeze else not any(bn_same)


def test_oversample_repeats_the_slices_positive_for_a_label():
    """--oversample subarachnoid=3: those training slices three times each, a slice positive for
    two oversampled labels as often as the larger count, unknown labels (NaN) never."""
    from types import SimpleNamespace

    from ichinfer.labels import LABELS
    from training.datasets import oversampled

    sah, sdh = LABELS.index("subarachnoid"), LABELS.index("subdural")
    labels = np.zeros((4, len(LABELS)), np.float32)
    labels[1, sah] = labels[2, sah] = labels[2, sdh] = labels[3, sdh] = 1.0
    series = [SimpleNamespace(labels=labels),
              SimpleNamespace(labels=np.full((2, len(LABELS)), np.nan, np.float32))]
    samples = np.array([[0, 0], [0, 1], [0, 2], [0, 3], [1, 0], [1, 1]])
    out = oversampled(series, samples, {"subarachnoid": 3, "subdural": 2})
    counts = {tuple(r): int((out == r).all(axis=1).sum()) for r in samples}
    assert counts == {(0, 0): 1, (0, 1): 3, (0, 2): 3, (0, 3): 2, (1, 0): 1, (1, 1): 1}
    assert (oversampled(series, samples, {}) == samples).all()
