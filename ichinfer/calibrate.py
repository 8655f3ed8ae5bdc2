"""Operating points for a site: thresholds that reach a target sensitivity on its own cases.

Reads the site's labels and the model's outputs, both in the RSNA 2019 CSV format (``ID,Label``
with ``ID_<image>_<label>`` rows: the file ``ichinfer classify --out x.csv`` writes) or the
outputs as ``classify``'s JSON, picks per label the highest threshold whose sensitivity reaches
the target, and reports sensitivity, specificity and ROC AUC per label with 95 % intervals. The
thresholds file it writes is what ``classify``/``segment``/``report`` take as ``--thresholds``.

Where the series of each image is known (classify's JSON names it; with ``ichinfer calibrate
--images`` the classifier runs here and reads it), the intervals resample whole series (2 000
draws, :func:`ichinfer.metrics.series_bootstrap`): slices of one series are not independent,
so intervals over slices are too narrow. From a predictions CSV the series are not known, and
the intervals are Wilson (proportions) and DeLong (AUC) intervals over slices (a note says so).
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ichinfer.errors import InvalidInputError
from ichinfer.labels import LABELS
from ichinfer.metrics import (
    MIN_SERIES_FOR_INTERVAL,
    SERIES_INTERVAL,
    roc_auc,
    series_interval,
    weighted_auc,
)
from ichinfer.results import atomic_write_bytes, rsna_id

#: two-sided 95 %
Z95 = 1.959963984540054
CI_METHODS = {
    "proportions": "Wilson score interval, 95 %",
    "auc": "DeLong (1988) variance, normal approximation, 95 %, clipped to [0, 1]",
}
SERIES_CI_METHODS = dict.fromkeys(("proportions", "auc"), SERIES_INTERVAL)

Scores = Mapping[tuple[str, str], float]


# --- reading -----------------------------------------------------------------------------------


def read_rsna_csv(path: str | os.PathLike) -> dict[tuple[str, str], float]:
    """``{(image id, label): value}`` from an RSNA-format CSV (``ID,Label``).

    Ids are ``ID_<image>_<label>``; the image part is everything before the last underscore.
    """
    out: dict[tuple[str, str], float] = {}
    try:
        with open(path, newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None or [h.strip() for h in header[:2]] != ["ID", "Label"]:
                raise InvalidInputError("not an RSNA CSV: the header must be 'ID,Label'",
                                        path=str(path))
            for line, row in enumerate(reader, start=2):
                if not row:
                    continue
                try:
                    image, label = row[0].strip().rsplit("_", 1)
                    value = float(row[1])
                except (ValueError, IndexError) as err:
                    raise InvalidInputError(f"line {line}: cannot read {row!r} as ID,Label",
                                            path=str(path)) from err
                if label not in LABELS:
                    raise InvalidInputError(f"line {line}: unknown label {label!r}",
                                            path=str(path))
                if not math.isfinite(value):
                    raise InvalidInputError(f"line {line}: value {row[1]!r} is not finite",
                                            path=str(path))
                out[(image, label)] = value
    except OSError as err:
        raise InvalidInputError(f"cannot read: {err.strerror or err}", path=str(path)) from err
    if not out:
        raise InvalidInputError("no rows", path=str(path))
    return out


def _image_keys(sop_instance_uid: str, path: str, frame: int | None) -> set[str]:
    keys = {rsna_id(sop_instance_uid)}
    if frame is None:
        stem = Path(path).name.split(".")[0]
        keys.add(stem if stem.startswith("ID_") else f"ID_{stem}")
    return keys


def scores_from_classification(result: Any) -> dict[tuple[str, str], float]:
    """Scores of a :class:`~ichinfer.results.ClassificationResult`, keyed by the RSNA id of each
    slice's (0008,0018) SOP Instance UID and also by its file name (``ID_<stem>``), so labels
    named either way match."""
    out: dict[tuple[str, str], float] = {}
    for s in result.slices:
        for key in _image_keys(s.sop_instance_uid, s.path, s.frame):
            for label in LABELS:
                out[(key, label)] = s.probabilities[label]
    return out


def series_from_classification(result: Any) -> dict[str, str]:
    """The series (its Series Instance UID) of each image, keyed as
    :func:`scores_from_classification` keys the scores."""
    return {key: series.series_uid for series in result.series for s in series.slices
            for key in _image_keys(s.sop_instance_uid, s.path, s.frame)}


def read_classification_json(path: str | os.PathLike
                             ) -> tuple[dict[tuple[str, str], float], dict[str, str]]:
    """Scores and series of each image from ``ichinfer classify --out x.json``, keyed as
    :func:`scores_from_classification` keys them: the series make the intervals resample whole
    series, as with ``--images``."""
    try:
        data = json.loads(Path(path).read_text())
        scores: dict[tuple[str, str], float] = {}
        series: dict[str, str] = {}
        for entry in data["series"]:
            for s in entry["slices"]:
                for key in _image_keys(s["sop_instance_uid"], s["path"], s["frame"]):
                    series[key] = entry["series_uid"]
                    for label in LABELS:
                        scores[(key, label)] = float(s["probabilities"][label])
    except OSError as err:
        raise InvalidInputError(f"cannot read: {err.strerror or err}", path=str(path)) from err
    except (ValueError, KeyError, TypeError) as err:  # JSON syntax, or not classify's layout
        raise InvalidInputError(f"not the JSON of ichinfer classify --out: {err!r}",
                                path=str(path)) from err
    if not scores:
        raise InvalidInputError("no slices", path=str(path))
    return scores, series


# --- statistics --------------------------------------------------------------------------------


def wilson_ci(successes: int, n: int, *, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion; (nan, nan) when ``n`` is 0."""
    if n <= 0:
        return float("nan"), float("nan")
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _midranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    _, first, counts = np.unique(x[order], return_index=True, return_counts=True)
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)
    return ranks


def delong_ci(y_true: np.ndarray, y_score: np.ndarray, *, z: float = Z95
              ) -> tuple[float, float, float]:
    """(AUC, low, high): the DeLong et al. (1988) variance of the AUC, normal interval.

    Deterministic (no resampling). NaNs when only one class is present.
    """
    y = np.asarray(y_true).astype(bool).ravel()
    s = np.asarray(y_score, dtype=np.float64).ravel()
    pos, neg = s[y], s[~y]
    m, n = len(pos), len(neg)
    if m == 0 or n == 0:
        return float("nan"), float("nan"), float("nan")
    r_all = _midranks(np.concatenate([pos, neg]))
    v10 = (r_all[:m] - _midranks(pos)) / n  # per positive: share of negatives ranked below
    v01 = 1.0 - (r_all[m:] - _midranks(neg)) / m  # per negative: share of positives above
    auc = float(v10.mean())
    var = (v10.var(ddof=1) / m if m > 1 else 0.0) + (v01.var(ddof=1) / n if n > 1 else 0.0)
    half = z * math.sqrt(max(var, 0.0))
    return auc, max(0.0, auc - half), min(1.0, auc + half)


def threshold_for_sensitivity(y_true: np.ndarray, y_score: np.ndarray, target: float) -> float:
    """The highest threshold t with sensitivity(score >= t) >= ``target``."""
    y = np.asarray(y_true).astype(bool).ravel()
    s = np.asarray(y_score, dtype=np.float64).ravel()
    pos = np.sort(s[y])[::-1]
    if pos.size == 0:
        raise ValueError("no positive cases")
    k = max(1, math.ceil(target * pos.size - 1e-9))
    return float(pos[k - 1])


# --- calibration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class OperatingPoint:
    """Sensitivity and specificity at one threshold, with 95 % Wilson intervals."""

    threshold: float
    sensitivity: float
    sensitivity_ci: tuple[float, float]
    specificity: float
    specificity_ci: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": round(self.threshold, 6),
            "sensitivity": _r(self.sensitivity),
            "sensitivity_ci95": [_r(v) for v in self.sensitivity_ci],
            "specificity": _r(self.specificity),
            "specificity_ci95": [_r(v) for v in self.specificity_ci],
        }


def _share(hit: np.ndarray, of: np.ndarray):
    """``f(w)``: the weighted share of ``of`` rows that are ``hit``, NaN when none weighs."""
    def share(w: np.ndarray) -> float:
        n = w @ of
        return float(w @ (hit & of) / n) if n > 0 else float("nan")
    return share


def operating_point(y_true: np.ndarray, y_score: np.ndarray, threshold: float,
                    groups: np.ndarray | None = None) -> OperatingPoint:
    """Sensitivity and specificity at ``threshold``; their intervals resample the series named
    by ``groups`` (one per row) where given, else Wilson intervals over rows."""
    y = np.asarray(y_true).astype(bool).ravel()
    called = np.asarray(y_score, dtype=np.float64).ravel() >= threshold
    tp, n_pos = int((called & y).sum()), int(y.sum())
    tn, n_neg = int((~called & ~y).sum()), int((~y).sum())
    if groups is None:
        sens_ci, spec_ci = wilson_ci(tp, n_pos), wilson_ci(tn, n_neg)
    else:
        sens_ci = series_interval(_share(called, y), groups, y)
        spec_ci = series_interval(_share(~called, ~y), groups, ~y)
    return OperatingPoint(
        threshold=float(threshold),
        sensitivity=tp / n_pos if n_pos else float("nan"),
        sensitivity_ci=sens_ci,
        specificity=tn / n_neg if n_neg else float("nan"),
        specificity_ci=spec_ci,
    )


@dataclass(frozen=True)
class LabelCalibration:
    label: str
    n_positive: int
    n_negative: int
    auc: float
    auc_ci: tuple[float, float]
    #: at the chosen threshold; None when the label has no positive case (nothing to reach)
    chosen: OperatingPoint | None
    #: at the thresholds in use before (the model's defaults), when given
    reference: OperatingPoint | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_positive": self.n_positive,
            "n_negative": self.n_negative,
            "auc": _r(self.auc),
            "auc_ci95": [_r(v) for v in self.auc_ci],
            "chosen": None if self.chosen is None else self.chosen.to_dict(),
            "reference": None if self.reference is None else self.reference.to_dict(),
        }


@dataclass(frozen=True)
class Calibration:
    target_sensitivity: float
    labels: dict[str, LabelCalibration]
    n_images: int
    n_unmatched: int  # labelled images with no model output
    notes: list[str] = field(default_factory=list)
    #: how the intervals were made; ``n_series`` when they resample whole series
    ci_methods: dict[str, str] = field(default_factory=lambda: dict(CI_METHODS))
    n_series: int | None = None

    @property
    def thresholds(self) -> dict[str, float]:
        """Chosen thresholds of the labels that had positive cases."""
        return {k: v.chosen.threshold for k, v in self.labels.items() if v.chosen is not None}

    def to_dict(self) -> dict[str, Any]:
        return {
            "thresholds": self.thresholds,
            "target_sensitivity": self.target_sensitivity,
            "n_images": self.n_images,
            "n_unmatched": self.n_unmatched,
            "n_series": self.n_series,
            "ci_methods": self.ci_methods,
            "metrics": {k: v.to_dict() for k, v in self.labels.items()},
            "notes": list(self.notes),
        }


def _r(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 4)


def calibrate(
    labels: Scores,
    *,
    scores: Scores,
    target_sensitivity: float = 0.95,
    reference_thresholds: Mapping[str, float] | None = None,
    series: Mapping[str, str] | None = None,
) -> Calibration:
    """Per-label thresholds reaching ``target_sensitivity`` on the labelled images that have
    model outputs; sensitivity, specificity and AUC with 95 % intervals, which resample whole
    series where ``series`` (image id -> series) names the series of every such image."""
    if not 0.0 < target_sensitivity <= 1.0:
        raise ValueError(f"target sensitivity must be in (0, 1], not {target_sensitivity}")
    images = sorted({image for image, _ in labels})
    matched = [i for i in images if any((i, lab) in scores for lab in LABELS)]
    if not matched:
        raise InvalidInputError("no labelled image has a model output: do the IDs match? "
                                "(labels and predictions are joined on ID_<image>)")
    by_series = series is not None and all(i in series for i in matched)
    result: dict[str, LabelCalibration] = {}
    notes: list[str] = []
    for label in LABELS:
        rows = [i for i in matched if (i, label) in labels and (i, label) in scores]
        if not rows:
            continue
        y = np.asarray([labels[(i, label)] for i in rows], dtype=np.float64) >= 0.5
        s = np.asarray([scores[(i, label)] for i in rows], dtype=np.float64)
        groups = np.asarray([series[i] for i in rows]) if by_series else None
        if groups is None:
            auc, lo, hi = delong_ci(y, s)
        else:  # the AUC alone, its interval from the series
            auc = roc_auc(y, s)
            lo, hi = series_interval(weighted_auc(y, s), groups, y, ~y)
        chosen = None
        if y.any():
            chosen = operating_point(y, s, threshold_for_sensitivity(y, s, target_sensitivity),
                                     groups)
        else:
            notes.append(f"{label}: no positive case, threshold left at the model's default")
        ref = None
        if reference_thresholds is not None and label in reference_thresholds:
            ref = operating_point(y, s, float(reference_thresholds[label]), groups)
        result[label] = LabelCalibration(label, int(y.sum()), int((~y).sum()), auc, (lo, hi),
                                         chosen, ref)
    n_series = len({series[i] for i in matched}) if by_series else None
    if by_series:
        notes.append(f"intervals resample whole series ({n_series} series); none where fewer "
                     f"than {MIN_SERIES_FOR_INTERVAL} series have the cases an interval is about")
    else:
        notes.append("intervals treat slices as independent; slices of one series are not, so "
                     "they are too narrow (classify's JSON or --images give intervals over series)")
    return Calibration(target_sensitivity, result, len(matched), len(images) - len(matched),
                       notes, dict(SERIES_CI_METHODS if by_series else CI_METHODS), n_series)


def write_thresholds(calibration: Calibration, path: str | os.PathLike) -> None:
    """The thresholds file (``{"thresholds": {...}, ...}``), written atomically."""
    atomic_write_bytes(path, json.dumps(calibration.to_dict(), indent=1).encode())
