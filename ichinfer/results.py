"""Result dataclasses, their ``to_dict()``, and the CSV / JSON writers (atomic).

Results name files, slice indices and DICOM UIDs; they never carry patient identifiers.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ichinfer.labels import LABELS


@dataclass(frozen=True)
class Failure:
    """An input that could not be used (or was skipped), with the reason."""

    path: str
    reason: str
    kind: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason, "kind": self.kind}


@dataclass
class SliceResult:
    """One slice's probabilities, in the series' head-to-foot order."""

    index: int
    path: str
    frame: int | None
    sop_instance_uid: str
    location_mm: float
    probabilities: dict[str, float]
    #: index of the slice whose model input produced these values (itself, or the nearest
    #: sampled slice of a thin series)
    source_index: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "path": self.path,
            "frame": self.frame,
            "sop_instance_uid": self.sop_instance_uid,
            "location_mm": round(self.location_mm, 3),
            "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()},
            "source_index": self.source_index,
        }


@dataclass
class SeriesResult:
    """A series' slices and its verdict: probability per label (highest slice) and yes/no.

    ``thresholds`` flag slices; the verdict holds the highest slice probability to
    ``series_thresholds`` where given (a series-level operating point: a series has tens of
    slabs, so its maximum crosses a slice threshold far more often than one slice does)."""

    study_uid: str
    series_uid: str
    spacing_mm: float | None
    slices: list[SliceResult]
    thresholds: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    n_inferences: int = 0
    series_thresholds: dict[str, float] | None = None

    @property
    def verdict_thresholds(self) -> dict[str, float]:
        """The thresholds the verdict uses: ``series_thresholds``, else the slice thresholds."""
        return dict(self.series_thresholds or self.thresholds)

    @property
    def probabilities(self) -> dict[str, float]:
        if not self.slices:
            return {label: 0.0 for label in LABELS}
        return {label: max(s.probabilities[label] for s in self.slices) for label in LABELS}

    @property
    def verdict(self) -> dict[str, bool]:
        probs, thresholds = self.probabilities, self.verdict_thresholds
        return {label: probs[label] >= thresholds[label] for label in LABELS}

    def key_slices(self, k: int = 3, label: str = "any") -> list[SliceResult]:
        """The ``k`` slices with the highest ``label`` probability (ties: head first)."""
        return sorted(self.slices, key=lambda s: -s.probabilities[label])[:k]

    def to_dict(self) -> dict[str, Any]:
        return {
            "study_uid": self.study_uid,
            "series_uid": self.series_uid,
            "n_slices": len(self.slices),
            "n_inferences": self.n_inferences,
            "spacing_mm": self.spacing_mm,
            "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()},
            "verdict": self.verdict,
            "thresholds": self.thresholds,
            "series_thresholds": self.verdict_thresholds,
            "key_slices": [
                {"index": s.index, "location_mm": round(s.location_mm, 3),
                 "any": round(s.probabilities["any"], 6)}
                for s in self.key_slices()
            ],
            # per label called yes: the slices that drive it, head to foot
            "key_slices_by_label": {
                label: [
                    {"index": s.index, "location_mm": round(s.location_mm, 3),
                     "sop_instance_uid": s.sop_instance_uid,
                     "probability": round(s.probabilities[label], 6)}
                    for s in sorted(self.key_slices(label=label), key=lambda s: s.index)
                ]
                for label, yes in self.verdict.items() if yes
            },
            "warnings": list(self.warnings),
            "slices": [s.to_dict() for s in self.slices],
        }


@dataclass
class ClassificationResult:
    """What :func:`ichinfer.classify` returns: every series, and the inputs that failed."""

    series: list[SeriesResult]
    failures: list[Failure] = field(default_factory=list)
    skipped: list[Failure] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)

    @property
    def slices(self) -> list[SliceResult]:
        return [s for series in self.series for s in series.slices]

    @property
    def probabilities(self) -> dict[str, float]:
        """Per label, the highest probability over the whole input."""
        if not self.series:
            return {label: 0.0 for label in LABELS}
        return {label: max(s.probabilities[label] for s in self.series) for label in LABELS}

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()},
            "series": [s.to_dict() for s in self.series],
            "failures": [f.to_dict() for f in self.failures],
            "skipped": [f.to_dict() for f in self.skipped],
        }


@dataclass
class SliceMask:
    """One slice's bleed mask on its own pixel grid."""

    index: int
    path: str
    frame: int | None
    sop_instance_uid: str
    location_mm: float
    pixel_spacing_mm: tuple[float, float]
    mask: np.ndarray  # uint8 0/1, (rows, columns)
    thickness_mm: float  # the slab of the series this slice stands for (volume)

    @property
    def area_mm2(self) -> float:
        return float(self.mask.sum()) * self.pixel_spacing_mm[0] * self.pixel_spacing_mm[1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "path": self.path,
            "frame": self.frame,
            "sop_instance_uid": self.sop_instance_uid,
            "location_mm": round(self.location_mm, 3),
            "area_mm2": round(self.area_mm2, 2),
        }


@dataclass
class SeriesSegmentation:
    study_uid: str
    series_uid: str
    spacing_mm: float | None
    slices: list[SliceMask]
    warnings: list[str] = field(default_factory=list)
    n_inferences: int = 0
    #: the series reader, to render overlays on demand (not serialised)
    source: Any = field(default=None, repr=False)
    #: :class:`ichinfer.measure.Measurements`; measured from the masks on first use when unset
    measurements: Any = field(default=None, repr=False)

    def measure(self) -> Any:
        """Volume, separate bleeds, ABC/2 and largest area (:mod:`ichinfer.measure`)."""
        if self.measurements is None:
            from ichinfer.measure import measure_series

            self.measurements = measure_series(self)
        return self.measurements

    @property
    def volume_ml(self) -> float | None:
        """Σ area × the distance each slice stands for (between midpoints to its neighbours).

        None when that distance is unknown: a single slice without (0018,0050) SliceThickness.
        """
        if any(np.isnan(s.thickness_mm) for s in self.slices):
            return None
        return sum(s.area_mm2 * s.thickness_mm for s in self.slices) / 1000.0

    def overlay(self, index: int) -> np.ndarray:
        """RGB uint8 picture of slice ``index``: brain window with the bleed in blue."""
        from ichinfer.overlay import blue_overlay  # opencv stays in overlay.py

        if self.source is None:
            raise ValueError("this result holds no image source to render from")
        return blue_overlay(self.source.load_hu(index), self.slices[index].mask)

    def to_dict(self) -> dict[str, Any]:
        largest = max(self.slices, key=lambda s: s.area_mm2, default=None)
        return {
            "study_uid": self.study_uid,
            "series_uid": self.series_uid,
            "n_slices": len(self.slices),
            "n_inferences": self.n_inferences,
            "spacing_mm": self.spacing_mm,
            "volume_ml": None if self.volume_ml is None else round(self.volume_ml, 3),
            "largest_area_mm2": round(largest.area_mm2, 2) if largest else 0.0,
            "largest_area_index": largest.index if largest and largest.area_mm2 > 0 else None,
            "measurements": self.measure().to_dict(),
            "warnings": list(self.warnings),
            "slices": [s.to_dict() for s in self.slices],
        }


@dataclass
class SegmentationResult:
    """What :func:`ichinfer.segment` returns."""

    series: list[SeriesSegmentation]
    failures: list[Failure] = field(default_factory=list)
    skipped: list[Failure] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)

    @property
    def slices(self) -> list[SliceMask]:
        return [s for series in self.series for s in series.slices]

    @property
    def volume_ml(self) -> float | None:
        """Total over the series; None if any series' volume is unknown."""
        vols = [s.volume_ml for s in self.series]
        return None if any(v is None for v in vols) else float(sum(vols))  # type: ignore[misc]

    @property
    def ok(self) -> bool:
        return not self.failures

    def overlay(self, index: int) -> np.ndarray:
        """Overlay of slice ``index`` of :attr:`slices` (all series, in order)."""
        for series in self.series:
            if index < len(series.slices):
                return series.overlay(index)
            index -= len(series.slices)
        raise IndexError("slice index out of range")

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "volume_ml": None if self.volume_ml is None else round(self.volume_ml, 3),
            "series": [s.to_dict() for s in self.series],
            "failures": [f.to_dict() for f in self.failures],
            "skipped": [f.to_dict() for f in self.skipped],
        }


# --- writers ---------------------------------------------------------------------------------


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file beside ``path`` and rename it into place.

    The file gets the permissions a plain ``open()`` would give (0666 less the umask), not
    mkstemp's private 0600, so a PACS or web service account can read the results.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), 0o666 & ~_umask())
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


PARTIAL_SUFFIX = ".part"
"""Temporary files are hidden (".name.XXXX.part"): never mistaken for outputs."""


def remove_partials(folder: str | os.PathLike, name: str | None = None) -> int:
    """Remove temporary files a killed run left in ``folder`` (only those of ``name`` if given);
    return how many."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    pattern = f".{name}.*{PARTIAL_SUFFIX}" if name else f".*{PARTIAL_SUFFIX}"
    removed = 0
    for path in folder.glob(pattern):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def to_json(result: ClassificationResult | SegmentationResult, path: str | os.PathLike) -> None:
    atomic_write_bytes(path, json.dumps(result.to_dict(), indent=1).encode())


def rsna_id(sop_instance_uid: str) -> str:
    """RSNA ids are ``ID_<...>``; their SOPInstanceUIDs already carry the prefix."""
    return sop_instance_uid if sop_instance_uid.startswith("ID_") else f"ID_{sop_instance_uid}"


def rsna_csv(result: ClassificationResult) -> str:
    """The RSNA 2019 submission format: ``ID,Label`` with ``ID_<SOPInstanceUID>_<label>`` rows."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["ID", "Label"])
    for s in result.slices:
        for label in LABELS:
            writer.writerow([f"{rsna_id(s.sop_instance_uid)}_{label}",
                             f"{s.probabilities[label]:.6f}"])
    return buf.getvalue()


def to_rsna_csv(result: ClassificationResult, path: str | os.PathLike) -> None:
    atomic_write_bytes(path, rsna_csv(result).encode())
