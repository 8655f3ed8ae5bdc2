"""Both models on one series, sharing one decode: the verdict, the masks and the measurements.

What a reader needs per series: ``any`` and each subtype as a probability and yes/no at the
operating point, the key slices (head to foot), and the bleed measurements with the volume per
subtype where classifier and mask agree (:func:`ichinfer.measure.measure_series`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ichinfer import dicom
from ichinfer.classification import Classifier
from ichinfer.measure import Measurements, measure_series
from ichinfer.pipeline import PreparedSeries, each_series
from ichinfer.results import Failure, SeriesResult, SeriesSegmentation
from ichinfer.segmentation import Segmenter


@dataclass
class SeriesAssessment:
    """One series, classified and segmented."""

    classification: SeriesResult
    segmentation: SeriesSegmentation

    @property
    def measurements(self) -> Measurements:
        return self.segmentation.measure()

    def to_dict(self) -> dict[str, Any]:
        c = self.classification
        return {
            "study_uid": c.study_uid,
            "series_uid": c.series_uid,
            "n_slices": len(c.slices),
            "probabilities": {k: round(v, 6) for k, v in c.probabilities.items()},
            "verdict": c.verdict,
            "thresholds": c.thresholds,
            "measurements": self.measurements.to_dict(),
        }


def gate_flags(classification: SeriesResult) -> list[bool]:
    """The slices a gated segmentation may mark: those the classifier calls ``any``."""
    threshold = classification.thresholds["any"]
    return [s.probabilities["any"] >= threshold for s in classification.slices]


def assess_series(
    series: dicom.Series, *, classifier: Classifier, segmenter: Segmenter, gate: bool = False
) -> SeriesAssessment:
    """Classify and segment ``series`` from one decode; measure with subtypes attributed.

    ``gate``: masks only on the slices the classifier calls ``any`` (its slice threshold), the
    original design's cascade of "bleed / no bleed" before localisation. Measured with the
    bundled models (``training/trials/gate.md``): higher pooled Dice on the test phantoms, and
    about three fifths of the volume falsely marked on the real normal CQ500 series."""
    prepared = PreparedSeries(series)
    prepared.decode([classifier.spec.input_size[0], segmenter.spec.input_size[0]])
    cls = classifier.classify_series(prepared)
    seg = segmenter.segment_series(prepared, keep=gate_flags(cls) if gate else None)
    seg.measurements = measure_series(seg, cls)
    return SeriesAssessment(classification=cls, segmentation=seg)


def iter_assessments(
    series_list: Iterable[dicom.Series],
    *,
    classifier: Classifier,
    segmenter: Segmenter,
    gate: bool = False,
    on_error: str = "raise",
    failures: list[Failure] | None = None,
) -> Iterator[SeriesAssessment]:
    """:func:`assess_series` per series; with ``on_error="collect"`` failed series go to
    ``failures`` and the rest goes on."""
    yield from each_series(
        series_list,
        lambda s: assess_series(s, classifier=classifier, segmenter=segmenter, gate=gate),
        on_error=on_error,
        failures=failures,
    )


def iter_segmentations(
    series_list: Iterable[dicom.Series],
    *,
    segmenter: Segmenter,
    classifier: Classifier | None = None,
    gate: bool = False,
    on_error: str = "raise",
    failures: list[Failure] | None = None,
) -> Iterator[SeriesSegmentation]:
    """Segmentations per series; with a ``classifier`` their measurements carry subtypes, and
    with ``gate`` too their masks are only on the slices it calls ``any``."""
    if classifier is None:
        if gate:
            raise ValueError("gate=True needs a classifier")
        yield from segmenter.run_series(series_list, on_error=on_error, failures=failures)
        return
    for a in iter_assessments(series_list, classifier=classifier, segmenter=segmenter,
                              gate=gate, on_error=on_error, failures=failures):
        yield a.segmentation


def attach_subtypes(
    segmentation: SeriesSegmentation, series: dicom.Series, *, classifier: Classifier
) -> SeriesSegmentation:
    """Classify ``series`` and re-measure ``segmentation`` (of the same series) with subtypes;
    for a segmentation that was not made by :func:`assess_series` (e.g. loaded on resume)."""
    cls = classifier.classify_series(PreparedSeries(series))
    segmentation.measurements = measure_series(segmentation, cls)
    return segmentation
