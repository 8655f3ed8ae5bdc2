"""Slice and series classification: six ICH probabilities per slice, a verdict per series."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from ichinfer import dicom, models, runtime
from ichinfer.errors import InvalidInputError
from ichinfer.labels import LABELS
from ichinfer.pipeline import (
    PathInput,
    PreparedSeries,
    each_series,
    failures_of,
    run_batched,
    scan_inputs,
)
from ichinfer.preprocess import nearest_sampled, sample_indices
from ichinfer.results import ClassificationResult, Failure, SeriesResult, SliceResult

Thresholds = Mapping[str, float] | str | os.PathLike | None


def read_thresholds(source: Thresholds) -> Mapping | None:
    """A thresholds JSON file read (once), or ``source`` itself if it is a mapping or None."""
    if isinstance(source, (str, os.PathLike)):
        try:
            return json.loads(Path(source).read_text())
        except (OSError, ValueError) as err:
            raise InvalidInputError(f"cannot read thresholds: {err}", path=str(source)) from err
    return source


def _overridden(defaults: Mapping[str, float], source: Mapping) -> dict[str, float]:
    unknown = set(source) - set(LABELS)
    if unknown:
        raise InvalidInputError(f"unknown labels in thresholds: {sorted(unknown)}")
    out = {label: float(defaults[label]) for label in LABELS}
    out.update({k: float(v) for k, v in source.items()})
    return out


def load_thresholds(source: Thresholds, defaults: Mapping[str, float]) -> dict[str, float]:
    """Slice thresholds per label: the model's defaults, overridden by a mapping or a JSON file
    (``{"any": 0.3, ...}`` or ``{"thresholds": {...}}`` as ``ichinfer calibrate`` writes)."""
    data = read_thresholds(source)
    if data is None:
        return {label: float(defaults[label]) for label in LABELS}
    return _overridden(defaults, _slice_part(data))


def _slice_part(data: Mapping) -> Mapping:
    if "thresholds" in data:
        return data["thresholds"]
    return {k: v for k, v in data.items() if k != "series_thresholds"}


def load_series_thresholds(
    source: Thresholds, spec_series: Mapping[str, float], slice_thresholds: Mapping[str, float]
) -> dict[str, float]:
    """Verdict thresholds per label: the model's series thresholds (its series-level operating
    point), or its slice thresholds if it has none. Where ``source`` sets a label's slice
    threshold, the verdict takes it too (a site's own operating point, ``ichinfer calibrate``,
    governs its slices and verdicts alike); ``source["series_thresholds"]`` overrides both."""
    out = dict(spec_series or slice_thresholds)
    data = read_thresholds(source)
    if data is None:
        return out
    for label in _slice_part(data):
        out[label] = float(slice_thresholds[label])
    if "series_thresholds" in data:
        out = _overridden(out, data["series_thresholds"])
    return out


class Classifier:
    """Holds a classification session for repeated calls.

    >>> clf = Classifier(device="cpu", threads=2)      # doctest: +SKIP
    >>> result = clf.classify("study_folder/")          # doctest: +SKIP
    """

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        *,
        model_dir: str | os.PathLike | None = None,
        variant: str | None = None,
        device: str | None = None,
        providers: list[str] | None = None,
        threads: int | None = None,
        batch_size: int = 8,
        thresholds: Thresholds = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, not {batch_size}")
        path = models.locate("classify", model=model, model_dir_override=model_dir, variant=variant)
        self.session = runtime.get_session(
            path, device=device, providers=providers, threads=threads
        )
        self.spec = self.session.spec
        if self.spec.task != "classify":
            raise InvalidInputError(f"{path}: a {self.spec.task} model, not a classifier")
        self.batch_size = batch_size
        source = read_thresholds(thresholds)  # a file is read once, for both
        self.thresholds = load_thresholds(source, self.spec.thresholds)
        self.series_thresholds = load_series_thresholds(
            source, self.spec.series_thresholds, self.thresholds
        )

    def classify_series(self, prepared: PreparedSeries) -> SeriesResult:
        """Classify one series (decoded onto the model grid if not done yet)."""
        series = prepared.series
        loc = prepared.locations_mm
        sampled = sample_indices(loc, self.spec.slab_mm)
        probs = run_batched(self.session, prepared, sampled, batch_size=self.batch_size)
        nearest = nearest_sampled(loc, sampled)
        slices = []
        for i, info in enumerate(series.slices):
            row = probs[nearest[i]]
            slices.append(
                SliceResult(
                    index=i,
                    path=info.path,
                    frame=info.frame,
                    sop_instance_uid=info.sop_instance_uid,
                    location_mm=float(loc[i]),
                    probabilities={label: float(row[k]) for k, label in enumerate(LABELS)},
                    source_index=int(sampled[nearest[i]]),
                )
            )
        return SeriesResult(
            study_uid=series.study_uid,
            series_uid=series.series_uid,
            spacing_mm=series.spacing_mm,
            slices=slices,
            thresholds=dict(self.thresholds),
            series_thresholds=dict(self.series_thresholds),
            warnings=list(series.warnings),
            n_inferences=int(len(sampled)),
        )

    def iter_series(
        self, path: PathInput, *, on_error: str = "raise", failures: list[Failure] | None = None
    ) -> Iterator[SeriesResult]:
        """Yield a :class:`SeriesResult` per series found under ``path``.

        With ``on_error="collect"`` unreadable files and series that fail are appended to
        ``failures`` (when given) and the rest goes on.
        """
        scan = scan_inputs(path, on_error=on_error)
        if failures is not None:
            failures.extend(failures_of(scan.failures))
        yield from self.run_series(scan.series, on_error=on_error, failures=failures)

    def run_series(
        self,
        series_list: Iterable[dicom.Series],
        *,
        on_error: str = "raise",
        failures: list[Failure] | None = None,
    ) -> Iterator[SeriesResult]:
        """:meth:`classify_series` on already-scanned series; ``on_error`` as in ``iter_series``."""
        return each_series(series_list, lambda s: self.classify_series(PreparedSeries(s)),
                           on_error=on_error, failures=failures)

    def classify(self, path: PathInput, *, on_error: str = "raise") -> ClassificationResult:
        """Classify a file, a folder (any depth) or a list of paths."""
        scan = scan_inputs(path, on_error=on_error)
        failures = failures_of(scan.failures)
        results = list(self.run_series(scan.series, on_error=on_error, failures=failures))
        return ClassificationResult(
            series=results,
            failures=failures,
            skipped=failures_of(scan.skipped),
            model=self.spec.describe(),
        )


def classify(
    path: PathInput,
    *,
    model: str | os.PathLike | None = None,
    device: str | None = None,
    threads: int | None = None,
    batch_size: int = 8,
    thresholds: Thresholds = None,
    on_error: str = "raise",
) -> ClassificationResult:
    """Six ICH probabilities per slice and a verdict per series, for a file, folder or list.

    Sessions are cached, so repeated calls do not reload the model.
    """
    clf = Classifier(
        model, device=device, threads=threads, batch_size=batch_size, thresholds=thresholds
    )
    return clf.classify(path, on_error=on_error)
