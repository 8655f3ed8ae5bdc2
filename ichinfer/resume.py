"""Resume records: one small JSON file per completed series, so a rerun skips finished work.

A record is written atomically (temp file + rename) right after its series' outputs, into a
hidden folder beside the outputs. Its name is a key: the sha256 of the task, the series UID,
every input file of the series (absolute path, frame, size, modification time), the model
file's sha256 and the options that change the result. A record exists only for a complete
series, and any change to those inputs gives another key, so a stale record is never used.
Records hold what the final outputs are rebuilt from: a classification series in full, a
segmentation series without its masks, which are read back from the mask PNGs it wrote.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from ichinfer.dicom import Series
from ichinfer.results import (
    SeriesResult,
    SeriesSegmentation,
    SliceMask,
    SliceResult,
    atomic_write_bytes,
    remove_partials,
)

logger = logging.getLogger(__name__)

RECORD_VERSION = 1


def series_key(task: str, series: Series, *, model_sha256: str, options: dict[str, Any]) -> str:
    """The key of ``series``' record; changes when an input file, the model or an option does.

    Raises OSError when an input file cannot be looked at (then there is nothing to resume).
    """
    files = []
    for s in series.slices:
        st = os.stat(s.path)
        files.append([os.path.abspath(s.path), s.frame, st.st_size, st.st_mtime_ns])
    payload = {
        "version": RECORD_VERSION,
        "task": task,
        "series_uid": series.series_uid,
        "model_sha256": model_sha256,
        "options": options,
        "files": files,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class RecordStore:
    """The records of one output (a folder of ``<key>.json`` files)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def clear(self) -> None:
        """Remove every record and temporary file (a fresh, not resumed, run)."""
        if self.folder.is_dir():
            for path in self.folder.glob("*.json"):
                path.unlink(missing_ok=True)
            remove_partials(self.folder)

    def load(self, key: str) -> dict[str, Any] | None:
        """The record's data, or None when there is none or it cannot be used."""
        try:
            record = json.loads(self._path(key).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            logger.warning("%s: unusable resume record, series redone: %s", self._path(key), err)
            return None
        if not isinstance(record, dict) or record.get("key") != key:
            return None
        data = record.get("data")
        return data if isinstance(data, dict) else None

    def save(self, key: str, data: dict[str, Any]) -> None:
        atomic_write_bytes(self._path(key), json.dumps({"key": key, "data": data}).encode())


# --- what a record holds ---------------------------------------------------------------------


def classification_record(result: SeriesResult) -> dict[str, Any]:
    return dataclasses.asdict(result)


def classification_from_record(data: dict[str, Any]) -> SeriesResult | None:
    try:
        slices = [SliceResult(**s) for s in data["slices"]]
        return SeriesResult(**{**data, "slices": slices})
    except (KeyError, TypeError) as err:
        logger.warning("unusable resume record, series redone: %s", err)
        return None


def segmentation_record(result: SeriesSegmentation, mask_files: list[str]) -> dict[str, Any]:
    """``mask_files[i]``: the mask PNG of slice i, relative to the output folder."""
    slices = []
    for sl, name in zip(result.slices, mask_files, strict=True):
        fields = {f.name: getattr(sl, f.name) for f in dataclasses.fields(sl) if f.name != "mask"}
        slices.append({**fields, "mask_file": name})
    # fields shown with repr=False (the image source, cached measurements) are not data
    head = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)
            if f.repr and f.name != "slices"}
    return {**head, "slices": slices}


def segmentation_from_record(data: dict[str, Any], out: Path) -> SeriesSegmentation | None:
    """Rebuild a series from its record and its mask PNGs; None if a mask is missing."""
    from ichinfer.overlay import read_mask_png

    try:
        slices = []
        for s in data["slices"]:
            fields = {k: v for k, v in s.items() if k != "mask_file"}
            fields["pixel_spacing_mm"] = tuple(fields["pixel_spacing_mm"])
            mask = read_mask_png(out / s["mask_file"])
            if mask is None:
                return None
            slices.append(SliceMask(**fields, mask=mask))
        known = {f.name for f in dataclasses.fields(SeriesSegmentation)} - {"slices"}
        head = {k: v for k, v in data.items() if k in known}
        return SeriesSegmentation(**head, slices=slices)
    except (KeyError, TypeError, ValueError) as err:
        logger.warning("unusable resume record, series redone: %s", err)
        return None


def mask_files(data: dict[str, Any]) -> list[str]:
    return [s["mask_file"] for s in data.get("slices", [])]
