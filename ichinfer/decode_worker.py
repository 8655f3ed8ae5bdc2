"""What a decode worker runs: DICOM files to clean HU on each model grid, and overlay PNGs.

Kept apart from :mod:`ichinfer.pipeline` so that worker processes (and the fork server they come
from) import pydicom, numpy and OpenCV only, never onnxruntime: the workers' pickled task names
this module, and importing it is all they do.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import select
import tempfile
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from ichinfer import dicom
from ichinfer.preprocess import to_model_grid


def shared_folder() -> str:
    """Where the stacks that workers write into live: ``/dev/shm`` where there is one."""
    return "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()


def shared_prefix(pid: int) -> str:
    """The name every shared stack file of process ``pid`` starts with."""
    return f"ichinfer-decode-{pid}-"


def watch_parent(pid: int) -> None:
    """Worker initializer: exit as soon as process ``pid`` (the one that made the pool) is gone,
    removing the shared stack files it left (:func:`shared_prefix`).

    A pool worker holds both ends of its task queue, so it never sees its parent die; a killed
    ``ichinfer`` (SIGKILL, out of memory) left its worker, and through it the fork server and
    the resource tracker, running for ever, and a stack in ``/dev/shm`` (memory) until reboot.
    Waits on a pidfd where Linux has one (no pid reuse to fool it), else checks every half
    second; not on Windows."""

    def gone() -> None:
        folder = shared_folder()
        for name in os.listdir(folder):
            if name.startswith(shared_prefix(pid)):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(folder, name))
        os._exit(0)

    def watch() -> None:
        try:
            fd = os.pidfd_open(pid)
        except (AttributeError, OSError):  # not Linux >= 5.3, or the parent already gone
            while True:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    gone()
                except PermissionError:  # it exists
                    pass
                time.sleep(0.5)
        select.select([fd], [], [])  # readable when the process has exited
        gone()

    if os.name == "nt":  # os.kill(pid, 0) would terminate the parent there, not test it
        return
    threading.Thread(target=watch, name="ichinfer-parent-watch", daemon=True).start()


#: settings a worker takes from the process that hands it a task, at every task: the pool
#: starts once and outlives changes to them (a worker kept decoding with pylibjpeg after
#: ICHINFER_JPEG_LOSSLESS_DECODER had named another decoder)
CALLERS_ENV = (dicom.JPEG_LOSSLESS_DECODER_ENV,)


def callers_env() -> dict[str, str | None]:
    """This process's values of :data:`CALLERS_ENV` (``None``: unset), for :func:`in_env`."""
    return {name: os.environ.get(name) for name in CALLERS_ENV}


def in_env(env: dict[str, str | None], fn: Callable[..., None], *args: object) -> None:
    """``fn(*args)`` with ``env`` set in this (worker) process first."""
    for name, value in env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    fn(*args)


def decode_file(info: dicom.SliceInfo, sizes: Sequence[int]) -> list[np.ndarray]:
    """One scanned single-frame DICOM slice to clean HU (:func:`ichinfer.dicom.read_slice_hu`),
    then onto each grid size (decode threads and worker processes both call it)."""
    hu = dicom.read_slice_hu(info)
    return [to_model_grid(hu, s) for s in sizes]


def map_stack(fd: int, n: int, size: int) -> np.ndarray:
    """The float32 stack ``(n, size, size)`` that the open file ``fd`` holds, mapped shared:
    what one process writes, every process that maps the file reads."""
    return np.frombuffer(mmap.mmap(fd, n * size * size * 4), dtype=np.float32).reshape(
        n, size, size)


def decode_into(files: dict[int, str], n: int, start: int,
                infos: Sequence[dicom.SliceInfo]) -> None:
    """:func:`decode_file` on consecutive slices from ``start``, each written into its row of
    the stacks of ``n`` slices that ``files`` hold (one file per grid size, :func:`map_stack`),
    which the process that asked maps too: nothing is sent back."""
    stacks = {}
    for s, name in files.items():
        with open(name, "r+b") as f:
            stacks[s] = map_stack(f.fileno(), n, s)
    sizes = list(files)
    for i, info in enumerate(infos, start):
        for s, g in zip(sizes, decode_file(info, sizes), strict=True):
            stacks[s][i] = g


def write_overlays(
    items: Sequence[tuple[dicom.SliceInfo, bytes, tuple[int, int], str]],
) -> None:
    """The blue overlay PNG of each ``(DICOM slice, mask as np.packbits bytes, mask shape,
    PNG path)``: the slice decoded again (the series is not kept at full resolution)."""
    from ichinfer.overlay import blue_overlay, write_png

    for info, packed, shape, out in items:
        bits = np.unpackbits(np.frombuffer(packed, dtype=np.uint8), count=shape[0] * shape[1])
        hu = dicom.read_slice_hu(info)
        write_png(out, blue_overlay(hu, bits.reshape(shape)))
