"""Bleed segmentation: a mask per slice on its own pixel grid, areas and volume per series."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ichinfer import dicom, models, runtime
from ichinfer.errors import InvalidInputError
from ichinfer.pipeline import (
    PathInput,
    PreparedSeries,
    each_series,
    failures_of,
    run_batched,
    scan_inputs,
    slice_extents_mm,
)
from ichinfer.preprocess import (
    between_sampled,
    from_model_grid,
    nearest_sampled,
    sample_indices,
)
from ichinfer.results import Failure, SegmentationResult, SeriesSegmentation, SliceMask

if TYPE_CHECKING:
    from ichinfer.classification import Classifier


class Segmenter:
    """Holds a segmentation session for repeated calls.

    On a thin series the model runs on one slab every ``slab_mm / 2``; ``between`` says what the
    slices between two sampled slabs get: the probability map interpolated linearly by slice
    location (``"interpolate"``, the default) or the nearest sampled slab's (``"nearest"``).
    ``mirror=True`` also runs each slab mirrored left to right and averages the two probability
    maps (test-time mirroring): about twice the model's time."""

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        *,
        model_dir: str | os.PathLike | None = None,
        variant: str | None = None,
        device: str | None = None,
        providers: list[str] | None = None,
        threads: int | None = None,
        batch_size: int = 2,
        threshold: float | None = None,
        between: str = "interpolate",
        mirror: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, not {batch_size}")
        if between not in ("interpolate", "nearest"):
            raise ValueError(f"between must be 'interpolate' or 'nearest', not {between!r}")
        self.between = between
        self.mirror = bool(mirror)
        path = models.locate("segment", model=model, model_dir_override=model_dir, variant=variant)
        self.session = runtime.get_session(path, device=device, providers=providers,
                                           threads=threads)
        self.spec = self.session.spec
        if self.spec.task != "segment":
            raise InvalidInputError(f"{path}: a {self.spec.task} model, not a segmenter")
        self.batch_size = batch_size
        self.threshold = float(threshold if threshold is not None
                               else self.spec.thresholds.get("mask", 0.5))

    def describe(self, gate_with: Classifier | None = None) -> dict:
        """The model's metadata and how this segmenter runs it (threshold, mirroring, thin
        slices, and the classifier gating its masks, if one does), for result files."""
        return {**self.spec.describe(), "mask_threshold": self.threshold,
                "between": self.between, "mirror": self.mirror,
                "gate": None if gate_with is None else gate_description(gate_with)}

    def segment_series(self, prepared: PreparedSeries,
                       keep: Sequence[bool] | np.ndarray | None = None) -> SeriesSegmentation:
        """Masks for one series. ``keep`` (one flag per slice): only those slices may have a
        mask, the rest get an empty one (:func:`ichinfer.study.assess_series` with
        ``gate=True`` passes the classifier's ``any`` calls)."""
        return self.segment_series_at(prepared, [self.threshold], keep)[0]

    def segment_series_at(self, prepared: PreparedSeries, thresholds: Sequence[float],
                          keep: Sequence[bool] | np.ndarray | None = None,
                          ) -> list[SeriesSegmentation]:
        """:meth:`segment_series` at each of ``thresholds`` from one run of the model: the
        masks this segmenter would give with ``threshold=t``, for each ``t`` (choosing a
        threshold on the product's own output: ``training/evaluate.py --mask-thresholds``)."""
        series = prepared.series
        if keep is not None and len(keep) != len(series.slices):
            raise ValueError(f"keep has {len(keep)} flags for {len(series.slices)} slices")
        thresholds = [float(t) for t in thresholds]
        loc = prepared.locations_mm
        sampled = sample_indices(loc, self.spec.slab_mm)
        # probability maps on the model grid, float16 to halve what a long series holds
        maps = run_batched(self.session, prepared, sampled, batch_size=self.batch_size,
                           transform=lambda y: y[..., 0].astype(np.float16), mirror=self.mirror)
        if self.between == "nearest":
            lo = hi = nearest_sampled(loc, sampled)
            w = np.zeros(len(loc), dtype=np.float32)
        else:
            lo, hi, w = between_sampled(loc, sampled)
        extents = slice_extents_mm(loc, series.slices[0].slice_thickness_mm)
        peak = [float(m.max()) for m in maps]
        # masks are shared between slices wherever they must be equal: the same map on the same
        # grid, and the empty mask wherever neither map around a slice reaches the threshold
        masks: dict[tuple, np.ndarray] = {}
        slices: list[list[SliceMask]] = [[] for _ in thresholds]
        for i, info in enumerate(series.slices):
            a, b, wi, shape = int(lo[i]), int(hi[i]), float(w[i]), (info.rows, info.columns)
            if wi <= 0.0 or wi >= 1.0 or a == b:  # one map: a slice's own or its nearest one's
                a = b = a if wi < 1.0 else b
                wi = 0.0
            probability = None  # this slice's map on its own grid, made once for all thresholds
            for k, threshold in enumerate(thresholds):
                empty = max(peak[a], peak[b]) < threshold or (keep is not None
                                                               and not keep[i])
                key: tuple = ("empty", shape) if empty else (a, b, wi, shape, threshold)
                if key not in masks:
                    if empty:
                        masks[key] = np.zeros(shape, dtype=np.uint8)
                        masks[key].flags.writeable = False
                    else:
                        if probability is None:
                            grid = maps[a].astype(np.float32)
                            if wi:
                                grid = (1.0 - wi) * grid + wi * maps[b].astype(np.float32)
                            probability = from_model_grid(grid, shape)
                        masks[key] = (probability >= threshold).astype(np.uint8)
                slices[k].append(
                    SliceMask(
                        index=i,
                        path=info.path,
                        frame=info.frame,
                        sop_instance_uid=info.sop_instance_uid,
                        location_mm=float(loc[i]),
                        pixel_spacing_mm=info.pixel_spacing_mm,
                        mask=masks[key],
                        thickness_mm=float(extents[i]),
                    )
                )
        return [
            SeriesSegmentation(
                study_uid=series.study_uid,
                series_uid=series.series_uid,
                spacing_mm=series.spacing_mm,
                slices=at,
                warnings=list(series.warnings),
                n_inferences=int(len(sampled)) * (2 if self.mirror else 1),
                source=series,
            )
            for at in slices
        ]

    def run_series(
        self,
        series_list: Iterable[dicom.Series],
        *,
        on_error: str = "raise",
        failures: list[Failure] | None = None,
    ) -> Iterator[SeriesSegmentation]:
        """:meth:`segment_series` on already-scanned series; ``on_error`` as in ``iter_series``."""
        return each_series(series_list, lambda s: self.segment_series(PreparedSeries(s)),
                           on_error=on_error, failures=failures)

    def iter_series(
        self, path: PathInput, *, on_error: str = "raise", failures: list[Failure] | None = None
    ) -> Iterator[SeriesSegmentation]:
        """Yield a :class:`SeriesSegmentation` per series found under ``path``."""
        scan = scan_inputs(path, on_error=on_error)
        if failures is not None:
            failures.extend(failures_of(scan.failures))
        yield from self.run_series(scan.series, on_error=on_error, failures=failures)

    def segment(self, path: PathInput, *, on_error: str = "raise",
                gate_with: Classifier | None = None) -> SegmentationResult:
        """Every series under ``path``. ``gate_with``: a classifier that runs on the same decode;
        masks only on the slices it calls ``any`` (:func:`ichinfer.study.assess_series`), and
        the measurements carry subtypes."""
        scan = scan_inputs(path, on_error=on_error)
        failures = failures_of(scan.failures)
        if gate_with is None:
            results = list(self.run_series(scan.series, on_error=on_error, failures=failures))
        else:
            from ichinfer.study import iter_segmentations

            results = list(iter_segmentations(scan.series, segmenter=self,
                                              classifier=gate_with, gate=True,
                                              on_error=on_error, failures=failures))
        return SegmentationResult(series=results, failures=failures,
                                  skipped=failures_of(scan.skipped),
                                  model=self.describe(gate_with))


def gate_description(classifier: Classifier) -> dict:
    """What a gated segmentation records (``summary.json``, the resume key): the classifier
    and the ``any`` threshold that decided which slices may have a mask."""
    return {"label": "any", "threshold": classifier.thresholds["any"],
            "classifier": classifier.spec.path.name,
            "classifier_sha256": models.sha256(classifier.spec.path)}


def segment(
    path: PathInput,
    *,
    model: str | os.PathLike | None = None,
    device: str | None = None,
    threads: int | None = None,
    batch_size: int = 2,
    threshold: float | None = None,
    mirror: bool = False,
    gate: bool = False,
    on_error: str = "raise",
) -> SegmentationResult:
    """Bleed masks per slice (uint8, on the slice's own grid), area per slice, volume per series.

    ``mirror=True`` averages each slab's map with its mirror image's (about twice the time).
    ``gate=True`` also runs the default classifier and keeps masks only on the slices it calls
    ``any`` (fewer false marks, and the small bleeds it misses go too: README, ``--gate``)."""
    seg = Segmenter(model, device=device, threads=threads, batch_size=batch_size,
                    threshold=threshold, mirror=mirror)
    if not gate:
        return seg.segment(path, on_error=on_error)
    from ichinfer.classification import Classifier

    return seg.segment(path, on_error=on_error,
                       gate_with=Classifier(device=device, threads=threads))
