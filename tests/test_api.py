"""The public API, called the way README.md shows it (with tiny test models)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import ichinfer
from ichinfer import preprocess as pp


def test_labels():
    assert ichinfer.LABELS == (
        "any",
        "epidural",
        "intraparenchymal",
        "intraventricular",
        "subarachnoid",
        "subdural",
    )


def test_classify_a_folder(phantom_study, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("ICHINFER_MODEL_DIR", str(tiny_model_dir))
    result = ichinfer.classify(phantom_study.folder)
    assert set(result.probabilities) == set(ichinfer.LABELS)
    assert len(result.slices) == phantom_study.n_slices
    locs = [s.location_mm for s in result.slices]
    assert locs == sorted(locs, reverse=True)  # head to foot
    assert all(s.path.endswith(".dcm") for s in result.slices)
    series = result.series[0]
    assert series.verdict.keys() == series.probabilities.keys()
    assert result.probabilities["any"] == max(s.probabilities["any"] for s in result.slices)
    json.dumps(result.to_dict())


def test_classify_a_file_and_a_list(phantom_study, tiny_model_dir):
    files = sorted(phantom_study.folder.glob("*.dcm"))
    one = ichinfer.classify(files[0], model=tiny_model_dir / "tiny_classifier.onnx")
    assert len(one.slices) == 1
    two = ichinfer.classify(files[:2], model=tiny_model_dir / "tiny_classifier.onnx")
    assert len(two.slices) == 2


def test_classifier_class_reuses_its_session(phantom_study, tiny_model_dir):
    clf = ichinfer.Classifier(model_dir=tiny_model_dir, device="cpu", threads=1, batch_size=2)
    first = clf.classify(phantom_study.folder)
    again = list(clf.iter_series(phantom_study.folder))
    assert (
        clf.session
        is ichinfer.Classifier(model_dir=tiny_model_dir, device="cpu", threads=1).session
    )
    assert [s.probabilities for s in first.slices] == [s.probabilities for s in again[0].slices]


def test_tiny_classifier_output_is_what_its_graph_computes(phantom_study, tiny_model_dir):
    """End to end through preprocessing: the tiny model averages the windowed centre slab."""
    from ichinfer import preprocess as pp

    res = ichinfer.classify(phantom_study.folder, model=tiny_model_dir / "tiny_classifier.onnx")
    series = ichinfer.read_series(phantom_study.folder)
    k = len(series.slices) // 2
    grid = pp.to_model_grid(pp.clean_hu(series.load_hu(k)), 32)
    m = np.clip(grid / 80.0, 0, 1).mean()
    expected = 1 / (1 + np.exp(-4.0 * (m - 0.25)))
    assert res.slices[k].probabilities["any"] == pytest.approx(expected, abs=1e-5)


def test_segment_masks_areas_volume_overlay(phantom_study, tiny_model_dir):
    result = ichinfer.segment(phantom_study.folder, model=tiny_model_dir / "tiny_segmenter.onnx")
    sl = result.slices[len(result.slices) // 2]
    info = ichinfer.read_series(phantom_study.folder).slices[sl.index]
    assert sl.mask.dtype == np.uint8 and sl.mask.shape == (info.rows, info.columns)
    assert sl.area_mm2 == pytest.approx(sl.mask.sum() * np.prod(info.pixel_spacing_mm))
    assert result.series[0].volume_ml is not None and result.series[0].volume_ml > 0
    rgb = result.overlay(sl.index)
    assert rgb.shape == (info.rows, info.columns, 3) and rgb.dtype == np.uint8
    m = sl.mask.astype(bool)
    if m.any():  # bleed pixels are blue-dominant
        assert (rgb[m][:, 2] > rgb[m][:, 0]).all()
    json.dumps(result.to_dict())


def test_bad_input_raises_ichinfer_error_naming_the_file(tmp_path, tiny_model_dir):
    bad = tmp_path / "junk.dcm"
    bad.write_bytes(b"not a dicom file at all" * 10)
    with pytest.raises(ichinfer.InvalidInputError, match="junk.dcm"):
        ichinfer.classify(bad, model=tiny_model_dir / "tiny_classifier.onnx")
    with pytest.raises(ichinfer.IchInferError):
        ichinfer.classify(tmp_path / "missing", model=tiny_model_dir / "tiny_classifier.onnx")


def test_collect_keeps_going(phantom_study, tiny_model_dir, tmp_path):
    bad = tmp_path / "junk.dcm"
    bad.write_bytes(b"\0" * 300)
    result = ichinfer.classify(
        [phantom_study.folder, bad],
        on_error="collect",
        model=tiny_model_dir / "tiny_classifier.onnx",
    )
    assert len(result.slices) == phantom_study.n_slices
    assert [f.path for f in result.failures] == [str(bad)]
    assert not result.ok


def test_verdict_holds_the_highest_slice_to_the_series_threshold(phantom_study, tmp_path):
    """Slices are flagged at the slice thresholds, the series verdict at its series
    thresholds; thresholds a user sets govern both for their labels."""
    import onnx
    from tiny_models import tiny_classifier

    model = tmp_path / "tiny_classifier.onnx"
    onnx.save(tiny_classifier(meta={"thresholds": json.dumps(dict.fromkeys(ichinfer.LABELS, 0.3)),
                                    "series_thresholds": json.dumps(
                                        dict.fromkeys(ichinfer.LABELS, 0.4))}), model)
    clf = ichinfer.Classifier(model)
    assert clf.spec.series_thresholds == dict.fromkeys(ichinfer.LABELS, 0.4)
    series = clf.classify(phantom_study.folder).series[0]
    probs = series.probabilities
    assert series.verdict == {k: probs[k] >= 0.4 for k in ichinfer.LABELS}
    # the tiny model's labels differ only in slope: on this series some highest probability
    # lies between the two thresholds, so the two operating points give different verdicts
    between = [k for k in ichinfer.LABELS if 0.3 <= probs[k] < 0.4]
    assert between, probs
    assert not any(series.verdict[k] for k in between)
    assert any(s.probabilities[between[0]] >= series.thresholds[between[0]] for s in series.slices)
    assert series.to_dict()["series_thresholds"] == dict.fromkeys(ichinfer.LABELS, 0.4)

    k = between[0]
    own = ichinfer.classify(phantom_study.folder, model=model, thresholds={k: 0.3}).series[0]
    assert own.verdict[k] and own.verdict_thresholds[k] == 0.3
    assert all(own.verdict_thresholds[o] == 0.4 for o in ichinfer.LABELS if o != k)
    both = ichinfer.classify(phantom_study.folder, model=model,
                             thresholds={"thresholds": {k: 0.3}, "series_thresholds": {k: 0.5}})
    assert both.series[0].thresholds[k] == 0.3 and not both.series[0].verdict[k]


def test_thin_series_masks_lie_between_the_sampled_slabs_around_them(tmp_path, tiny_model_dir):
    from training.synth import make_study, write_study

    write_study(make_study(11, size=64, positive=True, thin=True), tmp_path)
    folder = tmp_path / "stage_2_train"
    model = tiny_model_dir / "tiny_segmenter.onnx"
    with pytest.raises(ValueError, match="between"):
        ichinfer.Segmenter(model, between="cubic")
    near = ichinfer.Segmenter(model, between="nearest").segment(folder).series[0]
    inter = ichinfer.Segmenter(model).segment(folder).series[0]
    loc = np.array([s.location_mm for s in inter.slices])
    sampled = pp.sample_indices(loc, 5.0)
    assert 1 < len(sampled) < len(loc)  # a thin series, sampled
    masks = [s.mask.astype(bool) for s in inter.slices]
    # sampled slices: their own mask in both modes; nearest: the nearest sampled slice's mask
    nearest = sampled[pp.nearest_sampled(loc, sampled)]
    for i in range(len(loc)):
        assert np.array_equal(near.slices[i].mask, near.slices[nearest[i]].mask)
    for i in sampled:
        assert np.array_equal(inter.slices[i].mask, near.slices[i].mask)
    # between two sampled slices: at least where both mark, at most where either does
    lo, hi, _ = pp.between_sampled(loc, sampled)
    for i in range(len(loc)):
        a, b = masks[sampled[lo[i]]], masks[sampled[hi[i]]]
        assert not (a & b & ~masks[i]).any() and not (masks[i] & ~(a | b)).any(), i
    assert any(m.any() for m in masks)


class _StubSession:
    """A 'model' that is not mirror-symmetric: the input's first channel weighted by column."""

    def __init__(self, spec, image_output: bool) -> None:
        self.spec, self.image_output, self.batches = spec, image_output, []

    def run(self, x: np.ndarray) -> np.ndarray:
        self.batches.append(len(x))
        y = x[..., :1] * np.arange(1, x.shape[2] + 1, dtype=np.float32)[None, None, :, None]
        return y if self.image_output else y.mean(axis=(1, 2))


@pytest.mark.parametrize("image_output", [True, False])
def test_mirroring_averages_the_output_of_the_mirrored_input(phantom_study, tiny_model_dir,
                                                             image_output):
    from ichinfer.pipeline import PreparedSeries, run_batched

    seg = ichinfer.Segmenter(model_dir=tiny_model_dir)
    prepared = PreparedSeries(ichinfer.read_series(phantom_study.folder))
    idx = np.arange(len(prepared.series.slices))
    stub = _StubSession(seg.spec, image_output)
    plain = run_batched(stub, prepared, idx, batch_size=3)
    mirrored_input = _StubSession(seg.spec, image_output)
    mirrored_input.run = lambda x: _StubSession.run(mirrored_input, x[:, :, ::-1])
    of_mirror = run_batched(mirrored_input, prepared, idx, batch_size=3)
    if image_output:
        of_mirror = of_mirror[:, :, ::-1]  # back onto the slice's own orientation
    stub.batches.clear()
    both = run_batched(stub, prepared, idx, batch_size=3, mirror=True)
    assert not np.allclose(plain, of_mirror)  # the stub tells the two apart
    np.testing.assert_allclose(both, (plain + of_mirror) / 2, rtol=1e-6)
    assert stub.batches == [6] * (len(idx) // 3) + ([2 * (len(idx) % 3)] if len(idx) % 3 else [])


def test_segment_with_mirroring(phantom_study, tiny_model_dir):
    """The tiny segmenter (its output is the 50-90 HU prior) commutes with mirroring, so the
    mirrored run must mark the same pixels; mirroring is recorded with the result."""
    plain = ichinfer.Segmenter(model_dir=tiny_model_dir).segment(phantom_study.folder)
    both = ichinfer.segment(phantom_study.folder, model=tiny_model_dir / "tiny_segmenter.onnx",
                            mirror=True)
    assert any(s.mask.any() for s in plain.series[0].slices)
    for a, b in zip(plain.series[0].slices, both.series[0].slices, strict=True):
        np.testing.assert_array_equal(a.mask, b.mask)
    assert both.series[0].n_inferences == 2 * plain.series[0].n_inferences
    assert (plain.model["mirror"], both.model["mirror"]) == (False, True)


def test_gated_masks_only_on_the_slices_the_classifier_calls(phantom_study, tiny_model_dir):
    from ichinfer import pipeline
    from ichinfer.study import assess_series, gate_flags

    series = ichinfer.read_series(phantom_study.folder)
    seg = ichinfer.Segmenter(model_dir=tiny_model_dir)
    plain = assess_series(series, classifier=ichinfer.Classifier(model_dir=tiny_model_dir),
                          segmenter=seg)
    # a threshold between the slices' `any` probabilities, so the gate has work to do
    p = np.sort([s.probabilities["any"] for s in plain.classification.slices])
    middle = float((p[len(p) // 2 - 1] + p[len(p) // 2]) / 2)
    clf = ichinfer.Classifier(model_dir=tiny_model_dir, thresholds={"any": middle})
    gated = assess_series(series, classifier=clf, segmenter=seg, gate=True)
    flags = gate_flags(gated.classification)
    assert any(flags) and not all(flags)
    removed = 0
    for called, a, b in zip(flags, plain.segmentation.slices, gated.segmentation.slices,
                            strict=True):
        if called:
            np.testing.assert_array_equal(a.mask, b.mask)
        else:
            assert not b.mask.any()
            removed += int(a.mask.any())
    assert removed  # the plain run marked slices the gate took off
    assert gated.segmentation.volume_ml < plain.segmentation.volume_ml
    with pytest.raises(ValueError, match="flags"):
        seg.segment_series(pipeline.PreparedSeries(series), keep=flags[:-1])


def test_segment_with_a_gate_from_python(phantom_study, tiny_model_dir, monkeypatch):
    seg = ichinfer.Segmenter(model_dir=tiny_model_dir)
    plain = seg.segment(phantom_study.folder)
    assert plain.series[0].volume_ml > 0 and plain.model["gate"] is None
    nothing_called = ichinfer.Classifier(model_dir=tiny_model_dir, thresholds={"any": 1.0})
    gated = seg.segment(phantom_study.folder, gate_with=nothing_called)
    assert gated.series[0].volume_ml == 0
    assert gated.model["gate"]["threshold"] == 1.0
    assert gated.series[0].measurements.by_subtype is not None  # the classifier ran
    monkeypatch.setenv("ICHINFER_MODEL_DIR", str(tiny_model_dir))
    default = ichinfer.segment(phantom_study.folder, gate=True)
    assert default.model["gate"]["classifier"] == "tiny_classifier.onnx"


def test_masks_at_several_thresholds_from_one_run(tmp_path, tiny_model_dir):
    """segment_series_at: each threshold's masks are what a segmenter with that threshold gives,
    on a thin series whose slices between slabs carry interpolated maps, from one model run."""
    from ichinfer.pipeline import PreparedSeries
    from training.synth import make_study, write_study

    write_study(make_study(11, size=64, positive=True, thin=True), tmp_path)
    model = tiny_model_dir / "tiny_segmenter.onnx"
    series = ichinfer.read_series(tmp_path / "stage_2_train")
    seg = ichinfer.Segmenter(model)
    calls = []
    run = seg.session.run
    seg.session.run = lambda x: calls.append(len(x)) or run(x)
    thresholds = [0.1, 0.2, 0.5]
    at = seg.segment_series_at(PreparedSeries(series), thresholds)
    assert sum(calls) == at[0].n_inferences < len(series.slices)  # one run for all three
    areas = []
    for t, result in zip(thresholds, at, strict=True):
        alone = ichinfer.Segmenter(model, threshold=t).segment_series(PreparedSeries(series))
        assert len(result.slices) == len(alone.slices) == len(series.slices)
        for mine, theirs in zip(result.slices, alone.slices, strict=True):
            assert np.array_equal(mine.mask, theirs.mask), (t, mine.index)
        assert result.volume_ml == pytest.approx(alone.volume_ml)
        areas.append(sum(int(s.mask.sum()) for s in result.slices))
    assert areas[0] > areas[1] > areas[2] > 0  # the thresholds give different masks
