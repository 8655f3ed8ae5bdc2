"""Read NIfTI-1/2 head-CT volumes (``.nii``, ``.nii.gz``) as a :class:`~ichinfer.dicom.Series`.

The only module of ichinfer that imports nibabel (the ``[nifti]`` extra; without it, reading
a NIfTI file fails for that file with :class:`~ichinfer.errors.MissingDependencyError`). Voxel
values are taken as HU after the header's ``scl_slope`` / ``scl_inter`` (nibabel applies them).
Each slice is presented like a standard axial DICOM image: row 0 = anterior, column 0 = patient
right (LPS row cosines (1,0,0), column cosines (0,1,0) for an unrotated volume), slices ordered
head -> foot.
``SliceInfo.frame`` is the index along the file's own slice axis (the array axis closest to
patient S-I, usually the third); positions are the affine's RAS converted to DICOM LPS.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ichinfer.dicom import Series, SliceInfo, clean_hu, order_slices
from ichinfer.errors import InvalidInputError, MissingDependencyError

try:
    import nibabel as nib
    from nibabel.orientations import (
        apply_orientation,
        axcodes2ornt,
        io_orientation,
        ornt_transform,
    )
    from nibabel.spatialimages import SpatialImage
except ImportError as _err:  # the [nifti] extra; DICOM needs none of it
    raise MissingDependencyError(
        "reading NIfTI (.nii, .nii.gz) needs nibabel, an optional extra: "
        "pip install 'ichinfer[nifti]'"
    ) from _err

__all__ = ["is_nifti_path", "iter_slices_hu", "load_slice_hu", "read_nifti_series"]

logger = logging.getLogger(__name__)

_TARGET_AXCODES = ("P", "L", "I")
"""Array axes after reorientation: rows run to posterior, columns to patient left, slices to
inferior, i.e. (row 0, column 0, slice 0) = anterior, right, superior."""
_RAS_TO_LPS = np.array([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class _Layout:
    """How the file's array axes map onto (row, column, slice) of the presented images."""

    shape: tuple[int, int, int]  # spatial shape of the file array
    transform: np.ndarray  # ornt_transform: per file axis (target axis, flip)
    slice_axis: int  # file axis that becomes the slice axis
    affine: np.ndarray

    def file_axis(self, target: int) -> int:
        return int(np.flatnonzero(self.transform[:, 0] == target)[0])

    def spacing(self, target: int) -> float:
        return float(np.linalg.norm(self.affine[:3, self.file_axis(target)]))

    def cosines_lps(self, target: int) -> np.ndarray:
        """Unit direction (LPS) in which the index of ``target`` axis increases."""
        axis = self.file_axis(target)
        column = self.affine[:3, axis] * self.transform[axis, 1]
        return column / np.linalg.norm(column) * _RAS_TO_LPS

    def n_slices(self) -> int:
        return self.shape[self.slice_axis]

    def stored_index(self, k: int) -> int:
        """File index along the slice axis of presented slice ``k`` (0 = most superior)."""
        flip = self.transform[self.slice_axis, 1]
        return k if flip > 0 else self.n_slices() - 1 - k

    def position_lps(self, stored: int) -> tuple[float, float, float]:
        """LPS position (mm) of pixel (row 0, column 0) of the slice at file index ``stored``."""
        index = np.zeros(3)
        for axis in range(3):
            target, flip = int(self.transform[axis, 0]), self.transform[axis, 1]
            if target == 2:
                index[axis] = stored
            else:
                index[axis] = 0 if flip > 0 else self.shape[axis] - 1
        ras = self.affine[:3, :3] @ index + self.affine[:3, 3]
        lps = ras * _RAS_TO_LPS
        return float(lps[0]), float(lps[1]), float(lps[2])

    def orient_slice(self, plane: np.ndarray) -> np.ndarray:
        """Turn a 2-D array over the two non-slice file axes into (rows, columns)."""
        rest = [axis for axis in range(3) if axis != self.slice_axis]
        ornt = np.array([self.transform[axis] for axis in rest])
        return apply_orientation(plane, ornt)

    def take(self, volume: np.ndarray, stored: int) -> np.ndarray:
        index: list[int | slice] = [slice(None)] * 3
        index[self.slice_axis] = stored
        return volume[tuple(index)]


def is_nifti_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is named like a NIfTI file (``.nii`` or ``.nii.gz``)."""
    return os.fspath(path).lower().endswith((".nii", ".nii.gz"))


def _stem(path: str) -> str:
    name = os.path.basename(path)
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _uid(path: str, role: str) -> str:
    """A valid DICOM UID (2.25 form) derived deterministically from the absolute path."""
    key = f"file://{os.path.abspath(path)}#{role}"
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_URL, key).int}"


def _load(path: str) -> tuple[SpatialImage, _Layout]:
    """Open ``path`` and work out its layout; raises InvalidInputError naming the file."""
    try:
        img = nib.load(path)
        if not isinstance(img, SpatialImage):
            raise TypeError(f"{type(img).__name__} is not a spatial image")
        shape = tuple(int(n) for n in img.shape)
        affine = np.asarray(img.affine, dtype=np.float64)
        dtype = np.dtype(img.get_data_dtype())
    except Exception as err:  # noqa: BLE001 - nibabel raises many types for a broken header
        raise InvalidInputError(
            f"unreadable NIfTI: {type(err).__name__}: {err}", path=path
        ) from err
    if len(shape) < 3 or any(n != 1 for n in shape[3:]):
        raise InvalidInputError(f"NIfTI shape {shape}: expected one 3-D volume", path=path)
    if dtype.kind not in "iuf":
        raise InvalidInputError(f"NIfTI data type {dtype} is not a greyscale number", path=path)
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise InvalidInputError("NIfTI affine is not finite or is singular", path=path)
    try:
        transform = ornt_transform(io_orientation(affine), axcodes2ornt(_TARGET_AXCODES))
    except Exception as err:  # noqa: BLE001 - degenerate orientations
        raise InvalidInputError(f"cannot orient NIfTI affine: {err}", path=path) from err
    slice_axis = int(np.flatnonzero(transform[:, 0] == 2)[0])
    spatial = (shape[0], shape[1], shape[2])
    return img, _Layout(spatial, transform, slice_axis, affine)


def read_nifti_series(path: str | os.PathLike[str]) -> Series:
    """Describe a NIfTI volume as a head -> foot :class:`Series` (header only, no voxels)."""
    name = os.fspath(path)
    _, layout = _load(name)
    rows = layout.shape[layout.file_axis(0)]
    columns = layout.shape[layout.file_axis(1)]
    row_cos, col_cos = layout.cosines_lps(1), layout.cosines_lps(0)
    orientation = tuple(float(v) + 0.0 for v in (*row_cos, *col_cos))  # no -0.0
    pixel_spacing = (layout.spacing(0), layout.spacing(1))
    thickness = layout.spacing(2)
    stem = _stem(name)
    slices = []
    for k in range(layout.n_slices()):
        stored = layout.stored_index(k)
        slices.append(
            SliceInfo(
                path=name,
                frame=stored,
                sop_instance_uid=f"{stem}.{stored}",
                instance_number=k + 1,
                position_mm=layout.position_lps(stored),
                pixel_spacing_mm=pixel_spacing,
                rows=rows,
                columns=columns,
                slice_thickness_mm=thickness,
            )
        )
    ordered, spacing, notes = order_slices(slices, orientation, label=f"NIfTI {stem}")
    return Series(
        study_uid=_uid(name, "study"),
        series_uid=_uid(name, "series"),
        slices=ordered,
        orientation=orientation,
        spacing_mm=spacing if spacing is not None else thickness,
        warnings=notes,
        source="nifti",
    )


def _clean(plane: np.ndarray, path: str, stored: int) -> np.ndarray:
    try:
        return np.ascontiguousarray(clean_hu(plane))
    except ValueError as err:
        raise InvalidInputError(f"slice {stored}: {err}", path=path) from err


def load_slice_hu(path: str | os.PathLike[str], frame: int) -> np.ndarray:
    """HU (float32, rows x columns) of the slice at file index ``frame`` along the slice axis."""
    name = os.fspath(path)
    img, layout = _load(name)
    if not 0 <= frame < layout.n_slices():
        raise InvalidInputError(
            f"slice {frame} out of range (0..{layout.n_slices() - 1})", path=name
        )
    index: list[int | slice] = [slice(None)] * len(img.shape)
    index[layout.slice_axis] = frame
    for extra in range(3, len(img.shape)):
        index[extra] = 0
    try:
        plane = np.asarray(img.dataobj[tuple(index)], dtype=np.float32)
    except Exception as err:  # noqa: BLE001 - truncated or corrupt voxel data
        raise InvalidInputError(f"cannot read voxel data: {err}", path=name) from err
    return _clean(layout.orient_slice(plane), name, frame)


def iter_slices_hu(path: str | os.PathLike[str], frames: Sequence[int]) -> Iterator[np.ndarray]:
    """Yield the HU slices at file indices ``frames``, reading the volume once."""
    name = os.fspath(path)
    img, layout = _load(name)
    try:
        volume = img.get_fdata(dtype=np.float32)
    except Exception as err:  # noqa: BLE001 - truncated or corrupt voxel data
        raise InvalidInputError(f"cannot read voxel data: {err}", path=name) from err
    volume = volume.reshape(volume.shape[:3])
    for frame in frames:
        if not 0 <= frame < layout.n_slices():
            raise InvalidInputError(
                f"slice {frame} out of range (0..{layout.n_slices() - 1})", path=name
            )
        yield _clean(layout.orient_slice(layout.take(volume, frame)), name, frame)
