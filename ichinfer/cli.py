"""The ``ichinfer`` command line (Typer): arguments, progress bars, exit codes.

Exit codes: 0 every input processed; 1 some input failed (the rest processed, failures listed);
2 usage or setup errors (bad options, an output that exists without ``--overwrite``, a model that
is missing or refused: sha256 or metadata not matching); 130 interrupted (Ctrl-C): completed
series are kept and ``--resume`` continues. Every message is one line; ``--debug`` adds tracebacks.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ichinfer import __version__
from ichinfer.errors import IchInferError
from ichinfer.labels import LABELS

app = typer.Typer(
    name="ichinfer",
    help="Intracranial hemorrhage detection and localisation on head CT (not for clinical use).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
err_console = Console(stderr=True)
out_console = Console()

PathsArg = Annotated[list[Path], typer.Argument(help="DICOM files, folders (any depth), NIfTI.")]
ModelOpt = Annotated[Path | None, typer.Option(help="model file or name (default: bundled)")]
ModelDirOpt = Annotated[Path | None, typer.Option(help="model folder (or ICHINFER_MODEL_DIR)")]
DeviceOpt = Annotated[str | None, typer.Option(help="auto | cpu | cuda (or ICHINFER_DEVICE)")]
ThreadsOpt = Annotated[int | None, typer.Option(help="intra-op threads (0: all cores)")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar or summary")]
DebugOpt = Annotated[bool, typer.Option(help="tracebacks and debug logging")]
OverwriteOpt = Annotated[bool, typer.Option(help="replace existing outputs")]
ResumeOpt = Annotated[bool, typer.Option(
    help="keep the series an earlier (interrupted) run completed, do the rest")]
VariantOpt = Annotated[str | None, typer.Option(help="model variant from the manifest, e.g. int8")]
MaskThresholdOpt = Annotated[float | None, typer.Option(
    min=0.0, max=1.0,
    help="bleed probability a pixel needs to be marked (default: the model's own)")]
MirrorOpt = Annotated[bool, typer.Option(
    help="also run the segmenter on each slab mirrored left to right and average the two "
         "(twice its inference)")]
GateOpt = Annotated[bool, typer.Option(
    help="masks only on the slices the classifier calls 'any' (runs it too; measured: "
         "training/trials/gate.md)")]
DecodeProcessesOpt = Annotated[int | None, typer.Option(
    min=0, help="processes that decode DICOM, this one included (or ICHINFER_DECODE_PROCESSES; "
                "default: 2 where 2 CPUs are free, else 1)")]


def _setup_logging(debug: bool, quiet: bool) -> None:
    level = logging.DEBUG if debug else logging.ERROR if quiet else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)


def _say(label: str, style: str, message: str) -> None:
    """One line on stderr: paths and reasons are printed as they are (no markup, no wrapping)."""
    err_console.print(Text.assemble((label, style), " ", message), soft_wrap=True, highlight=False)


@contextmanager
def _decode_processes(value: int | None):
    """For the command: the option, else ``ICHINFER_DECODE_PROCESSES``, else 2 where this
    process may use two CPUs. The command line decodes beside one worker process by default;
    the library alone does not (:func:`ichinfer.pipeline.decode_processes`). The variable is
    restored afterwards, for a command run inside another program (tests, notebooks)."""
    import os

    from ichinfer.pipeline import DECODE_PROCESSES_ENV
    from ichinfer.runtime import cpu_cores

    before = os.environ.get(DECODE_PROCESSES_ENV)
    if value is not None:
        os.environ[DECODE_PROCESSES_ENV] = str(value)
    elif not before:
        os.environ[DECODE_PROCESSES_ENV] = str(min(2, cpu_cores(0)))
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(DECODE_PROCESSES_ENV, None)
        else:
            os.environ[DECODE_PROCESSES_ENV] = before


def _fail_usage(message: str) -> None:
    _say("error:", "red", message)
    raise typer.Exit(2)


class _Terminated(KeyboardInterrupt):
    """SIGTERM (``systemctl stop``, ``docker stop``, a batch scheduler), turned into the same
    orderly stop as Ctrl-C."""


def _on_sigterm(signum, frame) -> None:
    raise _Terminated()


@contextmanager
def _interruptible(debug: bool):
    """Ctrl-C: one line and exit code 130; SIGTERM: one line and 143. Outputs are written
    atomically, so none is half; completed series are kept for ``--resume``."""
    import signal
    import threading

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    except KeyboardInterrupt as err:
        if debug:
            raise
        term = isinstance(err, _Terminated)
        _say("terminated:" if term else "interrupted:", "yellow",
             "completed series are kept; rerun with --resume to continue")
        raise typer.Exit(143 if term else 130) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


@contextmanager
def _progress(total: int, label: str, quiet: bool):
    enabled = not quiet and sys.stderr.isatty() and total > 1
    if not enabled:
        yield lambda n: None
        return
    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


def _report_warnings(series, quiet: bool) -> None:
    """Each series' warnings (gaps, missing rescale, assumed orientation), one line each; the
    JSON outputs carry them too."""
    if quiet:
        return
    for k, s in enumerate(series):
        for note in s.warnings:
            _say("warning:", "yellow", f"series s{k:02d} …{s.series_uid[-12:]}: {note}")


def _report_failures(failures, skipped, quiet: bool) -> None:
    for f in failures:
        _say("failed:", "red", f"{f.path}: {f.reason}")
    if not quiet:
        for s in skipped:
            _say("skipped:", "yellow", f"{s.path}: {s.reason}")


def _check_out(path: Path | None, overwrite: bool, resume: bool = False) -> None:
    if path is not None and path.exists() and not overwrite and not resume:
        _fail_usage(f"{path} exists; use --overwrite to replace it (or --resume to continue)")


def _run(debug: bool, fn, code: int = 1):
    """Call ``fn``; an ichinfer error that stops the whole run becomes one line and ``code``."""
    try:
        return fn()
    except IchInferError as err:
        if debug:
            raise
        _say("error:", "red", str(err))
        raise typer.Exit(code) from None


def _records(folder: Path, resume: bool):
    """The resume records of an output (cleared unless resuming); stale temp files removed."""
    from ichinfer.resume import RecordStore

    store = RecordStore(folder)
    if resume:
        from ichinfer.results import remove_partials

        remove_partials(folder)
    else:
        store.clear()
    return store


def _key(task: str, series, spec, options: dict) -> str | None:
    from ichinfer.models import sha256
    from ichinfer.resume import series_key

    try:
        return series_key(task, series, model_sha256=sha256(spec.path), options=options)
    except OSError:
        return None


def _report_resumed(done: int, total: int, quiet: bool) -> None:
    if not quiet:
        _say("resume:", "cyan", f"{done} of {total} series already complete, loaded from records")


@app.command()
def classify(
    paths: PathsArg,
    out: Annotated[Path | None,
                   typer.Option(help="results.csv (RSNA format) or results.json")] = None,
    model: ModelOpt = None,
    model_dir: ModelDirOpt = None,
    variant: VariantOpt = None,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    thresholds: Annotated[Path | None,
                          typer.Option(help="thresholds JSON (ichinfer calibrate)")] = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
    overwrite: OverwriteOpt = False,
    resume: ResumeOpt = False,
    decode_processes: DecodeProcessesOpt = None,
) -> None:
    """Six ICH probabilities per slice and a verdict per series."""
    with _interruptible(debug), _decode_processes(decode_processes):
        _classify(paths, out, model, model_dir, variant, device, threads, batch_size, thresholds,
                  quiet, debug, overwrite, resume)


def _classify(paths, out, model, model_dir, variant, device, threads, batch_size, thresholds,
              quiet, debug, overwrite, resume) -> None:
    from ichinfer.classification import Classifier
    from ichinfer.pipeline import failures_of, scan_inputs
    from ichinfer.results import ClassificationResult, remove_partials, to_json, to_rsna_csv
    from ichinfer.resume import classification_from_record, classification_record

    _setup_logging(debug, quiet)
    if out is not None and out.suffix.lower() not in (".csv", ".json"):
        _fail_usage(f"--out must end in .csv or .json, not {out.name!r}")
    if resume and out is None:
        _fail_usage("--resume needs --out (the records are kept beside the output file)")
    _check_out(out, overwrite, resume)
    clf = _run(debug, lambda: Classifier(model, model_dir=model_dir, variant=variant, device=device,
                                         threads=threads, batch_size=batch_size,
                                         thresholds=thresholds), code=2)
    scan = _run(debug, lambda: scan_inputs(paths, on_error="collect"))
    failures = failures_of(scan.failures)
    store = None
    if out is not None:
        remove_partials(out.parent, out.name)
        store = _records(out.parent / f".{out.name}.resume", resume)
    options = {"thresholds": clf.thresholds, "series_thresholds": clf.series_thresholds}
    results, resumed = [], 0
    with _progress(sum(len(s.slices) for s in scan.series), "classifying", quiet) as advance:
        for series in scan.series:
            key = _key("classify", series, clf.spec, options) if store else None
            done = store.load(key) if store and key and resume else None
            res = classification_from_record(done) if done else None
            if res is not None:
                results.append(res)
                resumed += 1
            else:
                for new in clf.run_series([series], on_error="collect", failures=failures):
                    results.append(new)
                    if store and key:
                        store.save(key, classification_record(new))
            advance(len(series.slices))
    if resume:
        _report_resumed(resumed, len(scan.series), quiet)
    result = ClassificationResult(series=results, failures=failures,
                                  skipped=failures_of(scan.skipped), model=clf.spec.describe())
    if out is not None:
        (to_rsna_csv if out.suffix.lower() == ".csv" else to_json)(result, out)
    if not quiet:
        _print_classification(result)
    _report_warnings(result.series, quiet)
    _report_failures(result.failures, result.skipped, quiet)
    raise typer.Exit(1 if result.failures or not result.series else 0)


def _print_classification(result) -> None:
    table = Table(title="ichinfer classify (not for clinical use)", title_justify="left")
    table.add_column("series")
    table.add_column("slices", justify="right")
    for label in LABELS:
        table.add_column(label[:8], justify="right")
    for s in result.series:
        probs, verdict = s.probabilities, s.verdict
        cells = [f"{probs[k]:.3f}{' *' if verdict[k] else ''}" for k in LABELS]
        table.add_row("…" + s.series_uid[-12:], str(len(s.slices)), *cells)
    out_console.print(table)
    out_console.print("highest slice probability per label; * verdict yes: at or above the "
                      "series threshold (ichinfer info)", highlight=False)


@app.command()
def segment(
    paths: PathsArg,
    out: Annotated[Path, typer.Option(help="output folder: overlays/, masks/, summary.json")],
    model: ModelOpt = None,
    model_dir: ModelDirOpt = None,
    variant: VariantOpt = None,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 2,
    overlays: Annotated[str, typer.Option(
        help="which slices get an overlay PNG: bleeding | all | none")] = "bleeding",
    subtypes: Annotated[bool, typer.Option(
        help="also run the classifier and measure each subtype")] = False,
    thresholds: Annotated[Path | None, typer.Option(
        help="classifier thresholds JSON (ichinfer calibrate); implies --subtypes")] = None,
    dicom_out: Annotated[Path | None, typer.Option(
        help="also write a DICOM SEG and a Secondary Capture overlay series here")] = None,
    mask_threshold: MaskThresholdOpt = None,
    mirror: MirrorOpt = False,
    gate: GateOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
    overwrite: OverwriteOpt = False,
    resume: ResumeOpt = False,
    decode_processes: DecodeProcessesOpt = None,
) -> None:
    """Bleed masks per slice, blue overlays, volume, ABC/2 and separate bleeds per series."""
    with _interruptible(debug), _decode_processes(decode_processes):
        _segment(paths, out, model, model_dir, variant, device, threads, batch_size, overlays,
                 quiet, debug, overwrite, resume, subtypes or thresholds is not None, thresholds,
                 dicom_out, mask_threshold, mirror, gate)


_OUTPUT_PNG = re.compile(r"s\d{2,}_\d{4,}\.png")
"""Names of the PNGs ``segment`` writes in masks/ and overlays/ (nothing else is removed)."""


def _segment_outputs(out: Path) -> list[Path]:
    found = [out / "summary.json"] if (out / "summary.json").exists() else []
    for sub in ("masks", "overlays"):
        if (out / sub).is_dir():
            found += [p for p in (out / sub).iterdir() if _OUTPUT_PNG.fullmatch(p.name)]
    return found


def _segment(paths, out, model, model_dir, variant, device, threads, batch_size, overlays,
             quiet, debug, overwrite, resume, subtypes=False, thresholds=None,
             dicom_out=None, mask_threshold=None, mirror=False, gate=False) -> None:
    from ichinfer.pipeline import failures_of, scan_inputs
    from ichinfer.results import SegmentationResult, remove_partials, to_json
    from ichinfer.resume import mask_files, segmentation_from_record, segmentation_record
    from ichinfer.segmentation import Segmenter, gate_description
    from ichinfer.study import iter_segmentations

    _setup_logging(debug, quiet)
    if overlays not in ("bleeding", "all", "none"):
        _fail_usage(f"--overlays must be bleeding, all or none, not {overlays!r}")
    summary_path = out / "summary.json"
    previous = _segment_outputs(out)
    if previous and not overwrite and not resume:
        _fail_usage(f"{out} holds outputs of an earlier run ({previous[0].name}, ...); use "
                    "--overwrite to replace them or --resume to continue")
    seg = _run(debug, lambda: Segmenter(model, model_dir=model_dir, variant=variant, device=device,
                                        threads=threads, batch_size=batch_size,
                                        threshold=mask_threshold, mirror=mirror), code=2)
    # --variant names the segmenter's variant; the classifier runs its default file
    clf = _extras_classifier(subtypes or gate, thresholds, model_dir, device, threads, debug)
    gated = gate_description(clf) if gate else None
    if dicom_out is not None:
        from ichinfer.dicom_out import require_highdicom

        _run(debug, require_highdicom, code=2)  # before any work: the extra may be missing
        _check_out(dicom_out / "s00_seg.dcm", overwrite, resume)
    scan = _run(debug, lambda: scan_inputs(paths, on_error="collect"))
    failures = failures_of(scan.failures)
    for folder in (out, out / "masks", out / "overlays"):
        remove_partials(folder)
    store = _records(out / ".ichinfer-resume", resume)
    results, written, resumed = [], set(), 0
    with _progress(sum(len(s.slices) for s in scan.series), "segmenting", quiet) as advance:
        for k, series in enumerate(scan.series):
            options = {"threshold": seg.threshold, "between": seg.between, "overlays": overlays,
                       "stem": f"s{k:02d}", **({"mirror": True} if seg.mirror else {}),
                       **({"gate": gated} if gated else {})}
            key = _key("segment", series, seg.spec, options)
            done = store.load(key) if key and resume else None
            res = segmentation_from_record(done, out) if done else None
            if res is not None and all((out / n).exists() for n in done.get("overlays", [])):
                results.append(res)
                written.update(out / name for name in mask_files(done))
                written.update(out / n for n in done.get("overlays", []))
                resumed += 1
                advance(len(series.slices))
                continue
            for new in iter_segmentations([series], segmenter=seg, classifier=clf, gate=gate,
                                          on_error="collect", failures=failures):
                results.append(new)
                names, drawn = _write_pngs(new, out, f"s{k:02d}", overlays)
                written.update(out / n for n in names + drawn)
                if key:
                    store.save(key, {**segmentation_record(new, names), "overlays": drawn})
            advance(len(series.slices))
    if resume:
        _report_resumed(resumed, len(scan.series), quiet)
    _segment_extras(results, scan.series, clf, dicom_out, overlays, seg, failures, quiet)
    result = SegmentationResult(series=results, failures=failures,
                                skipped=failures_of(scan.skipped),
                                model=seg.describe(clf if gate else None))
    to_json(result, summary_path)
    for stale in set(_segment_outputs(out)) - written - {summary_path}:
        stale.unlink(missing_ok=True)  # an earlier run's PNG this run did not write
    if not quiet:
        for k, s in enumerate(result.series):
            n_bleed = sum(1 for sl in s.slices if sl.mask.any())
            out_console.print(f"series s{k:02d} …{s.series_uid[-12:]}: {len(s.slices)} slices, "
                              f"{n_bleed} with bleed, volume "
                              + ("unknown (no slice thickness)" if s.volume_ml is None
                                 else f"{s.volume_ml:.2f} mL"), highlight=False)
        out_console.print(f"wrote {summary_path}", highlight=False)
    _report_warnings(result.series, quiet)
    _report_failures(result.failures, result.skipped, quiet)
    raise typer.Exit(1 if result.failures or not result.series else 0)


def _write_pngs(res, out: Path, prefix: str, overlays: str) -> tuple[list[str], list[str]]:
    """Every slice's mask PNG and the overlays ``overlays`` asks for; their names, in order.

    An overlay decodes its slice again (the series is not kept in memory at full resolution).
    Mask PNGs, and overlays when a single process decodes, are written by the decode threads
    (:func:`ichinfer.pipeline.decode_threads`: PNG encoding releases the GIL, so it overlaps
    the next slice's decoding); with decode processes (:func:`ichinfer.pipeline.decode_processes`)
    the overlays are shared between this process and the workers, as decoding is. A NIfTI
    volume is written in order."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from ichinfer.decode_worker import write_overlays
    from ichinfer.overlay import mask_png, write_png
    from ichinfer.pipeline import decode_processes, decode_threads, share_with_workers

    dicom_files = res.source.source == "dicom"
    processes = decode_processes() if dicom_files else 0
    names, drawn, draw = [], [], []
    for sl in res.slices:
        stem = f"{prefix}_{sl.index:04d}"
        names.append(f"masks/{stem}.png")
        if overlays == "all" or (overlays == "bleeding" and bool(sl.mask.any())):
            drawn.append(f"overlays/{stem}.png")
            draw.append(sl)
    items = [(res.source.slices[sl.index], np.packbits(sl.mask > 0).tobytes(), sl.mask.shape,
              str(out / png)) for sl, png in zip(draw, drawn, strict=True)] if dicom_files else []
    workers = decode_threads() if dicom_files else 1

    def write_mask(sl, name: str) -> None:  # in the thread: one PNG image in memory at a time
        write_png(out / name, mask_png(sl.mask))

    with ThreadPoolExecutor(workers, thread_name_prefix="ichinfer-png") as pool:
        jobs = [pool.submit(write_mask, sl, name) for sl, name in zip(res.slices, names,
                                                                      strict=True)]
        if processes > 1 and len(items) > 1:
            chunk = max(1, min(4, len(items) // (4 * processes)))
            share_with_workers(write_overlays, [(items[i : i + chunk],)
                                                for i in range(0, len(items), chunk)],
                               processes - 1)
        elif dicom_files:
            jobs.extend(pool.submit(write_overlays, [item]) for item in items)
        else:  # NIfTI: in order
            from ichinfer.overlay import blue_overlay

            for sl, png in zip(draw, drawn, strict=True):
                write_png(out / png, blue_overlay(res.source.load_hu(sl.index), sl.mask))
        for job in jobs:  # in order: the first failure raises
            job.result()
    return names, drawn


def _extras_classifier(wanted, thresholds, model_dir, device, threads, debug):
    """The classifier ``segment`` runs for subtypes or the gate (None unless ``wanted``)."""
    if not wanted:
        return None
    from ichinfer.classification import Classifier

    return _run(debug, lambda: Classifier(model_dir=model_dir, device=device,
                                          threads=threads, thresholds=thresholds), code=2)


def _segment_extras(results, series_list, clf, dicom_out, overlays, seg, failures, quiet) -> None:
    """Subtypes for series loaded on resume, and the DICOM SEG + overlay series per series."""
    if clf is None and dicom_out is None:
        return
    from ichinfer.dicom_out import write_dicom_outputs
    from ichinfer.pipeline import release_workers, series_failure
    from ichinfer.study import attach_subtypes

    index = {s.series_uid: k for k, s in enumerate(series_list)}
    for res in results:
        k = index.get(res.series_uid, 0)
        series = series_list[k]
        try:
            if clf is not None and getattr(res.measurements, "by_subtype", None) is None:
                attach_subtypes(res, series, classifier=clf)
            if dicom_out is not None:
                # inference is over for this series: building a SEG with highdicom is the run's
                # peak (CQ500: +138 MB over segmenting), so idle memory goes back first
                seg.session.release_memory()
                release_workers()
                done = write_dicom_outputs(res, dicom_out, overlays=overlays, stem=f"s{k:02d}",
                                           model_version=seg.spec.version, source=series)
                if not quiet:
                    out_console.print(f"series s{k:02d}: wrote {done.seg} and "
                                      f"{len(done.overlays)} overlay image(s)", highlight=False)
        except IchInferError as err:
            failures.append(series_failure(series, err))


@app.command()
def calibrate(
    labels: Annotated[Path, typer.Argument(help="the site's labels, RSNA CSV (ID,Label)")],
    out: Annotated[Path, typer.Option(help="thresholds JSON to write")],
    predictions: Annotated[Path | None, typer.Option(
        help="the model's outputs: RSNA CSV (ichinfer classify --out x.csv), or classify's "
        "JSON (--out x.json: it names each slice's series)")] = None,
    images: Annotated[list[Path] | None, typer.Option(
        help="or: run the classifier on these files/folders")] = None,
    target_sensitivity: Annotated[float, typer.Option(min=0.01, max=1.0)] = 0.95,
    model: ModelOpt = None,
    model_dir: ModelDirOpt = None,
    variant: VariantOpt = None,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Per-label thresholds reaching a target sensitivity on a site's labelled cases."""
    from ichinfer import calibrate as cal

    _setup_logging(debug, quiet)
    if (predictions is None) == (not images):
        _fail_usage("give either --predictions PRED.csv or --images PATH")
    _check_out(out, overwrite)
    truth = _run(debug, lambda: cal.read_rsna_csv(labels), code=2)
    reference = series = None
    if predictions is not None and predictions.suffix.lower() == ".json":
        scores, series = _run(debug, lambda: cal.read_classification_json(predictions), code=2)
    elif predictions is not None:
        scores = _run(debug, lambda: cal.read_rsna_csv(predictions), code=2)
    else:
        from ichinfer.classification import Classifier

        clf = _run(debug, lambda: Classifier(model, model_dir=model_dir, variant=variant,
                                             device=device, threads=threads), code=2)
        result = _run(debug, lambda: clf.classify(images, on_error="collect"))
        _report_failures(result.failures, result.skipped, quiet)
        scores, reference = cal.scores_from_classification(result), clf.spec.thresholds
        series = cal.series_from_classification(result)
    calibration = _run(debug, lambda: cal.calibrate(truth, scores=scores,
                                                    target_sensitivity=target_sensitivity,
                                                    reference_thresholds=reference,
                                                    series=series))
    cal.write_thresholds(calibration, out)
    if not quiet:
        _print_calibration(calibration)
        out_console.print(f"wrote {out}", highlight=False)


def _print_calibration(calibration) -> None:
    def ci(lo_hi) -> str:
        lo, hi = lo_hi
        return "" if lo != lo else f" [{lo:.3f}, {hi:.3f}]"  # NaN: no interval

    over = "" if calibration.n_series is None else f" of {calibration.n_series} series"
    table = Table(title=f"ichinfer calibrate: target sensitivity {calibration.target_sensitivity}"
                  f" on {calibration.n_images} images{over} (95% CI)", title_justify="left")
    for col in ("label", "pos/neg", "threshold", "sensitivity", "specificity", "AUC"):
        table.add_column(col, justify="left" if col == "label" else "right")
    for label, c in calibration.labels.items():
        p = c.chosen
        table.add_row(label, f"{c.n_positive}/{c.n_negative}",
                      "default" if p is None else f"{p.threshold:.4f}",
                      "" if p is None else f"{p.sensitivity:.3f}{ci(p.sensitivity_ci)}",
                      "" if p is None else f"{p.specificity:.3f}{ci(p.specificity_ci)}",
                      f"{c.auc:.3f}{ci(c.auc_ci)}")
    out_console.print(table)
    for note in calibration.notes:
        out_console.print(f"note: {note}", highlight=False)
    if calibration.n_unmatched:
        out_console.print(f"note: {calibration.n_unmatched} labelled image(s) had no model output",
                          highlight=False)


@app.command()
def report(
    paths: PathsArg,
    out: Annotated[Path, typer.Option(help="report.html (self-contained)")],
    model_dir: ModelDirOpt = None,
    variant: VariantOpt = None,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    thresholds: Annotated[Path | None, typer.Option(
        help="classifier thresholds JSON (ichinfer calibrate)")] = None,
    mask_threshold: MaskThresholdOpt = None,
    mirror: MirrorOpt = False,
    gate: GateOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """A one-page HTML report: verdict, measurements, key slices, models, notice."""
    from ichinfer.classification import Classifier
    from ichinfer.report import build_report, write_report
    from ichinfer.segmentation import Segmenter

    _setup_logging(debug, quiet)
    if out.suffix.lower() not in (".html", ".htm"):
        _fail_usage(f"--out must end in .html, not {out.name!r}")
    _check_out(out, overwrite)
    clf = _run(debug, lambda: Classifier(model_dir=model_dir, variant=variant, device=device,
                                         threads=threads, thresholds=thresholds), code=2)
    seg = _run(debug, lambda: Segmenter(model_dir=model_dir, variant=variant, device=device,
                                        threads=threads, threshold=mask_threshold,
                                        mirror=mirror), code=2)
    rep = _run(debug, lambda: build_report(paths, classifier=clf, segmenter=seg, gate=gate))
    write_report(rep.html, out)
    if not quiet:
        out_console.print(f"wrote {out} ({len(rep.series)} series)", highlight=False)
    _report_failures(rep.failures, rep.skipped, quiet)
    raise typer.Exit(1 if rep.failures or not rep.series else 0)


@app.command()
def batch(
    source: Annotated[Path, typer.Argument(
        help="a folder tree, or a manifest (.csv / .parquet with a 'path' column)")],
    out: Annotated[Path, typer.Option(
        help="output folder: slices/ and series/ (Parquet per series), failures.parquet")],
    address: Annotated[str | None, typer.Option(
        help="Ray cluster to join (e.g. auto, or ray://host:10001); default: local Ray")] = None,
    workers: Annotated[int | None, typer.Option(
        min=1, help="actors, each with its own model session (default: CPU count)")] = None,
    gpus_per_worker: Annotated[float, typer.Option(
        min=0.0, help="GPUs per actor (> 0 runs onnxruntime on CUDA)")] = 0.0,
    rsna_csv: Annotated[bool, typer.Option(
        "--rsna-csv", help="also write results.csv (RSNA format) at the end")] = False,
    model_dir: ModelDirOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
    overwrite: OverwriteOpt = False,
    resume: ResumeOpt = False,
) -> None:
    """Score an archive on Ray (the \\[ray] extra): whole series per actor, Parquet per series."""
    with _interruptible(debug):
        _batch(source, out, address, workers, gpus_per_worker, rsna_csv, model_dir, quiet,
               debug, overwrite, resume)


def _batch(source, out, address, workers, gpus_per_worker, rsna_csv, model_dir, quiet, debug,
           overwrite, resume) -> None:
    _setup_logging(debug, quiet)
    try:
        from ichinfer import batch as b
    except ImportError as err:  # pyarrow missing
        _fail_usage(f"ichinfer batch needs the [ray] extra (pip install 'ichinfer[ray]'): {err}")
    _run(debug, b._ray, code=2)
    if not source.exists():
        _fail_usage(f"{source} not found")
    if (out / "series").is_dir() and any((out / "series").glob("*.parquet")) and not (
            overwrite or resume):
        _fail_usage(f"{out} holds outputs of an earlier run; use --overwrite to replace them or "
                    "--resume to continue")
    plan = _run(debug, lambda: b.plan_batch(source, out=out, resume=resume, model_dir=model_dir,
                                            address=address, workers=workers), code=2)
    resumed = plan.total - len(plan.todo)
    if resume:
        _report_resumed(resumed, plan.total, quiet)
    failures = []
    with _progress(plan.total, "series", quiet) as advance:
        advance(resumed)
        for _key, failure in b.iter_batch(plan, address=address, workers=workers,
                                          gpus_per_worker=gpus_per_worker):
            if failure is not None:
                failures.append(failure)
            advance(1)
    summary = b.finish_batch(plan, failures, write_rsna_csv=rsna_csv, resumed=resumed)
    if not quiet:
        out_console.print(f"{summary.written} of {summary.total} series written to {out} "
                          f"({summary.resumed} from an earlier run)", highlight=False)
        if summary.rsna_csv is not None:
            out_console.print(f"wrote {summary.rsna_csv}", highlight=False)
    _report_failures(summary.failures, [], quiet)
    if summary.skipped and not quiet:  # an archive can hold many: a count, not a list
        _say("skipped:", "yellow", f"{len(summary.skipped)} files that are not CT images")
    raise typer.Exit(1 if summary.failures or not summary.written else 0)


@app.command()
def info(
    model_dir: ModelDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Versions, available execution providers, and the models with their metadata."""
    import onnxruntime
    import pydicom

    from ichinfer import dicom, models, runtime

    try:  # installed, in the order tried (ICHINFER_JPEG_LOSSLESS_DECODER first)
        jpeg_lossless: list[str] | str = list(dicom.decoding_plugins(dicom.JPEGLosslessSV1))
    except ValueError as err:  # ICHINFER_JPEG_LOSSLESS_DECODER names no decoder
        jpeg_lossless = str(err)
    report: dict = {
        "ichinfer": __version__,
        "python": sys.version.split()[0],
        "onnxruntime": onnxruntime.__version__,
        "pydicom": pydicom.__version__,
        "jpeg_lossless_decoders": jpeg_lossless,
        "providers": runtime.available_providers(),
    }
    try:
        folder = models.model_dir(model_dir)
        manifest = models.read_manifest(folder)
        report["model_dir"] = str(folder)
        report["defaults"] = manifest.get("defaults", {})
        report["models"] = []
        for name in manifest["models"]:
            try:
                path = folder / name
                models.verify(path, manifest)
                spec = runtime.get_session(path, device="cpu").spec
                report["models"].append({**spec.describe(), "sha256_ok": True})
            except IchInferError as err:
                report["models"].append({"file": name, "error": str(err)})
    except IchInferError as err:
        report["model_dir_error"] = str(err)
    if as_json:
        out_console.print_json(json.dumps(report))
    else:
        for key in ("ichinfer", "python", "onnxruntime", "pydicom", "jpeg_lossless_decoders",
                    "providers", "model_dir"):
            out_console.print(f"{key}: {report.get(key)}", highlight=False)
        for m in report.get("models", []):
            if "error" in m:
                out_console.print(f"  {m['file']}: [red]{m['error']}[/red]", highlight=False)
            else:
                out_console.print(
                    f"  {m['file']}: {m['task']} {m['name']} v{m['version']} {m['precision']} "
                    f"input {m['input_size']} context ±{m['context_slabs']} slab {m['slab_mm']} mm"
                    f" — trained on: {m['training_data']}", highlight=False)
                if m["task"] == "classify":
                    series = m["series_thresholds"] or m["thresholds"]
                    out_console.print(
                        "    thresholds, slice / series verdict: " + ", ".join(
                            f"{k} {m['thresholds'][k]:.3f} / {series[k]:.3f}" for k in LABELS),
                        highlight=False)
        if "model_dir_error" in report:
            out_console.print(f"[red]{report['model_dir_error']}[/red]", highlight=False)


@app.callback(invoke_without_command=True)
def main(
    version: Annotated[bool, typer.Option("--version", help="print the version and exit")] = False,
) -> None:
    if version:
        out_console.print(f"ichinfer {__version__}")
        raise typer.Exit(0)


def run() -> None:
    app()


if __name__ == "__main__":
    run()
