"""Reading: one slice to HU per transfer syntax, and a header-only scan of a whole series."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import extra_or_skip

from ichinfer import dicom


def _first(folder: Path) -> str:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    return str(files[0])


def _transfer_syntax(path: str) -> str:
    import pydicom

    return str(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID.name)


def _read_one(benchmark, path: str, *, scanned: bool = False) -> None:
    """``read_hu`` of one file, or (``scanned``) what a series decode reads once the header
    scan has found the slice's pixels (:func:`ichinfer.dicom.read_slice_hu`: uncompressed
    pixels straight from the file, compressed ones decoded from their bytes)."""
    benchmark.group = "read one slice to HU"
    benchmark.extra_info.update(file=Path(path).name, transfer_syntax=_transfer_syntax(path))
    if scanned:
        (record,) = dicom.read_header(path).records
        assert record.info.native is not None or record.info.encoded is not None
        benchmark.extra_info["read"] = "read_slice_hu after the header scan"
        hu = benchmark(dicom.read_slice_hu, record.info)
    else:
        hu = benchmark(dicom.read_hu, path)
    benchmark.extra_info["shape"] = list(hu.shape)


def test_read_uncompressed_rsna(benchmark, rsna: Path) -> None:
    _read_one(benchmark, _first(rsna))


def test_read_uncompressed_synthetic(benchmark, series40: Path) -> None:
    _read_one(benchmark, _first(series40))


def test_read_scanned_uncompressed_rsna(benchmark, rsna: Path) -> None:
    _read_one(benchmark, _first(rsna), scanned=True)


def test_read_scanned_uncompressed_synthetic(benchmark, series40: Path) -> None:
    _read_one(benchmark, _first(series40), scanned=True)


@pytest.mark.parametrize("decoder", ["pylibjpeg", "gdcm", "imagecodecs"])
def test_read_jpeg_lossless_cq500(benchmark, cq500: Path, decoder: str, monkeypatch) -> None:
    extra_or_skip(decoder)
    monkeypatch.setenv(dicom.JPEG_LOSSLESS_DECODER_ENV, decoder)
    _read_one(benchmark, _first(cq500))
    benchmark.extra_info.update(jpeg_lossless_decoder=decoder)


@pytest.mark.parametrize("decoder", ["pylibjpeg", "gdcm", "imagecodecs"])
def test_read_scanned_jpeg_lossless_cq500(benchmark, cq500: Path, decoder: str,
                                          monkeypatch) -> None:
    extra_or_skip(decoder)
    monkeypatch.setenv(dicom.JPEG_LOSSLESS_DECODER_ENV, decoder)
    _read_one(benchmark, _first(cq500), scanned=True)
    benchmark.extra_info.update(jpeg_lossless_decoder=decoder)


def test_read_jpeg2000_example(benchmark, phantom: Path) -> None:
    _read_one(benchmark, _first(phantom))


def test_scan_headers_cq500(benchmark, cq500: Path) -> None:
    """Header-only scan (stop_before_pixels) of the 238-file CQ500 folder: find, group, order."""
    benchmark.group = "scan headers"
    result = benchmark(dicom.scan, str(cq500))
    n = sum(len(s.slices) for s in result.series)
    benchmark.extra_info.update(slices=n, series=len(result.series))
    assert n == 238


@pytest.mark.parametrize("workers", [1, 2, "2 processes", "1, gdcm", "1, imagecodecs",
                                     "2, imagecodecs", "2 processes, imagecodecs"])
def test_decode_series_cq500(benchmark, cq500: Path, workers, monkeypatch) -> None:
    """All 238 CQ500 slices to HU on the 192² grid (PreparedSeries.decode), by decode threads
    or (``ICHINFER_DECODE_PROCESSES``) worker processes, whose pool starts in a warm-up round."""
    from ichinfer.pipeline import DECODE_PROCESSES_ENV, DECODE_THREADS_ENV, PreparedSeries

    processes = 2 if str(workers).startswith("2 processes") else 0
    threads = int(str(workers)[0]) if not processes else 1
    decoder = str(workers).split(", ")[1] if ", " in str(workers) else "pylibjpeg"
    extra_or_skip(decoder)
    monkeypatch.setenv(dicom.JPEG_LOSSLESS_DECODER_ENV, decoder)
    monkeypatch.setenv(DECODE_THREADS_ENV, str(threads))
    monkeypatch.setenv(DECODE_PROCESSES_ENV, str(processes))
    series = dicom.read_series(str(cq500))
    benchmark.group = "decode a series onto the model grid"
    benchmark.extra_info.update(slices=len(series.slices), decode_threads=threads,
                                decode_processes=processes, jpeg_lossless_decoder=decoder)
    benchmark.pedantic(lambda: PreparedSeries(series).decode([192]), rounds=3, iterations=1,
                       warmup_rounds=1 if processes else 0)
