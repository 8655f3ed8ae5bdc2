"""The ``ichinfer`` command line (Typer): arguments, progress bars, exit codes.

Exit codes: 0 every input processed; 1 some input failed (the rest processed, failures listed);
2 usage errors (bad options, an output that exists without ``--overwrite``, no models).
"""

from __future__ import annotations

import json
import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

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
VariantOpt = Annotated[str | None, typer.Option(help="model variant from the manifest, e.g. int8")]


def _setup_logging(debug: bool, quiet: bool) -> None:
    level = logging.DEBUG if debug else logging.ERROR if quiet else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)


def _fail_usage(message: str) -> None:
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(2)


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


def _report_failures(failures, skipped, quiet: bool) -> None:
    for f in failures:
        err_console.print(f"[red]failed:[/red] {f.path}: {f.reason}", highlight=False)
    if not quiet:
        for s in skipped:
            err_console.print(f"[yellow]skipped:[/yellow] {s.path}: {s.reason}", highlight=False)


def _check_out(path: Path | None, overwrite: bool) -> None:
    if path is not None and path.exists() and not overwrite:
        _fail_usage(f"{path} exists; use --overwrite to replace it")


def _run(debug: bool, fn):
    """Call ``fn``; an ichinfer error that stops the whole run becomes one line and exit 1."""
    try:
        return fn()
    except IchInferError as err:
        if debug:
            raise
        err_console.print(f"[red]error:[/red] {err}", highlight=False)
        raise typer.Exit(1) from None


@app.command()
def classify(
    paths: PathsArg,
    out: Annotated[Path | None, typer.Option(help="results.csv (RSNA format) or results.json")] = None,
    model: ModelOpt = None,
    model_dir: ModelDirOpt = None,
    variant: VariantOpt = None,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    thresholds: Annotated[Path | None, typer.Option(help="thresholds JSON (ichinfer calibrate)")] = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Six ICH probabilities per slice and a verdict per series."""
    from ichinfer.classification import Classifier
    from ichinfer.pipeline import failures_of, scan_inputs
    from ichinfer.results import ClassificationResult, to_json, to_rsna_csv

    _setup_logging(debug, quiet)
    if out is not None and out.suffix.lower() not in (".csv", ".json"):
        _fail_usage(f"--out must end in .csv or .json, not {out.name!r}")
    _check_out(out, overwrite)
    clf = _run(debug, lambda: Classifier(model, model_dir=model_dir, variant=variant, device=device,
                                         threads=threads, batch_size=batch_size,
                                         thresholds=thresholds))
    scan = _run(debug, lambda: scan_inputs(paths, on_error="collect"))
    failures = failures_of(scan.failures)
    results = []
    with _progress(sum(len(s.slices) for s in scan.series), "classifying", quiet) as advance:
        for series in scan.series:
            for res in clf._iter([series], "collect", failures):
                results.append(res)
            advance(len(series.slices))
    result = ClassificationResult(series=results, failures=failures,
                                  skipped=failures_of(scan.skipped), model=clf.spec.describe())
    if out is not None:
        (to_rsna_csv if out.suffix.lower() == ".csv" else to_json)(result, out)
    if not quiet:
        _print_classification(result)
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
        cells = [f"{'[bold red]' if verdict[k] else ''}{probs[k]:.3f}" for k in LABELS]
        table.add_row("…" + s.series_uid[-12:], str(len(s.slices)), *cells)
    out_console.print(table)


@app.command()
def segment(
    paths: PathsArg,
    out: Annotated[Path, typer.Option(help="output folder: overlays/, masks/, summary.json")],
    model: ModelOpt = None,
    model_dir: ModelDirOpt = None,
    variant: VariantOpt = None,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    overlays: Annotated[str, typer.Option(help="which slices get an overlay PNG: bleeding | all | none")] = "bleeding",
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Bleed masks per slice, blue overlays, areas and volume per series."""
    from ichinfer.overlay import blue_overlay, mask_png, write_png
    from ichinfer.pipeline import failures_of, scan_inputs
    from ichinfer.results import SegmentationResult, to_json
    from ichinfer.segmentation import Segmenter

    _setup_logging(debug, quiet)
    if overlays not in ("bleeding", "all", "none"):
        _fail_usage(f"--overlays must be bleeding, all or none, not {overlays!r}")
    summary_path = out / "summary.json"
    _check_out(summary_path, overwrite)
    seg = _run(debug, lambda: Segmenter(model, model_dir=model_dir, variant=variant, device=device,
                                        threads=threads, batch_size=batch_size))
    scan = _run(debug, lambda: scan_inputs(paths, on_error="collect"))
    failures = failures_of(scan.failures)
    results = []
    with _progress(sum(len(s.slices) for s in scan.series), "segmenting", quiet) as advance:
        for k, series in enumerate(scan.series):
            for res in seg._iter([series], "collect", failures):
                results.append(res)
                for sl in res.slices:
                    stem = f"s{k:02d}_{sl.index:04d}"
                    write_png(out / "masks" / f"{stem}.png", mask_png(sl.mask))
                    if overlays == "all" or (overlays == "bleeding" and sl.mask.any()):
                        hu = res.source.load_hu(sl.index)
                        write_png(out / "overlays" / f"{stem}.png", blue_overlay(hu, sl.mask))
            advance(len(series.slices))
    result = SegmentationResult(series=results, failures=failures,
                                skipped=failures_of(scan.skipped), model=seg.spec.describe())
    to_json(result, summary_path)
    if not quiet:
        for k, s in enumerate(result.series):
            n_bleed = sum(1 for sl in s.slices if sl.mask.any())
            out_console.print(f"series s{k:02d} …{s.series_uid[-12:]}: {len(s.slices)} slices, "
                              f"{n_bleed} with bleed, volume "
                              + ("unknown (no slice thickness)" if s.volume_ml is None
                                 else f"{s.volume_ml:.2f} mL"), highlight=False)
        out_console.print(f"wrote {summary_path}", highlight=False)
    _report_failures(result.failures, result.skipped, quiet)
    raise typer.Exit(1 if result.failures or not result.series else 0)


@app.command()
def info(
    model_dir: ModelDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Versions, available execution providers, and the models with their metadata."""
    import onnxruntime
    import pydicom

    from ichinfer import models, runtime

    report: dict = {
        "ichinfer": __version__,
        "python": sys.version.split()[0],
        "onnxruntime": onnxruntime.__version__,
        "pydicom": pydicom.__version__,
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
        for key in ("ichinfer", "python", "onnxruntime", "pydicom", "providers", "model_dir"):
            out_console.print(f"{key}: {report.get(key)}", highlight=False)
        for m in report.get("models", []):
            if "error" in m:
                out_console.print(f"  {m['file']}: [red]{m['error']}[/red]", highlight=False)
            else:
                out_console.print(
                    f"  {m['file']}: {m['task']} {m['name']} v{m['version']} {m['precision']} "
                    f"input {m['input_size']} context ±{m['context_slabs']} slab {m['slab_mm']} mm"
                    f" — trained on: {m['training_data']}", highlight=False)
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
