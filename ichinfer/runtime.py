"""onnxruntime sessions: provider choice, threads, the session cache, the metadata contract.

This is the only module that imports onnxruntime. :func:`resolve_providers` is the one place
that decides where a model runs; an explicit ``device="cuda"`` that onnxruntime cannot honour is
an error listing what is available, never a silent fall back to the CPU.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ichinfer.errors import ModelIntegrityError, ProviderUnavailableError
from ichinfer.models import ModelSpec, parse_spec, sha256

DEVICE_ENV = "ICHINFER_DEVICE"
THREADS_ENV = "ICHINFER_THREADS"
DEVICES = ("auto", "cpu", "cuda")
_GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider", "ROCMExecutionProvider")


_ARENA_LOCK = threading.Lock()
_ARENA: bool | None = None  # whether onnxruntime's environment holds a CPU arena for sessions


def _shared_cpu_arena() -> bool:
    """Register one CPU arena with onnxruntime's environment, once per process, for every
    session to draw from (``session.use_env_allocators``).

    Each session otherwise grows an arena of its own and keeps it: a classifier, a segmenter and
    the single-threaded twin of each that :meth:`Session.run` uses for lanes hold four, while
    they run one after another. Measured on the bundled models (2 cores, CQ500, classify then
    segment): peak resident memory 352 -> 298 MB, the same time. The arena lives as long as the
    process. Where onnxruntime refuses the registration, each session keeps its own arena."""
    global _ARENA
    with _ARENA_LOCK:
        if _ARENA is None:
            info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0,
                                     ort.OrtMemType.DEFAULT)
            try:
                ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, -1, -1, -1))
            except Exception:  # onnxruntime raises its own untyped errors
                _ARENA = False
            else:
                _ARENA = True
        return _ARENA


def available_providers() -> list[str]:
    return list(ort.get_available_providers())


def resolve_providers(
    device: str | None = None, providers: Sequence[str] | None = None
) -> list[str]:
    """Execution providers for ``device`` ("auto" | "cpu" | "cuda"; default ``ICHINFER_DEVICE``
    or "auto"). An explicit ``providers`` list wins and must be available."""
    available = available_providers()
    if providers:
        missing = [p for p in providers if p not in available]
        if missing:
            raise ProviderUnavailableError(
                f"providers {missing} are not available; onnxruntime has {available}"
            )
        return list(providers)
    device = (device or os.environ.get(DEVICE_ENV) or "auto").lower()
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, not {device!r}")
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise ProviderUnavailableError(
                "device='cuda' but onnxruntime has no CUDAExecutionProvider; available providers: "
                f"{available} (install the [gpu] extra: onnxruntime-gpu, and a matching CUDA)"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    gpu = [p for p in ("CUDAExecutionProvider",) if p in available]
    return [*gpu, "CPUExecutionProvider"]


def resolve_threads(threads: int | None) -> int:
    """Intra-op threads: argument → ``ICHINFER_THREADS`` → 0 (onnxruntime picks: all cores)."""
    if threads is None:
        raw = os.environ.get(THREADS_ENV)
        threads = int(raw) if raw else 0
    if threads < 0:
        raise ValueError(f"threads must be >= 0, not {threads}")
    return threads


def cpu_cores(threads: int) -> int:
    """The cores a session uses: ``threads``, or (0) the CPUs this process may run on."""
    if threads > 0:
        return threads
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def session_options(threads: int, providers: Sequence[str]) -> ort.SessionOptions:
    """The options every ichinfer session is made with (``threads``: intra-op threads, 0 for
    onnxruntime's default); ``benchmarks/op_profile.py`` profiles with the same."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if providers[0] == "CPUExecutionProvider":
        # no memory pattern: activations come from the arena tensor by tensor instead of
        # one block planned per input shape. Measured on the bundled segmenter (2 cores,
        # batch 8): 459 -> 248 MiB of extra peak memory, 98-102 ms per batch either way
        opts.enable_mem_pattern = False
    if _shared_cpu_arena():
        opts.add_session_config_entry("session.use_env_allocators", "1")
    return opts


class Session:
    """One onnxruntime session and the :class:`ModelSpec` its metadata describes."""

    def __init__(self, path: Path, providers: list[str], threads: int) -> None:
        self._path, self._providers = path, providers
        self._session = self._load(threads)
        used = self._session.get_providers()
        wanted_gpu = [p for p in providers if p in _GPU_PROVIDERS]
        if wanted_gpu and not any(p in used for p in wanted_gpu):
            raise ProviderUnavailableError(
                f"{path}: asked for {wanted_gpu} but the session runs on {used} "
                f"(onnxruntime could not initialise the GPU provider)"
            )
        self.providers = used
        self.threads = threads
        inp, out = self._session.get_inputs()[0], self._session.get_outputs()[0]
        meta = self._session.get_modelmeta().custom_metadata_map
        self.spec: ModelSpec = parse_spec(
            path,
            meta,
            input_name=inp.name,
            input_shape=list(inp.shape),
            output_name=out.name,
            output_shape=list(out.shape),
        )
        # on a GPU, bind the input and output explicitly (one host->device copy in, one out,
        # no per-call output allocation on the host side); the CPU path needs none of it
        self._io_binding = used[0] == "CUDAExecutionProvider"
        # on the CPU, a batch of at least as many slices as cores runs slice by slice in
        # parallel lanes (one single-threaded run per core): see :meth:`run`
        self.lanes = cpu_cores(threads) if used[0] == "CPUExecutionProvider" else 1
        self._lanes_lock = threading.Lock()
        self._single: ort.InferenceSession | None = None
        self._pool: ThreadPoolExecutor | None = None

    def _load(self, threads: int) -> ort.InferenceSession:
        opts = session_options(threads, self._providers)
        try:
            return ort.InferenceSession(str(self._path), sess_options=opts,
                                        providers=self._providers)
        except Exception as err:  # onnxruntime raises its own untyped errors
            raise ModelIntegrityError(f"{self._path}: onnxruntime cannot load it: {err}") from err

    def run(self, x: np.ndarray) -> np.ndarray:
        """Run one batch (NHWC float32 HU); returns the first output.

        On the CPU, a batch of at least :attr:`lanes` slices runs one slice per run, ``lanes``
        single-threaded runs at a time (one session, called from ``lanes`` threads: onnxruntime
        releases the GIL). On 2 cores, the two ways alternating on one session
        (``benchmarks/README.md``, ``test_lanes_paired``, medians of 7 pairs; two runs on an
        Intel Xeon VM, 2026-12-07), lanes ran batches of 8 and 32 0.90-1.25 times as fast as one
        run of the whole batch on both threads for the float32 classifier and segmenter (below 1
        only for the classifier's batch of 8), 1.10-1.25 times for the int8 segmenter, an opt-in
        variant, and 0.73-1.30 times for ``seed_cnn`` and its int8 variant (below 1 only for
        batches of 8); on an AMD EPYC VM the day before, the int8 segmenter's were 0.90-1.05.
        How it goes on more cores is not measured."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self._io_binding:
            binding = self._session.io_binding()
            binding.bind_cpu_input(self.spec.input_name, x)
            binding.bind_output(self.spec.output_name, "cuda")
            self._session.run_with_iobinding(binding)
            return binding.copy_outputs_to_cpu()[0]
        if self.lanes > 1 and len(x) >= self.lanes:
            single, pool = self._lanes()
            names, name = [self.spec.output_name], self.spec.input_name
            outs = pool.map(lambda i: single.run(names, {name: x[i : i + 1]})[0], range(len(x)))
            return np.concatenate(list(outs), axis=0)
        return self._session.run([self.spec.output_name], {self.spec.input_name: x})[0]

    def release_memory(self) -> None:
        """Give the CPU arena's unused memory back to the system (it otherwise keeps what the
        largest run needed, for the life of the process): one run of a blank slice with
        onnxruntime's arena shrinkage on, the only way onnxruntime offers. For a caller done
        with inference for a while, e.g. before writing DICOM outputs: the next run grows the
        arena again (tens of ms). Measured after segmenting CQ500: resident memory 262 -> 192
        MB, the run 42 ms. Nothing to do off the CPU."""
        if self.providers[0] != "CPUExecutionProvider":
            return
        options = ort.RunOptions()
        options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        shape = [1, *self.spec.input_size, self.spec.channels]
        blank = np.full(shape, -1000.0, dtype=np.float32)  # air
        self._session.run([self.spec.output_name], {self.spec.input_name: blank}, options)

    def _lanes(self) -> tuple[ort.InferenceSession, ThreadPoolExecutor]:
        """The single-threaded session and the lane threads, made on first use."""
        with self._lanes_lock:
            if self._single is None:
                self._single = self._load(1)
                self._pool = ThreadPoolExecutor(self.lanes, thread_name_prefix="ichinfer-lane")
            return self._single, self._pool  # type: ignore[return-value]


_CACHE: dict[tuple, Session] = {}
_CACHE_LOCK = threading.Lock()


def get_session(
    path: Path,
    *,
    device: str | None = None,
    providers: Sequence[str] | None = None,
    threads: int | None = None,
) -> Session:
    """A cached :class:`Session` per (model file and content, providers, threads)."""
    chosen = resolve_providers(device, providers)
    n = resolve_threads(threads)
    key = (str(Path(path).resolve()), sha256(Path(path)), tuple(chosen), n)
    with _CACHE_LOCK:
        session = _CACHE.get(key)
        if session is None:
            session = Session(Path(path), chosen, n)
            _CACHE[key] = session
        return session


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()
