"""What classification and segmentation share: inputs to scans, scans to model grids, batches.

:func:`scan_inputs` turns what the user passed into series (via :mod:`ichinfer.dicom`);
:class:`PreparedSeries` decodes a series once onto the model grid(s) it is asked for, so a
classifier and a segmenter of the same input size share one decode; :func:`run_batched` feeds
a session in batches without holding more than a batch of inputs at once.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from ichinfer import dicom
from ichinfer.decode_worker import (
    callers_env,
    decode_file,
    decode_into,
    in_env,
    map_stack,
    shared_folder,
    shared_prefix,
    watch_parent,
)
from ichinfer.errors import IchInferError, InvalidInputError
from ichinfer.preprocess import model_inputs, to_model_grid, with_prior
from ichinfer.results import Failure
from ichinfer.runtime import Session

PathInput = str | os.PathLike | Sequence[str | os.PathLike]
DECODE_THREADS_ENV = "ICHINFER_DECODE_THREADS"
DECODE_PROCESSES_ENV = "ICHINFER_DECODE_PROCESSES"
T = TypeVar("T")
logger = logging.getLogger(__name__)


def scan_inputs(
    paths: PathInput, *, on_error: str, scanner: Callable[..., dicom.ScanResult] | None = None
) -> dicom.ScanResult:
    """Scan ``paths``; a path that yields no CT image (an empty folder, a folder of reports)
    is an error too: raised, or with ``on_error="collect"`` added to the failures.
    ``scanner`` replaces :func:`ichinfer.dicom.scan` (same signature and result)."""
    if on_error not in ("raise", "collect"):
        raise ValueError(f"on_error must be 'raise' or 'collect', not {on_error!r}")
    result = (scanner or dicom.scan)(paths, on_error=on_error)  # type: ignore[arg-type]
    given = [os.fspath(paths)] if isinstance(paths, (str, os.PathLike)) else [
        os.fspath(p) for p in paths]
    if not given and on_error == "raise":
        raise InvalidInputError("no CT images found: no paths given")
    used = {os.path.abspath(s.path) for series in result.series for s in series.slices}
    used |= {os.path.abspath(f.path) for f in result.failures}
    for path in given:
        root = os.path.abspath(path)
        if any(_under(u, root) for u in used):
            continue
        skipped = [f for f in result.skipped if _under(os.path.abspath(f.path), root)]
        reason = "no CT images found" + (
            f" ({len(skipped)} files skipped: not CT images)" if skipped
            else " (empty folder)" if os.path.isdir(path) else "")
        if on_error == "raise":
            raise InvalidInputError(reason, path=path)
        result.failures.append(dicom.InputFailure(path, reason, "InvalidInputError"))
    return result


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def failures_of(items: Iterable[dicom.InputFailure]) -> list[Failure]:
    return [Failure(path=f.path, reason=f.reason, kind=f.kind) for f in items]


def series_failure(series: dicom.Series, err: Exception) -> Failure:
    """A failure record for a whole series, named by its folder (or its UID)."""
    where = str(os.path.dirname(series.slices[0].path)) if series.slices else series.series_uid
    return Failure(path=where, reason=str(err), kind=type(err).__name__)


def each_series(
    series_list: Iterable[dicom.Series],
    run: Callable[[dicom.Series], T],
    *,
    on_error: str,
    failures: list[Failure] | None,
) -> Iterator[T]:
    """``run`` on each series; with ``on_error="collect"`` an ichinfer error becomes a failure
    record (appended to ``failures`` when given) and the next series goes on."""
    for series in series_list:
        try:
            yield run(series)
        except IchInferError as err:
            if on_error == "raise":
                raise
            if failures is not None:
                failures.append(series_failure(series, err))


@dataclass
class PreparedSeries:
    """A series and its slices on the model grid(s), decoded once."""

    series: dicom.Series
    grids: dict[int, np.ndarray] = field(default_factory=dict)
    #: per grid size, the slabs :func:`run_batched` has built (``model_inputs``' ``slabs``)
    slabs: dict[int, dict] = field(default_factory=dict)

    @property
    def locations_mm(self) -> np.ndarray:
        return self.series.locations_mm

    def grid(self, size: int) -> np.ndarray:
        if size not in self.grids:
            self.decode([size])
        return self.grids[size]

    def decode(self, sizes: Sequence[int]) -> None:
        """Read every slice once and put it on each grid size in ``sizes`` not done yet.

        Single-frame DICOM files are read by :func:`decode_threads` threads (file reads, the
        pixel codecs that release the GIL and the resize overlap); each writes its own rows of
        the stacks, so no slice is copied twice. With :func:`decode_processes` above 1, this
        process and worker processes share the slices instead. NIfTI and multi-frame files are
        read in order.
        """
        todo = [s for s in dict.fromkeys(sizes) if s not in self.grids]
        if not todo:
            return
        slices = self.series.slices
        n = len(slices)
        single_frame = self.series.source == "dicom" and all(x.frame is None for x in slices)
        processes = min(decode_processes(), n)
        workers = min(decode_threads(), n)
        shared = _shared_stacks(n, todo) if processes > 1 and single_frame else None
        if shared is not None:
            files, stacks = shared
            try:
                _decode_alongside_workers(list(slices), todo, files, processes - 1)
            finally:
                for path in files.values():
                    os.unlink(path)  # the mappings stay; the name goes
            self.grids.update(stacks)
            return
        stacks = {s: np.empty((n, s, s), dtype=np.float32) for s in todo}
        if workers > 1 and single_frame:

            def put(i: int) -> None:
                for s, g in zip(todo, decode_file(slices[i], todo), strict=True):
                    stacks[s][i] = g

            pool = ThreadPoolExecutor(workers, thread_name_prefix="ichinfer-decode")
            try:
                for _ in pool.map(put, range(n)):  # in order: the first failing slice raises
                    pass
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        else:
            for i, hu in enumerate(self.series.iter_hu()):  # already clean HU
                for s in todo:
                    stacks[s][i] = to_model_grid(hu, s)
        self.grids.update(stacks)


def _shared_stacks(n: int, sizes: list[int]) -> tuple[dict[int, str], dict[int, np.ndarray]] | None:
    """A stack per size in a file that worker processes map too (in ``/dev/shm`` where there is
    one), so they write their slices in place: nothing pickled back, nothing copied twice. The
    space is reserved up front (a full ``/dev/shm``, as in a container's default 64 MB, would
    otherwise kill the process with SIGBUS mid-write); None where it cannot be, and the caller
    decodes in this process instead. Named after this process, so that a worker removes them
    if this process is killed before it does (:func:`ichinfer.decode_worker.watch_parent`)."""
    if os.name == "nt":  # a mapped file cannot be unlinked there: decode in this process
        return None
    folder = shared_folder()
    files: dict[int, str] = {}
    stacks: dict[int, np.ndarray] = {}
    try:
        for s in sizes:
            fd, path = tempfile.mkstemp(prefix=shared_prefix(os.getpid()), dir=folder)
            files[s] = path
            try:
                size = n * s * s * 4
                if hasattr(os, "posix_fallocate"):
                    os.posix_fallocate(fd, 0, size)
                else:
                    os.ftruncate(fd, size)
                stacks[s] = map_stack(fd, n, s)
            finally:
                os.close(fd)
    except OSError:
        for path in files.values():
            os.unlink(path)
        return None
    return files, stacks


def _decode_alongside_workers(slices: list[dicom.SliceInfo], sizes: list[int],
                              files: dict[int, str], workers: int) -> None:
    """Decode ``slices`` into the stacks that ``files`` hold, in chunks of consecutive slices
    shared between this process and ``workers`` worker processes (:func:`share_with_workers`).
    The first failing slice raises (its error names the file)."""
    n = len(slices)
    chunk = max(1, min(4, n // (4 * (workers + 1))))
    tasks = [(files, n, start, slices[start : start + chunk]) for start in range(0, n, chunk)]
    share_with_workers(decode_into, tasks, workers)


def share_with_workers(fn: Callable[..., None], tasks: Sequence[tuple], workers: int) -> None:
    """``fn(*task)`` for every task, in ``workers`` worker processes (:func:`_process_pool`) and
    in this one: this process runs the next task itself whenever every worker has four waiting,
    so both sides stay busy whatever their speeds, and at the end it takes back the tasks no
    worker has started. ``fn`` must be importable by the workers (a module that does not import
    onnxruntime: :mod:`ichinfer.decode_worker`), returns nothing worth sending back, and may
    run twice on a task: where a worker dies (killed, out of memory), this process runs every
    task the pool did not finish, and the next call starts a new pool.

    Four wait per worker because handing one over takes this process's GIL, which the pixel
    codecs hold a slice at a time; with two the worker idled (CQ500 decode: 1.79 s against
    1.56 s). Tasks start in order and none starts after one has failed; the earliest failure
    is raised once the tasks in flight are done.

    Ctrl-C and SIGTERM are held back while the pool's own code runs (:func:`_interrupts_held`),
    so the exception they raise comes between its calls, never inside one."""
    with _interrupts_held():
        pool = _process_pool(workers)
    env = callers_env()  # the decoder choice as it is now, not as it was when the pool started
    pending: dict[Future, int] = {}
    failed: dict[int, BaseException] = {}
    lost: list[int] = []  # the tasks of a pool that broke: this process runs them

    def collect(futures: Iterable[Future]) -> None:
        for f in futures:
            k = pending.pop(f)
            err = f.exception()
            if isinstance(err, BrokenProcessPool):
                lost.append(k)
            elif err is not None:
                failed[k] = err

    def here(k: int) -> None:
        try:
            fn(*tasks[k])
        except Exception as err:  # noqa: BLE001 - raised below, in task order
            failed[k] = err

    def wait_some() -> None:
        with _interrupts_held():
            done = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED).done
        if not done and getattr(pool, "_broken", False):
            # CPython 3.11 (gh-107219): a task cancelled here before a worker died stops
            # the pool's thread before it has failed the others, which never finish then
            lost.extend(pending.values())
            pending.clear()
        collect(done)

    k = 0
    try:
        while k < len(tasks) and not failed:
            while not lost and k < len(tasks) and len(pending) < 4 * workers:
                try:
                    with _interrupts_held():
                        pending[pool.submit(in_env, env, fn, *tasks[k])] = k
                except BrokenProcessPool:
                    lost.append(k)
                k += 1
            with _interrupts_held():
                collect([f for f in pending if f.done()])
            if k < len(tasks) and not failed:
                k += 1
                here(k - 1)
        while pending:  # at the end, take back the tasks no worker has started yet
            # (not from a broken pool: its thread fails them, and a cancel races with it)
            broken = lost or getattr(pool, "_broken", False)
            with _interrupts_held():
                taken = None if broken else next((f for f in reversed(pending) if f.cancel()),
                                                 None)
            if taken is not None:
                j = pending.pop(taken)
                if not failed:  # one failed: no later task is needed
                    here(j)
            else:
                wait_some()
    finally:
        with _interrupts_held():
            for f in pending:
                f.cancel()
    if lost:
        logger.warning("a decode worker process died: this process ran the %d tasks it left",
                       len(lost))
        with _interrupts_held():
            _shutdown_pool(forget=True, cancel=False)
        for j in sorted(lost):
            if not failed or j < min(failed):
                here(j)
    if failed:
        raise failed[min(failed)]


def _env_count(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        n = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, not {raw!r}") from None
    if n < minimum:
        raise ValueError(f"{name} must be >= {minimum}, not {n}")
    return n


def decode_threads() -> int:
    """Threads that decode a series: ``ICHINFER_DECODE_THREADS`` → min(4, CPUs); 1 = in order."""
    return _env_count(DECODE_THREADS_ENV, min(4, os.cpu_count() or 1), 1)


def decode_processes() -> int:
    """Processes that decode a series, this one included: ``ICHINFER_DECODE_PROCESSES``; 0 (the
    default) or 1 leaves decoding to this process alone (:func:`decode_threads`), N > 1 adds
    N - 1 worker processes that decode beside it.

    The pixel codecs (JPEG Lossless, JPEG 2000) and pydicom's parsing hold the GIL, so threads
    do not decode in parallel; processes do, at the cost of their own memory (each worker
    imports pydicom, numpy and OpenCV) and of a start-up on first use. Off by default in the
    library (a script that turns it on needs an ``if __name__ == "__main__":`` guard, as with
    any multiprocessing); the command line turns it on (``--decode-processes``).
    ``benchmarks/README.md`` measures both ways."""
    return _env_count(DECODE_PROCESSES_ENV, 0, 0)


_HELD_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM")
                      if hasattr(signal, name))


@contextmanager
def _interrupts_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM held back for the duration, then handled as they would have been.

    Their handlers raise (KeyboardInterrupt; the ``ichinfer`` command's SIGTERM too) at
    whatever line runs, and inside concurrent.futures that can leave a future's lock taken or
    a worker started but not registered; the exit then waits for ever (seen in CI, and
    reproduced with SIGTERMs at random moments of repeated calls: tests/test_decode.py). Only
    in the main thread, the one where Python runs signal handlers; elsewhere it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {}
    for signum in _HELD_SIGNALS:
        handler = signal.getsignal(signum)
        if handler is not None:  # None: set outside Python, left alone
            previous[signum] = signal.signal(signum, lambda n, frame: held.append(n))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if held:
            signal.raise_signal(held[0])


_POOL: ProcessPoolExecutor | None = None
_POOL_SIZE = 0
_POOL_LOCK = threading.Lock()


def _process_pool(processes: int) -> ProcessPoolExecutor:
    """One pool per process, kept for later series and shut down at exit.

    Workers come from a fork server (``spawn`` where there is none), never by forking this
    process: it runs onnxruntime's threads, and a fork copies none of them but every lock."""
    global _POOL, _POOL_SIZE
    import multiprocessing as mp

    with _POOL_LOCK:
        if _POOL is None or _POOL_SIZE != processes:
            if _POOL is not None:
                _POOL.shutdown(wait=False, cancel_futures=True)
            method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
            ctx = mp.get_context(method)
            if method == "forkserver":
                ctx.set_forkserver_preload(["ichinfer.decode_worker"])  # no onnxruntime
            _POOL = ProcessPoolExecutor(processes, mp_context=ctx, initializer=watch_parent,
                                        initargs=(os.getpid(),))
            _POOL_SIZE = processes
        return _POOL


@atexit.register
def _shutdown_pool(forget: bool = False, cancel: bool = True) -> None:
    """Shut the pool down (``cancel``: its waiting tasks too; not for a broken pool, whose
    thread fails them itself and, in CPython 3.11, stops at one cancelled: gh-107219)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None and not sys.is_finalizing():
            _POOL.shutdown(wait=not forget, cancel_futures=cancel)
        if forget:
            _POOL = None


def release_workers() -> None:
    """Stop the decode worker processes now (the next decode starts them again), for a caller
    done decoding that wants their memory back."""
    _shutdown_pool(forget=True)


def run_batched(
    session: Session,
    prepared: PreparedSeries,
    indices: np.ndarray,
    *,
    batch_size: int,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    mirror: bool = False,
) -> np.ndarray:
    """Build model inputs for ``indices`` batch by batch and run them; outputs concatenated.

    ``mirror``: each batch also runs mirrored left to right, in the same call, and the two
    outputs are averaged, an output with image axes (N, H, W, C) mirrored back first.
    """
    spec = session.spec
    grid = prepared.grid(spec.input_size[0])
    slabs = prepared.slabs.setdefault(spec.input_size[0], {})
    outputs = []
    for start in range(0, len(indices), batch_size):
        batch = indices[start : start + batch_size]
        x = model_inputs(grid, prepared.locations_mm, batch, slab_mm=spec.slab_mm,
                         context=spec.context, slabs=slabs)
        if spec.prior:
            x = with_prior(x, spec.context)
        y = _mirror_averaged(session, x) if mirror else session.run(x)
        outputs.append(transform(y) if transform else y)
    if not outputs:
        return np.zeros((0,), dtype=np.float32)
    return np.concatenate(outputs, axis=0)


def _mirror_averaged(session: Session, x: np.ndarray) -> np.ndarray:
    n = len(x)
    y = session.run(np.concatenate([x, x[:, :, ::-1]]))
    return average_with_mirrored(y[:n], y[n:])


def average_with_mirrored(y: np.ndarray, y_of_mirrored: np.ndarray) -> np.ndarray:
    """A model's output averaged with its output for the input mirrored left to right (NHWC),
    the latter mirrored back first where it has image axes (N, H, W, C)."""
    back = y_of_mirrored[:, :, ::-1] if y_of_mirrored.ndim == 4 else y_of_mirrored
    return (y + back) / 2.0


def slice_extents_mm(locations_mm: np.ndarray, fallback_mm: float | None) -> np.ndarray:
    """The length of series each slice stands for: between the midpoints to its neighbours.

    Uses positions, not (0018,0050) SliceThickness, so gaps and overlaps count right; an end
    slice gets the step to its one neighbour; a single slice gets ``fallback_mm`` (NaN if None).
    """
    loc = np.asarray(locations_mm, dtype=np.float64)
    n = loc.size
    if n == 1:
        return np.array([fallback_mm if fallback_mm else np.nan])
    gaps = np.abs(np.diff(loc))
    ext = np.empty(n)
    ext[1:-1] = (gaps[:-1] + gaps[1:]) / 2.0
    ext[0], ext[-1] = gaps[0], gaps[-1]
    return ext
