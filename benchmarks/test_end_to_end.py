"""End to end: files on disk to written results, for a 40-slice series and the CQ500 series.

Each round also records where its time went (``extra_info["stages_s"]``, medians over rounds):
the header scan, decoding onto the model grid (``PreparedSeries.decode``), inference
(``Session.run``), and the rest (model inputs, prior, results, writing). The stage timers are
wrappers installed by this file only; the library has no timing code.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import session_info

from ichinfer import classification, pipeline, segmentation, study
from ichinfer.overlay import mask_png, write_png
from ichinfer.results import to_rsna_csv


class _TimedSession:
    """Stands in for a Session and adds up the seconds spent in ``run``."""

    def __init__(self, session, clock: dict[str, float]) -> None:
        self._session, self._clock, self.spec = session, clock, session.spec

    def run(self, x):
        t = time.perf_counter()
        try:
            return self._session.run(x)
        finally:
            self._clock["inference"] += time.perf_counter() - t

    def __getattr__(self, name: str):
        return getattr(self._session, name)


class Stages:
    """Installs the stage timers on a classifier and/or segmenter for one benchmark."""

    NAMES = ("scan", "decode", "inference")

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *tasks) -> None:
        self.clock = dict.fromkeys(self.NAMES, 0.0)
        self.rounds: list[dict[str, float]] = []
        for task in tasks:
            monkeypatch.setattr(task, "session", _TimedSession(task.session, self.clock))
        decode = pipeline.PreparedSeries.decode
        monkeypatch.setattr(pipeline.PreparedSeries, "decode", self._timed("decode", decode))
        for module in (classification, segmentation, pipeline):
            fn = module.scan_inputs
            monkeypatch.setattr(module, "scan_inputs", self._timed("scan", fn))

    def _timed(self, name: str, fn):
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.clock[name] += time.perf_counter() - t

        return wrapper

    def measure(self, fn):
        def timed():
            for k in self.clock:
                self.clock[k] = 0.0
            t = time.perf_counter()
            out = fn()
            total = time.perf_counter() - t
            self.rounds.append({**self.clock, "total": total})
            return out

        return timed

    def report(self) -> dict:
        import numpy as np

        rounds = self.rounds[1:] or self.rounds  # the first is pytest-benchmark's warm-up
        med = {k: float(np.median([r[k] for r in rounds])) for k in (*self.NAMES, "total")}
        med["other"] = med["total"] - med["scan"] - med["decode"] - med["inference"]
        total = med["total"] or float("nan")
        return {"stages_s": med,
                "outside_inference_fraction": 1.0 - med["inference"] / total,
                "decode_preprocess_fraction": (med["decode"] + med["other"]) / total}


def _write_masks(result, out: Path) -> None:
    for k, series in enumerate(result.series):
        for sl in series.slices:
            write_png(out / "masks" / f"s{k:02d}_{sl.index:04d}.png", mask_png(sl.mask))


def _classify(clf, folder: Path, out: Path):
    result = clf.classify(str(folder))
    to_rsna_csv(result, out / "results.csv")
    return result


def _segment(seg, folder: Path, out: Path):
    """Masks as PNGs and a per-slice area / volume JSON. Not the bleed measurements
    (``SeriesSegmentation.measure``: components, ABC/2): with untrained stand-in models the
    masks cover most of the head and that step alone takes tens of seconds."""
    result = seg.segment(str(folder))
    _write_masks(result, out)
    summary = [{"series_uid": s.series_uid, "volume_ml": s.volume_ml,
                "slices": [sl.to_dict() for sl in s.slices]} for s in result.series]
    (out / "summary.json").write_text(json.dumps(summary))
    return result


def _both(clf, seg, folder: Path, out: Path):
    """Classify and segment sharing one header scan and one decode (PreparedSeries)."""
    scan = pipeline.scan_inputs(str(folder), on_error="raise")
    for series in scan.series:
        prepared = pipeline.PreparedSeries(series)
        prepared.decode(sorted({clf.spec.input_size[0], seg.spec.input_size[0]}))
        clf.classify_series(prepared)
        seg.segment_series(prepared)
    return scan


def _assess(clf, seg, folder: Path, out: Path):
    """What ``ichinfer segment --subtypes`` does per series (:func:`ichinfer.study.assess_series`):
    one decode, both models, the bleed measurements with subtypes, written as JSON."""
    scan = pipeline.scan_inputs(str(folder), on_error="raise")
    done = [study.assess_series(s, classifier=clf, segmenter=seg) for s in scan.series]
    (out / "assessments.json").write_text(json.dumps([a.to_dict() for a in done]))
    return done


def _run(benchmark, monkeypatch, tmp_path, name: str, fn, tasks, n_slices: int, rounds: int):
    stages = Stages(monkeypatch, *tasks)
    benchmark.group = f"end to end: {name}"
    benchmark.extra_info.update(session_info(tasks[0].session), slices=n_slices,
                                tasks=[t.spec.path.name for t in tasks])
    benchmark.pedantic(stages.measure(lambda: fn(tmp_path)), rounds=rounds, iterations=1,
                       warmup_rounds=1)
    benchmark.extra_info.update(stages.report())


def test_classify_40(benchmark, monkeypatch, tmp_path, classifier, series40) -> None:
    _run(benchmark, monkeypatch, tmp_path, "classify 40 slices",
         lambda out: _classify(classifier, series40, out), (classifier,), 40, rounds=5)


def test_segment_40(benchmark, monkeypatch, tmp_path, segmenter, series40) -> None:
    _run(benchmark, monkeypatch, tmp_path, "segment 40 slices",
         lambda out: _segment(segmenter, series40, out), (segmenter,), 40, rounds=3)


def test_classify_cq500(benchmark, monkeypatch, tmp_path, classifier, cq500) -> None:
    _run(benchmark, monkeypatch, tmp_path, "classify CQ500 (238 slices)",
         lambda out: _classify(classifier, cq500, out), (classifier,), 238, rounds=3)


def test_segment_cq500(benchmark, monkeypatch, tmp_path, segmenter, cq500) -> None:
    _run(benchmark, monkeypatch, tmp_path, "segment CQ500 (238 slices)",
         lambda out: _segment(segmenter, cq500, out), (segmenter,), 238, rounds=3)


def test_classify_and_segment_cq500(benchmark, monkeypatch, tmp_path, classifier, segmenter,
                                    cq500) -> None:
    _run(benchmark, monkeypatch, tmp_path, "classify + segment CQ500 (238 slices, one decode)",
         lambda out: _both(classifier, segmenter, cq500, out), (classifier, segmenter), 238,
         rounds=3)


def test_assess_cq500(benchmark, monkeypatch, tmp_path, classifier, segmenter, cq500) -> None:
    _run(benchmark, monkeypatch, tmp_path,
         "classify + segment + measure CQ500 (238 slices, one decode, as segment --subtypes)",
         lambda out: _assess(classifier, segmenter, cq500, out), (classifier, segmenter), 238,
         rounds=3)


@pytest.mark.parametrize("task", ["classify", "classify_and_segment"])
def test_cq500_decode_processes(benchmark, monkeypatch, tmp_path, classifier, segmenter, cq500,
                                task) -> None:
    """As above with ``ICHINFER_DECODE_PROCESSES=2``: slices decoded by this process and a
    worker process side by side (what the ``ichinfer`` command does by default).
    The pool starts in the warm-up round and is reused, as it is across a CLI run's series."""
    from ichinfer.pipeline import DECODE_PROCESSES_ENV

    monkeypatch.setenv(DECODE_PROCESSES_ENV, "2")
    if task == "classify":
        _run(benchmark, monkeypatch, tmp_path, "classify CQ500 (238 slices), 2 decode processes",
             lambda out: _classify(classifier, cq500, out), (classifier,), 238, rounds=3)
    else:
        _run(benchmark, monkeypatch, tmp_path,
             "classify + segment CQ500 (238 slices, one decode), 2 decode processes",
             lambda out: _both(classifier, segmenter, cq500, out), (classifier, segmenter), 238,
             rounds=3)
    benchmark.extra_info.update(decode_processes=2)


def test_cq500_gdcm(benchmark, monkeypatch, tmp_path, classifier, segmenter, cq500) -> None:
    """Classify + segment CQ500 with the ``[gdcm]`` extra decoding its JPEG Lossless."""
    from conftest import gdcm_or_skip

    from ichinfer.dicom import JPEG_LOSSLESS_DECODER_ENV

    gdcm_or_skip()
    monkeypatch.setenv(JPEG_LOSSLESS_DECODER_ENV, "gdcm")
    _run(benchmark, monkeypatch, tmp_path,
         "classify + segment CQ500 (238 slices, one decode), GDCM decoding",
         lambda out: _both(classifier, segmenter, cq500, out), (classifier, segmenter), 238,
         rounds=3)
    benchmark.extra_info.update(jpeg_lossless_decoder="gdcm")


@pytest.mark.parametrize("processes", [0, 2])
def test_cq500_imagecodecs(benchmark, monkeypatch, tmp_path, classifier, segmenter, cq500,
                           processes) -> None:
    """Classify + segment CQ500 with the ``[imagecodecs]`` extra (libjpeg-turbo) decoding its
    JPEG Lossless, in this process alone and with a decode worker beside it."""
    from conftest import extra_or_skip

    from ichinfer.dicom import JPEG_LOSSLESS_DECODER_ENV
    from ichinfer.pipeline import DECODE_PROCESSES_ENV

    extra_or_skip("imagecodecs")
    monkeypatch.setenv(JPEG_LOSSLESS_DECODER_ENV, "imagecodecs")
    monkeypatch.setenv(DECODE_PROCESSES_ENV, str(processes))
    what = "2 decode processes, " if processes else ""
    _run(benchmark, monkeypatch, tmp_path,
         f"classify + segment CQ500 (238 slices, one decode), {what}imagecodecs decoding",
         lambda out: _both(classifier, segmenter, cq500, out), (classifier, segmenter), 238,
         rounds=3)
    benchmark.extra_info.update(jpeg_lossless_decoder="imagecodecs", decode_processes=processes)
