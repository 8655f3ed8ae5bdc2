"""Decoding a series onto the model grid: in order, by threads, or by worker processes
(``ICHINFER_DECODE_PROCESSES``) — the same grids every way, and the same clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ichinfer import dicom
from ichinfer.errors import InvalidInputError
from ichinfer.pipeline import DECODE_PROCESSES_ENV, DECODE_THREADS_ENV, PreparedSeries

WAYS = {
    "in order": {DECODE_THREADS_ENV: "1", DECODE_PROCESSES_ENV: "0"},
    "threads": {DECODE_THREADS_ENV: "2", DECODE_PROCESSES_ENV: "0"},
    "processes": {DECODE_THREADS_ENV: "1", DECODE_PROCESSES_ENV: "2"},
}


def _decode(folder: Path, way: str, monkeypatch) -> dict[int, np.ndarray]:
    for name, value in WAYS[way].items():
        monkeypatch.setenv(name, value)
    prepared = PreparedSeries(dicom.read_series(str(folder)))
    prepared.decode([32, 48])
    return prepared.grids


def test_every_way_gives_the_same_grids(phantom_study, monkeypatch) -> None:
    ref = _decode(phantom_study.folder, "in order", monkeypatch)
    assert set(ref) == {32, 48} and len(ref[32]) == phantom_study.n_slices
    for way in ("threads", "processes"):
        grids = _decode(phantom_study.folder, way, monkeypatch)
        for size in ref:
            np.testing.assert_array_equal(grids[size], ref[size], err_msg=way)


@pytest.mark.parametrize("way", list(WAYS))
def test_a_broken_slice_is_named(phantom_study, tmp_path, way, monkeypatch) -> None:
    folder = tmp_path / "series"
    shutil.copytree(phantom_study.folder, folder)
    series = dicom.read_series(str(folder))
    victim = Path(series.slices[len(series.slices) // 2].path)
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) - 5000])  # pixel data cut short after the scan
    for name, value in WAYS[way].items():
        monkeypatch.setenv(name, value)
    with pytest.raises(InvalidInputError, match=victim.name):
        PreparedSeries(series).decode([32])


@pytest.mark.parametrize("value", ["many", "-1"])
def test_bad_process_count(phantom_study, value, monkeypatch) -> None:
    monkeypatch.setenv(DECODE_PROCESSES_ENV, value)
    prepared = PreparedSeries(dicom.read_series(str(phantom_study.folder)))
    with pytest.raises(ValueError, match=DECODE_PROCESSES_ENV):
        prepared.decode([32])


# CPython 3.11's pool thread fails on a task this process cancelled (take-back) as a worker
# dies: "Exception in thread" (InvalidStateError; gh-107219, fixed after 3.11). The decode is whole.
_POOL_THREAD_RACE = pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnhandledThreadExceptionWarning")


@_POOL_THREAD_RACE
def test_a_dead_worker_loses_nothing(phantom_study, monkeypatch) -> None:
    """A worker killed (out of memory, by hand) between two series or during one: this process
    decodes what the pool did not, the same pixels, and the next series gets a new pool."""
    import os
    import signal

    from ichinfer import pipeline

    for name, value in WAYS["processes"].items():
        monkeypatch.setenv(name, value)
    series = dicom.read_series(str(phantom_study.folder))
    expected = PreparedSeries(series).grid(32)
    dead = list(pipeline._POOL._processes)  # noqa: SLF001 - the test kills a worker
    for pid in dead:
        os.kill(pid, signal.SIGKILL)
    np.testing.assert_array_equal(PreparedSeries(series).grid(32), expected)
    np.testing.assert_array_equal(PreparedSeries(series).grid(32), expected)
    pool = pipeline._POOL  # noqa: SLF001 - gone, to be made anew by the next call, or new
    assert pool is None or not set(pool._processes) & set(dead)  # noqa: SLF001


@_POOL_THREAD_RACE
def test_a_worker_dying_mid_series_loses_nothing(phantom_study, monkeypatch, caplog) -> None:
    """The pool breaks while tasks are waiting for it: none of them is lost."""
    import logging

    from ichinfer import decode_worker, pipeline

    for name, value in WAYS["processes"].items():
        monkeypatch.setenv(name, value)
    series = dicom.read_series(str(phantom_study.folder))
    expected = PreparedSeries(series).grid(32)
    monkeypatch.setattr(pipeline, "decode_into", _die_in_a_worker)
    with caplog.at_level(logging.WARNING, logger="ichinfer.pipeline"):
        np.testing.assert_array_equal(PreparedSeries(series).grid(32), expected)
    assert "a decode worker process died" in caplog.text
    monkeypatch.setattr(pipeline, "decode_into", decode_worker.decode_into)
    np.testing.assert_array_equal(PreparedSeries(series).grid(32), expected)


def _die_in_a_worker(*task) -> None:
    """decode_into, except that a worker process running it dies (as the kernel's OOM killer
    would kill it). This process takes its time over each task, so that a worker that is
    still starting (a new pool: fork server, imports) gets a task before this process has run
    them all itself; without the pause, a fresh clone's run once saw no task reach a worker."""
    import multiprocessing
    import os
    import signal
    import time

    from ichinfer.decode_worker import decode_into

    if multiprocessing.parent_process() is not None:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.3)
    decode_into(*task)


def test_workers_exit_when_the_process_that_made_them_is_killed(phantom_study) -> None:
    """A worker holds both ends of its task queue, so it would never see its parent die: a
    killed ``ichinfer`` left its worker (and the fork server) running for ever, and the shared
    stack it was decoding into in ``/dev/shm``. The workers go, and remove the stack."""
    import os
    import signal
    import subprocess
    import sys
    import time

    code = (
        "import os, sys\n"
        "from ichinfer import dicom, pipeline\n"
        f"os.environ[pipeline.DECODE_PROCESSES_ENV] = '2'\n"
        f"pipeline.PreparedSeries(dicom.read_series({str(phantom_study.folder)!r})).decode([32])\n"
        "print(*pipeline._POOL._processes, flush=True)\n"
        "sys.stdin.read()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    workers = [int(p) for p in proc.stdout.readline().split()]
    assert workers
    from ichinfer.decode_worker import shared_folder, shared_prefix

    left = Path(shared_folder()) / f"{shared_prefix(proc.pid)}test"  # as a kill mid-decode would
    left.write_bytes(b"\0" * 4096)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    def alive(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    deadline = time.monotonic() + 10
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in workers)
    assert not left.exists()


def test_no_room_for_the_shared_stacks_decodes_here(phantom_study, monkeypatch) -> None:
    """Where the shared stacks cannot be reserved (a full ``/dev/shm``, as a container's 64 MB
    can be), the series is decoded in this process, with the same grids and no file left."""
    import errno
    import os

    from ichinfer import pipeline
    from ichinfer.decode_worker import shared_folder, shared_prefix

    ref = _decode(phantom_study.folder, "in order", monkeypatch)

    def full(fd, offset, size):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pipeline.os, "posix_fallocate", full, raising=False)
    monkeypatch.setattr(pipeline, "_process_pool", None)  # a worker would fail the test
    grids = _decode(phantom_study.folder, "processes", monkeypatch)
    for size in ref:
        np.testing.assert_array_equal(grids[size], ref[size])
    assert not [n for n in os.listdir(shared_folder()) if n.startswith(shared_prefix(os.getpid()))]


def test_released_workers_start_again(phantom_study, monkeypatch) -> None:
    from ichinfer import pipeline

    ref = _decode(phantom_study.folder, "in order", monkeypatch)
    _decode(phantom_study.folder, "processes", monkeypatch)
    assert pipeline._POOL is not None
    pipeline.release_workers()
    assert pipeline._POOL is None
    grids = _decode(phantom_study.folder, "processes", monkeypatch)
    for size in ref:
        np.testing.assert_array_equal(grids[size], ref[size])


def _record_env(path: str, k: int) -> None:
    """A task for the pool: which process ran it, and the decoder setting it saw."""
    import os

    from ichinfer.dicom import JPEG_LOSSLESS_DECODER_ENV

    with open(f"{path}/{k}", "w") as f:
        f.write(f"{os.getpid()} {os.environ.get(JPEG_LOSSLESS_DECODER_ENV, '(unset)')}")


def test_workers_take_the_decoder_setting_of_each_call(tmp_path, monkeypatch) -> None:
    """The pool starts once and is reused: a worker must decode with the decoder named when the
    task was handed over (ICHINFER_JPEG_LOSSLESS_DECODER), not when the pool started."""
    import os

    from ichinfer.dicom import JPEG_LOSSLESS_DECODER_ENV
    from ichinfer.pipeline import share_with_workers

    for value in ("pylibjpeg", "gdcm", None):
        if value is None:
            monkeypatch.delenv(JPEG_LOSSLESS_DECODER_ENV, raising=False)
        else:
            monkeypatch.setenv(JPEG_LOSSLESS_DECODER_ENV, value)
        out = tmp_path / str(value)
        out.mkdir()
        share_with_workers(_record_env, [(str(out), k) for k in range(400)], 1)
        seen = [p.read_text().split() for p in out.iterdir()]
        assert len(seen) == 400
        assert {pid for pid, _ in seen} - {str(os.getpid())}, "no task ran in the worker"
        assert {v for _, v in seen} == {value or "(unset)"}


_INTERRUPTED_CALLS = '''
import os, random, signal, sys, threading, time
from ichinfer import pipeline

class Stop(KeyboardInterrupt):
    pass

def stop(signum, frame):
    raise Stop()

def later(delay):
    time.sleep(delay)
    os.kill(os.getpid(), signal.SIGTERM)

if __name__ == "__main__":
    signal.signal(signal.SIGTERM, stop)  # as the ichinfer command turns SIGTERM into an exception
    rnd = random.Random(int(sys.argv[1]))
    for _ in range(40):
        threading.Thread(target=later, args=(rnd.uniform(0.0, 0.3),), daemon=True).start()
        try:
            pipeline.share_with_workers(time.sleep, [(0.0002,)] * 3000, 1)
            time.sleep(0.3)
        except Stop:
            pass
    print("done", flush=True)
'''


def test_interrupts_at_any_moment_never_hang_the_exit(tmp_path) -> None:
    """SIGTERM raising at random moments of repeated share_with_workers calls, 40 times in each
    of two processes: each process ends. An exception raised inside concurrent.futures' own
    code (a worker being started, a future's lock taken) left the exit waiting for ever (CI:
    the resume test's SIGTERM run; here, before the fix, 5 runs of 8 hung)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "calls.py"
    script.write_text(_INTERRUPTED_CALLS)
    procs = [subprocess.Popen([sys.executable, str(script), str(seed)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
             for seed in (1, 2)]
    hung, deadline = [], time.monotonic() + 60  # a run takes about 8 s here
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            hung.append(proc.args[-1])
            continue
        assert proc.returncode == 0 and out.strip() == "done", err[-2000:]
    assert not hung, f"seeds {hung} never exited"
