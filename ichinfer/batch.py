"""Score whole archives on Ray Data: one row per series, classified by a pool of Ray actors.

The only module that imports ``ray`` (and ``pyarrow``); only ``ichinfer batch`` imports it, so
the runtime without the ``[ray]`` extra stays as light as before.

Headers are read in parallel Ray tasks over chunks of the file list (:func:`scan_parallel`:
:func:`ichinfer.dicom.read_header` per file); the driver groups the records into series with the
code of :func:`ichinfer.dicom.scan` (:func:`ichinfer.dicom.group_headers`), so the series, their
slice order and the failures are those of ``dicom.scan``. A Ray Data
dataset holds one row per series (its key, file paths and the pickled header-only
:class:`~ichinfer.dicom.Series`); ``map_batches`` sends each series to an actor of a fixed-size
pool, which builds its :class:`~ichinfer.classification.Classifier` once and returns the series'
result (or its failure and the reason). The driver writes each completed series as it arrives:
``DIR/slices/<key>.parquet`` (a row per slice) and ``DIR/series/<key>.parquet`` (the verdict),
each atomically (temp file + rename), so a killed job leaves only whole files and
``resume=True`` skips the series whose two files exist. ``DIR/failures.parquet``, the RSNA CSV
(when asked) and ``DIR/job.json`` are written at the end.

An actor that dies (a killed process, a lost node) is restarted by Ray and its series is run
again (``max_restarts`` / ``max_task_retries``); outputs reach the driver only from completed
tasks, so each series is written exactly once. On a cluster (``address``) the input files and the
model file must be readable at the same paths on every node; outputs are written by the driver.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import pickle
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ichinfer.errors import IchInferError, InvalidInputError
from ichinfer.labels import LABELS
from ichinfer.results import (
    ClassificationResult,
    Failure,
    SeriesResult,
    atomic_write_bytes,
    remove_partials,
    rsna_csv,
)

logger = logging.getLogger(__name__)

JOB_FILE = "job.json"
FAULT_ENV = "ICHINFER_BATCH_FAULT"
"""Fault injection for tests: ``N:MARKER`` makes the first actor to classify its N-th series
exit hard (``os._exit``) once, creating file MARKER so it happens only once per job."""

_RETRIES = 3
SCAN_CHUNK = 256
"""Most files whose headers one Ray task reads."""


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as err:
        raise IchInferError(
            "ichinfer batch needs Ray: pip install 'ichinfer[ray]' (ray[data], pyarrow)"
        ) from err
    return ray


def _pq():
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pa, pq


# --- inputs ----------------------------------------------------------------------------------


def source_paths(source: str | os.PathLike) -> list[str]:
    """The paths named by ``source``: a folder (any depth) or a manifest (``.csv``/``.parquet``
    with a ``path`` column; relative paths are taken from the manifest's folder)."""
    src = Path(source)
    if src.is_dir():
        return [str(src)]
    suffix = src.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise InvalidInputError("not a folder or a manifest (.csv / .parquet)", path=str(src))
    if not src.is_file():
        raise InvalidInputError("manifest not found", path=str(src))
    try:
        if suffix == ".csv":
            import csv

            with open(src, newline="") as fh:
                rows = list(csv.DictReader(fh))
            if rows and "path" not in rows[0]:
                raise InvalidInputError("manifest has no 'path' column", path=str(src))
            raw = [r["path"] for r in rows]
        else:
            _, pq = _pq()
            table = pq.read_table(src)
            if "path" not in table.column_names:
                raise InvalidInputError("manifest has no 'path' column", path=str(src))
            raw = [str(p) for p in table.column("path").to_pylist()]
    except (OSError, ValueError) as err:
        raise InvalidInputError(f"cannot read manifest: {err}", path=str(src)) from err
    base = src.parent
    paths = [p if os.path.isabs(p) else str(base / p) for p in raw if p]
    if not paths:
        raise InvalidInputError("manifest lists no paths", path=str(src))
    return paths


def series_id(study_uid: str, series_uid: str) -> str:
    """The name of a series' output files (a hash: UIDs can be long and are not file names)."""
    return hashlib.sha256(f"{study_uid}\0{series_uid}".encode()).hexdigest()[:24]


# --- the parallel header scan -----------------------------------------------------------------


def _read_headers(items: list[tuple[str, bool]]) -> list:
    """A Ray task: the header reads of a chunk of files (exceptions dropped: they do not
    pickle faithfully; the failure's path, reason and kind travel)."""
    from dataclasses import replace

    from ichinfer import dicom

    return [replace(dicom.read_header(path, explicit), error=None) for path, explicit in items]


def scan_parallel(
    paths: str | os.PathLike | list[str],
    *,
    on_error: str = "collect",
    chunk_size: int | None = None,
):
    """:func:`ichinfer.dicom.scan` with the headers read by Ray tasks (Ray must be running).

    The driver lists the files, tasks read chunks of them (``chunk_size`` files, default: about
    four chunks per CPU of the cluster, at most :data:`SCAN_CHUNK`), and the driver groups the
    reads, in file order, with :func:`ichinfer.dicom.group_headers`: the same series, slice order,
    failures and skipped files as ``dicom.scan``. With ``on_error="raise"`` the first failure is
    raised as an :class:`InvalidInputError` (its original subclass stays in the worker).
    """
    from ichinfer import dicom

    ray = _ray()
    items = list(dicom.candidates(paths))
    files = [c for c in items if not isinstance(c, dicom.HeaderRead)]
    if chunk_size is None:
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        chunk_size = max(1, min(SCAN_CHUNK, math.ceil(len(files) / (4 * cpus))))
    task = ray.remote(num_cpus=1, max_retries=_RETRIES)(_read_headers)
    refs = [task.remote(files[i : i + chunk_size]) for i in range(0, len(files), chunk_size)]
    reads = iter([read for chunk in ray.get(refs) for read in chunk])
    ordered = [c if isinstance(c, dicom.HeaderRead) else next(reads) for c in items]
    return dicom.group_headers(ordered, on_error=on_error)  # type: ignore[arg-type]


# --- what the actors run ---------------------------------------------------------------------


class SeriesClassifier:
    """A Ray Data callable class: one per actor, holding its Classifier (and session)."""

    def __init__(self, model: str, thresholds: dict[str, Any], device: str, threads: int,
                 batch_size: int) -> None:
        from ichinfer.classification import Classifier

        self.clf = Classifier(model, device=device, threads=threads, batch_size=batch_size,
                              thresholds=thresholds)
        self.done = 0

    def _maybe_fault(self) -> None:
        spec = os.environ.get(FAULT_ENV)
        if not spec:
            return
        n, marker = spec.split(":", 1)
        if self.done >= int(n):
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return
            os.close(fd)
            os._exit(1)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        from ichinfer.pipeline import PreparedSeries
        from ichinfer.resume import classification_record

        out: dict[str, list] = {"key": [], "result": [], "reason": [], "kind": []}
        for key, blob in zip(batch["key"], batch["series"], strict=True):
            self._maybe_fault()
            series = pickle.loads(blob)
            result, reason, kind = "", "", ""
            try:
                res = self.clf.classify_series(PreparedSeries(series))
                result = json.dumps(classification_record(res))
            except Exception as err:  # noqa: BLE001 - recorded with its reason, the job goes on
                reason, kind = str(err) or type(err).__name__, type(err).__name__
            self.done += 1
            out["key"].append(str(key))
            out["result"].append(result)
            out["reason"].append(reason)
            out["kind"].append(kind)
        return out


# --- outputs ---------------------------------------------------------------------------------


def slice_rows(res: SeriesResult) -> dict[str, list]:
    cols: dict[str, list] = {k: [] for k in (
        "study_uid", "series_uid", "index", "sop_instance_uid", "path", "frame", "location_mm",
        "source_index", *LABELS)}
    for s in res.slices:
        cols["study_uid"].append(res.study_uid)
        cols["series_uid"].append(res.series_uid)
        cols["index"].append(s.index)
        cols["sop_instance_uid"].append(s.sop_instance_uid)
        cols["path"].append(s.path)
        cols["frame"].append(s.frame)
        cols["location_mm"].append(s.location_mm)
        cols["source_index"].append(s.source_index)
        for label in LABELS:
            cols[label].append(s.probabilities[label])
    return cols


def series_row(res: SeriesResult) -> dict[str, list]:
    probs, verdict = res.probabilities, res.verdict
    row: dict[str, Any] = {
        "study_uid": res.study_uid,
        "series_uid": res.series_uid,
        "n_slices": len(res.slices),
        "n_inferences": res.n_inferences,
        "spacing_mm": res.spacing_mm,
        **{label: probs[label] for label in LABELS},
        **{f"{label}_verdict": verdict[label] for label in LABELS},
        **{f"{label}_threshold": res.thresholds[label] for label in LABELS},
        **{f"{label}_series_threshold": res.verdict_thresholds[label] for label in LABELS},
        "warnings": list(res.warnings),
    }
    return {k: [v] for k, v in row.items()}


def _write_parquet(path: Path, cols: dict[str, list]) -> None:
    pa, pq = _pq()
    buf = io.BytesIO()
    pq.write_table(pa.table(cols), buf)
    atomic_write_bytes(path, buf.getvalue())


def _done(out: Path, key: str) -> bool:
    return (out / "series" / f"{key}.parquet").is_file() and (
        out / "slices" / f"{key}.parquet").is_file()


def read_results(out: str | os.PathLike, keys: Iterable[str] | None = None) -> list[SeriesResult]:
    """The series results written under ``out`` (those of ``keys``, in that order, if given)."""
    _, pq = _pq()
    out = Path(out)
    if keys is None:
        keys = sorted(p.stem for p in (out / "series").glob("*.parquet"))
    from ichinfer.results import SliceResult

    results = []
    for key in keys:
        if not _done(out, key):
            continue
        head = pq.read_table(out / "series" / f"{key}.parquet").to_pylist()[0]
        rows = pq.read_table(out / "slices" / f"{key}.parquet").to_pylist()
        slices = [SliceResult(index=r["index"], path=r["path"], frame=r["frame"],
                              sop_instance_uid=r["sop_instance_uid"],
                              location_mm=r["location_mm"],
                              probabilities={k: r[k] for k in LABELS},
                              source_index=r["source_index"]) for r in rows]
        results.append(SeriesResult(
            study_uid=head["study_uid"], series_uid=head["series_uid"],
            spacing_mm=head["spacing_mm"], slices=slices,
            thresholds={k: head[f"{k}_threshold"] for k in LABELS},
            series_thresholds={k: head.get(f"{k}_series_threshold", head[f"{k}_threshold"])
                               for k in LABELS},
            warnings=list(head["warnings"] or []), n_inferences=head["n_inferences"]))
    return results


# --- the job ---------------------------------------------------------------------------------


@dataclass
class BatchPlan:
    """What a batch job will do: the series found, and which are already done (resume)."""

    out: Path
    model: Path
    model_sha256: str
    thresholds: dict[str, float]
    keys: list[str]
    todo: list[tuple[str, Any]]  # (key, Series) still to classify
    scan_failures: list[Failure] = field(default_factory=list)
    skipped: list[Failure] = field(default_factory=list)
    model_info: dict[str, Any] = field(default_factory=dict)
    #: the verdict's thresholds (the slice ones where the model has none)
    series_thresholds: dict[str, float] = field(default_factory=dict)
    ray_started: bool = False  # plan_batch started Ray (for the scan): iter_batch shuts it down

    @property
    def total(self) -> int:
        return len(self.keys)


@dataclass
class BatchSummary:
    out: Path
    total: int
    resumed: int
    written: int
    failures: list[Failure]
    skipped: list[Failure]
    rsna_csv: Path | None = None


def plan_batch(
    source: str | os.PathLike,
    *,
    out: str | os.PathLike,
    resume: bool = False,
    model: str | os.PathLike | None = None,
    model_dir: str | os.PathLike | None = None,
    variant: str | None = None,
    thresholds: Any = None,
    address: str | None = None,
    workers: int | None = None,
    threads_per_worker: int = 1,
    parallel_scan: bool = True,
) -> BatchPlan:
    """Scan ``source``, group series, and work out which are left to do.

    With ``resume`` the earlier job in ``out`` must have used the same model file and thresholds
    (``job.json``); otherwise every earlier output in ``out`` is removed. Headers are read by
    Ray tasks (:func:`scan_parallel`; Ray is started here, or joined at ``address``, as
    :func:`iter_batch` would) unless ``parallel_scan`` is False (:func:`ichinfer.dicom.scan`).
    """
    from ichinfer import models, runtime
    from ichinfer.classification import (
        load_series_thresholds,
        load_thresholds,
        read_thresholds,
    )
    from ichinfer.pipeline import failures_of, scan_inputs

    out = Path(out)
    path = models.locate("classify", model=model, model_dir_override=model_dir, variant=variant)
    spec = runtime.get_session(path, device="cpu", threads=1).spec
    if spec.task != "classify":
        raise InvalidInputError(f"{path}: a {spec.task} model, not a classifier")
    sha = models.sha256(path)
    given = read_thresholds(thresholds)  # a file is read once, for both
    chosen = load_thresholds(given, spec.thresholds)
    series_chosen = load_series_thresholds(given, spec.series_thresholds, chosen)
    job = {"model_sha256": sha, "thresholds": chosen, "series_thresholds": series_chosen}
    job_file = out / JOB_FILE
    if resume and job_file.is_file():
        before = json.loads(job_file.read_text())
        if {k: before.get(k) for k in job} != job:
            raise InvalidInputError(
                "--resume: the earlier job used another model or other thresholds; "
                "start a fresh job (--overwrite)", path=str(out))
    for sub in ("slices", "series"):
        folder = out / sub
        remove_partials(folder)
        if not resume and folder.is_dir():
            for p in folder.glob("*.parquet"):
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(job_file, json.dumps({**job, "model": spec.describe()}, indent=1).encode())

    paths = source_paths(source)
    started = False
    if parallel_scan:
        started = _connect(address, _local_cpus(address, workers, threads_per_worker))
    try:
        scan = scan_inputs(paths, on_error="collect",
                           scanner=scan_parallel if parallel_scan else None)
    except BaseException:
        if started:
            _ray().shutdown()
        raise
    keys, todo = [], []
    for series in scan.series:
        key = series_id(series.study_uid, series.series_uid)
        if key in keys:  # the same UIDs split by scan (e.g. orientation clusters)
            key = f"{key}-{len(keys)}"
        keys.append(key)
        if not (resume and _done(out, key)):
            todo.append((key, series))
    return BatchPlan(out=out, model=path, model_sha256=sha, thresholds=chosen,
                     series_thresholds=series_chosen, keys=keys,
                     todo=todo, scan_failures=failures_of(scan.failures),
                     skipped=failures_of(scan.skipped), model_info=spec.describe(),
                     ray_started=started)


def _local_cpus(address: str | None, workers: int | None, threads_per_worker: int) -> int | None:
    """CPUs for a local Ray instance: enough for the actors, at least this machine's."""
    if address:
        return None
    workers = workers or max(1, (os.cpu_count() or 1) // max(1, threads_per_worker))
    return max(workers * threads_per_worker, os.cpu_count() or 1)


def _connect(address: str | None, num_cpus: int | None) -> bool:
    """Start (or join) Ray; True when this call started it (and should shut it down)."""
    ray = _ray()
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False,
                 log_to_driver=False)
    return True


def iter_batch(
    plan: BatchPlan,
    *,
    address: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float = 0.0,
    threads_per_worker: int = 1,
    batch_size: int = 8,
) -> Iterator[tuple[str, Failure | None]]:
    """Classify the plan's series on Ray; write each as it completes and yield ``(key, None)``,
    or ``(key, failure)`` for a series that failed. Ray started here is shut down at the end."""
    ray = _ray()
    if not plan.todo:
        if plan.ray_started and ray.is_initialized():
            ray.shutdown()
        return
    workers = workers or max(1, (os.cpu_count() or 1) // max(1, threads_per_worker))
    started = _connect(address, _local_cpus(address, workers, threads_per_worker))
    started = started or plan.ray_started
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        by_key = {key: series for key, series in plan.todo}
        rows = [{"key": key, "paths": [s.path for s in series.slices],
                 "series": pickle.dumps(series)} for key, series in plan.todo]
        ds = ray.data.from_items(rows, override_num_blocks=len(rows))
        with warnings.catch_warnings():
            # Ray >= 2.5x names per-call remote args (max_restarts, ...) deprecated in favour
            # of options not in Ray 2.9; these are still honoured, and the explicit limit matters
            warnings.simplefilter("ignore", DeprecationWarning)
            ds = _map(ray, ds, plan, workers, gpus_per_worker, threads_per_worker, batch_size)
        seen: set[str] = set()
        for row in ds.iter_rows():
            key = str(row["key"])
            if key in seen:  # never expected: outputs come only from completed tasks
                logger.warning("series %s returned twice; second result ignored", key)
                continue
            seen.add(key)
            if row["result"]:
                res = SeriesResult(**_series_fields(json.loads(row["result"])))
                _write_parquet(plan.out / "slices" / f"{key}.parquet", slice_rows(res))
                _write_parquet(plan.out / "series" / f"{key}.parquet", series_row(res))
                yield key, None
            else:
                slices = by_key[key].slices
                where = os.path.dirname(slices[0].path) if slices else by_key[key].series_uid
                yield key, Failure(path=where, reason=str(row["reason"]), kind=str(row["kind"]))
    finally:
        if started:
            ray.shutdown()


def _map(ray, ds, plan: BatchPlan, workers: int, gpus_per_worker: float,
         threads_per_worker: int, batch_size: int):
    return ds.map_batches(
        SeriesClassifier,
        fn_constructor_kwargs={
            "model": str(plan.model),
            "thresholds": {"thresholds": plan.thresholds,
                           "series_thresholds": plan.series_thresholds or plan.thresholds},
            "device": "cuda" if gpus_per_worker > 0 else "cpu",
            "threads": threads_per_worker, "batch_size": batch_size,
        },
        batch_size=1,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=threads_per_worker,
        **({"num_gpus": gpus_per_worker} if gpus_per_worker > 0 else {}),
        **_retry_args(),
    )


def _retry_args() -> dict[str, int]:
    """A dead actor is restarted and its series retried, a few times (not forever: a series
    that kills its worker every time stops the job; --resume then continues it)."""
    return {"max_restarts": _RETRIES, "max_task_retries": _RETRIES}


def _series_fields(data: dict[str, Any]) -> dict[str, Any]:
    from ichinfer.results import SliceResult

    return {**data, "slices": [SliceResult(**s) for s in data["slices"]]}


def finish_batch(plan: BatchPlan, failures: list[Failure], *, write_rsna_csv: bool = False,
                 resumed: int = 0) -> BatchSummary:
    """Write ``failures.parquet`` (scan and series failures) and the RSNA CSV if asked."""
    all_failures = [*plan.scan_failures, *failures]
    cols = {k: [getattr(f, k) for f in all_failures] for k in ("path", "reason", "kind")}
    _write_parquet(plan.out / "failures.parquet", cols)
    csv_path = None
    if write_rsna_csv:
        csv_path = plan.out / "results.csv"
        result = ClassificationResult(series=read_results(plan.out, plan.keys))
        atomic_write_bytes(csv_path, rsna_csv(result).encode())
    written = sum(1 for k in plan.keys if _done(plan.out, k))
    return BatchSummary(out=plan.out, total=plan.total, resumed=resumed, written=written,
                        failures=all_failures, skipped=plan.skipped, rsna_csv=csv_path)


def run_batch(
    source: str | os.PathLike,
    *,
    out: str | os.PathLike,
    resume: bool = False,
    write_rsna_csv: bool = False,
    address: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float = 0.0,
    model_dir: str | os.PathLike | None = None,
    on_series: Callable[[str, Failure | None], None] | None = None,
) -> BatchSummary:
    """Plan, run and finish a batch job in one call (see the module docstring)."""
    plan = plan_batch(source, out=out, resume=resume, model_dir=model_dir, address=address,
                      workers=workers)
    resumed = plan.total - len(plan.todo)
    failures = []
    for key, failure in iter_batch(plan, address=address, workers=workers,
                                   gpus_per_worker=gpus_per_worker):
        if failure is not None:
            failures.append(failure)
        if on_series is not None:
            on_series(key, failure)
    return finish_batch(plan, failures, write_rsna_csv=write_rsna_csv, resumed=resumed)


__all__ = [
    "BatchPlan",
    "BatchSummary",
    "finish_batch",
    "iter_batch",
    "plan_batch",
    "read_results",
    "run_batch",
    "scan_parallel",
    "source_paths",
]
