"""Training data: the RSNA 2019 layout and the image + mask segmentation layouts.

Reading and preprocessing come from ``ichinfer`` (the runtime's own code), so a model sees in
training exactly what it sees in use. Each series is read once, put on the model grid and cached
as float16 in ``<data>/.ichinfer_cache/``; batches are then cut from those stacks.

Layouts
-------
RSNA 2019 (Kaggle) — also what ``python -m training.synth`` writes::

    DATA/stage_2_train.csv        ID,Label  with rows ID_<id>_<label>,0|1
    DATA/stage_2_train/ID_<id>.dcm
    DATA/masks/ID_<id>.png        optional: per-slice label masks (the phantom generator's)

Segmentation volumes (the public CT-ICH / INSTANCE layout)::

    DATA/ct_scans/NNN.nii[.gz]    DATA/masks/NNN.nii[.gz]
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom

from ichinfer import dicom
from ichinfer.labels import LABELS
from ichinfer.preprocess import to_model_grid

log = logging.getLogger(__name__)


@dataclass
class SeriesData:
    """One series on the model grid: what training cuts its samples from."""

    key: str
    patient_key: str
    grid: np.ndarray  # (Z, S, S) float16 HU, head -> foot
    locations_mm: np.ndarray  # (Z,)
    ids: list[str]  # slice ids (file stems, e.g. ID_0a1b2c3d4)
    labels: np.ndarray | None = None  # (Z, 6) float32 in LABELS order, NaN where unknown
    masks: np.ndarray | None = None  # (Z, S, S) uint8 0/1 on the model grid
    extra: dict = field(default_factory=dict)


def read_rsna_labels(csv_path: Path) -> dict[str, np.ndarray]:
    """``stage_2_train.csv`` → {``ID_<id>``: float32[6] in :data:`ichinfer.LABELS` order}."""
    out: dict[str, np.ndarray] = {}
    index = {name: i for i, name in enumerate(LABELS)}
    with open(csv_path, newline="") as fh:
        for row in csv.DictReader(fh):
            stem, _, label = row["ID"].rpartition("_")
            if label not in index:
                raise ValueError(f"{csv_path}: unknown label {label!r} in row {row['ID']!r}")
            vec = out.setdefault(stem, np.full(len(LABELS), np.nan, dtype=np.float32))
            vec[index[label]] = float(row["Label"])
    return out


def slice_mask(data_dir: Path, slice_path: str | os.PathLike[str]) -> np.ndarray:
    """The painted mask beside an RSNA-layout slice (``DATA/masks/ID_<id>.png``, as the phantom
    generator writes it): uint8, 0 outside bleeds, else the subtype's code (1..5 in
    ``SUBTYPES`` order), on the slice's own grid."""
    from training.pngio import read_png

    return read_png(Path(data_dir) / "masks" / f"{slice_id(slice_path)}.png")


def slice_id(slice_path: str | os.PathLike[str]) -> str:
    """``ID_<id>`` of an RSNA-layout slice file (its name up to the first dot)."""
    return Path(slice_path).name.split(".")[0]


def _patient_key(path: str) -> str:
    """A hash of (0010,0020) PatientID for splitting; the identifier itself is never kept."""
    ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["PatientID"])
    return hashlib.sha1(str(ds.get("PatientID", path)).encode()).hexdigest()


def _cache_path(cache_dir: Path, key: str, size: int) -> Path:
    return cache_dir / f"s{size}" / (hashlib.sha1(key.encode()).hexdigest()[:16] + ".npz")


def _load_grid(series: dicom.Series, size: int) -> np.ndarray:
    grid = np.empty((len(series.slices), size, size), dtype=np.float16)
    for i, hu in enumerate(series.iter_hu()):
        grid[i] = to_model_grid(hu, size)  # load_hu gives clean HU
    return grid


def _mask_grid(mask: np.ndarray, size: int) -> np.ndarray:
    return (to_model_grid((mask > 0).astype(np.float32), size, fill=0.0) >= 0.5).astype(np.uint8)


def load_rsna(
    data_dir: Path,
    *,
    image_size: int,
    csv_name: str = "stage_2_train.csv",
    image_dir: str = "stage_2_train",
    with_masks: bool = False,
    max_series: int | None = None,
) -> list[SeriesData]:
    """Read the RSNA layout into :class:`SeriesData`, regrouped into series ordered by position."""
    from training.pngio import read_png

    data_dir = Path(data_dir)
    labels = read_rsna_labels(data_dir / csv_name)
    result = dicom.scan(data_dir / image_dir, on_error="collect")
    for failure in result.failures:
        log.warning("skipping %s: %s", failure.path, failure.reason)
    cache_dir = data_dir / ".ichinfer_cache"
    out: list[SeriesData] = []
    series_list = sorted(result.series, key=lambda s: s.series_uid)
    if max_series is not None:
        series_list = series_list[:max_series]
    for series in series_list:
        ids = [Path(s.path).name.removesuffix(".dcm") for s in series.slices]
        key = series.study_uid + "/" + series.series_uid
        cpath = _cache_path(cache_dir, key + f"/{with_masks}", image_size)
        if cpath.exists():
            z = np.load(cpath)
            grid, masks = z["grid"], (z["masks"] if with_masks else None)
            patient = str(z["patient"])
        else:
            grid = _load_grid(series, image_size)
            masks = None
            if with_masks:
                masks = np.stack(
                    [_mask_grid(read_png(data_dir / "masks" / f"{i}.png"), image_size) for i in ids]
                )
            patient = _patient_key(series.slices[0].path)
            cpath.parent.mkdir(parents=True, exist_ok=True)
            extra = {"masks": masks} if masks is not None else {}
            # written aside and renamed: concurrent trainers may fill the same cache
            tmp = cpath.with_name(f"{cpath.stem}.{os.getpid()}.tmp.npz")
            np.savez(tmp, grid=grid, patient=patient, **extra)
            os.replace(tmp, cpath)
        lab = np.stack([labels.get(i, np.full(len(LABELS), np.nan, dtype=np.float32)) for i in ids])
        out.append(
            SeriesData(
                key=key,
                patient_key=patient,
                grid=grid,
                locations_mm=series.locations_mm.copy(),
                ids=ids,
                labels=lab,
                masks=masks,
            )
        )
    return out


def load_nifti_pairs(data_dir: Path, *, image_size: int) -> list[SeriesData]:
    """Read ``ct_scans/NNN.nii[.gz]`` + ``masks/NNN.nii[.gz]`` pairs (CT-ICH / INSTANCE layout)."""
    data_dir = Path(data_dir)
    out: list[SeriesData] = []
    for ct in sorted((data_dir / "ct_scans").glob("*.nii*")):
        mask_path = data_dir / "masks" / ct.name
        if not mask_path.exists():
            log.warning("no mask for %s, skipped", ct)
            continue
        series = dicom.read_series(ct)
        mask_series = dicom.read_series(mask_path)
        grid = _load_grid(series, image_size)
        masks = np.stack([_mask_grid(m, image_size) for m in mask_series.iter_hu()])
        any_label = (masks.reshape(len(masks), -1).sum(axis=1) > 0).astype(np.float32)
        labels = np.full((len(masks), len(LABELS)), np.nan, dtype=np.float32)
        labels[:, 0] = any_label
        stem = ct.name.split(".")[0]
        out.append(
            SeriesData(
                key=str(ct),
                patient_key=stem,
                grid=grid,
                locations_mm=series.locations_mm.copy(),
                ids=[f"{stem}_{k}" for k in range(len(masks))],
                labels=labels,
                masks=masks,
            )
        )
    return out


def split_by_patient(
    series: Iterable[SeriesData], val_fraction: float, seed: int = 0
) -> tuple[list[SeriesData], list[SeriesData]]:
    """Deterministic patient-level split: no patient has series on both sides."""
    train, val = [], []
    for s in series:
        h = int(hashlib.sha1(f"{seed}:{s.patient_key}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        (val if h < val_fraction else train).append(s)
    return train, val
