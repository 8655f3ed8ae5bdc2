"""Which decoder reads which transfer syntax: libjpeg-turbo (the ``[imagecodecs]`` extra) or
GDCM (the ``[gdcm]`` extra) for JPEG Lossless, each checked against pylibjpeg on real data, and
libjpeg-turbo also on frames of every precision and predictor; pylibjpeg for everything else,
the extras installed or not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom import uid

from ichinfer import dicom
from ichinfer.errors import InvalidInputError

GDCM = dicom.gdcm_installed()
IMAGECODECS = dicom.imagecodecs_installed()
needs_gdcm = pytest.mark.skipif(not GDCM, reason="python-gdcm is not installed ('.[gdcm]')")
needs_imagecodecs = pytest.mark.skipif(
    not IMAGECODECS, reason="imagecodecs is not installed ('.[imagecodecs]')")
EXTRAS = [pytest.param("imagecodecs", marks=needs_imagecodecs),
          pytest.param("gdcm", marks=needs_gdcm)]


def _cq500(shared_data: Path) -> list[Path]:
    files = sorted(p for p in (shared_data / "cq500-ct0").rglob("*") if p.is_file())
    if not files:
        pytest.skip("no CQ500 series in ../shared/data")
    return files


@pytest.mark.shared_data
@pytest.mark.parametrize("extra", EXTRAS)
def test_extra_gives_pylibjpegs_hu_on_every_cq500_slice(extra, shared_data, monkeypatch) -> None:
    files = _cq500(shared_data)
    monkeypatch.delenv(dicom.JPEG_LOSSLESS_DECODER_ENV, raising=False)
    installed = dicom.installed_plugins(uid.JPEGLosslessSV1)
    # the fastest installed decoder is the default
    assert dicom.decoding_plugins(uid.JPEGLosslessSV1)[0] == next(
        d for d in dicom.JPEG_LOSSLESS_DECODERS if d in installed)
    hu = {}
    for decoder in (extra, "pylibjpeg"):
        monkeypatch.setenv(dicom.JPEG_LOSSLESS_DECODER_ENV, decoder)
        assert dicom.decoding_plugins(uid.JPEGLosslessSV1)[0] == decoder
        hu[decoder] = [dicom.read_hu(str(f)) for f in files]
    assert len(hu[extra]) == 238
    for path, a, b in zip(files, hu[extra], hu["pylibjpeg"], strict=True):
        np.testing.assert_array_equal(a, b, err_msg=str(path))


def _lossless_file(tmp_path: Path, bits: int, signed: int, predictor: int, *,
                   allocated: int = 16) -> tuple[str, str, np.ndarray]:
    """The same image as a native file and as a JPEG Lossless one (libjpeg-turbo's encoder):
    ``bits`` stored, signed or not, stored values spanning the whole range."""
    import imagecodecs
    from dicom_factory import make_ct_dataset, write
    from pydicom.encaps import encapsulate

    rng = np.random.default_rng(bits * 100 + signed * 10 + predictor)
    low, high = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
    stored = rng.integers(low, high, (48, 64))
    stored[:4] = low
    stored[4:8] = high - 1
    stored[8:24, 8:40] = (low + high) // 2 + 3  # flat areas: the predictors' easy case
    ds = make_ct_dataset(pixels=stored, BitsAllocated=allocated, BitsStored=bits,
                         PixelRepresentation=signed, RescaleIntercept=-1024 if not signed else 0)
    if allocated == 8:
        ds.PixelData = stored.astype(np.uint8).tobytes()
    name = f"{bits}-{signed}-{predictor}-{allocated}"
    native = write(ds, tmp_path / f"native-{name}.dcm")
    raw = (stored & ((1 << bits) - 1)).astype(np.uint8 if bits <= 8 else np.uint16)
    frame = imagecodecs.jpeg8_encode(raw, lossless=True, predictor=predictor,
                                     bitspersample=bits)
    ds.PixelData = encapsulate([bytes(frame)])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = uid.JPEGLosslessSV1 if predictor == 1 else uid.JPEGLossless
    return native, write(ds, tmp_path / f"jpeg-{name}.dcm"), stored


@needs_imagecodecs
@pytest.mark.parametrize("bits, signed", [(12, 0), (12, 1), (13, 1), (15, 0), (16, 0), (16, 1)])
@pytest.mark.parametrize("predictor", range(1, 8))
def test_imagecodecs_reads_every_precision_and_predictor(tmp_path, monkeypatch, bits, signed,
                                                         predictor) -> None:
    native, jpeg, stored = _lossless_file(tmp_path, bits, signed, predictor)
    np.testing.assert_array_equal(_stored(native), stored)  # the native file holds them
    for decoder in ("imagecodecs", "pylibjpeg"):
        monkeypatch.setenv(dicom.JPEG_LOSSLESS_DECODER_ENV, decoder)
        np.testing.assert_array_equal(_stored(jpeg, decoder), stored, err_msg=decoder)
        np.testing.assert_array_equal(dicom.read_hu(jpeg), dicom.read_hu(native),
                                      err_msg=decoder)


def _stored(path: str, decoder: str = "") -> np.ndarray:
    """Stored values (before HU and clipping) by that pydicom plugin alone (no fallback)."""
    return dicom._decode_pixels(dicom.pydicom.dcmread(path), decoding_plugin=decoder)


@needs_imagecodecs
def test_imagecodecs_widens_8_bit_precision_to_16_bits_allocated(tmp_path, monkeypatch) -> None:
    """An 8-bit JPEG in a 16-bit container: libjpeg-turbo gives bytes, pydicom wants words.
    (pydicom 3.0 with pylibjpeg-libjpeg 2.5 cannot read this file: a buffer half the size.)"""
    native, jpeg, stored = _lossless_file(tmp_path, 8, 0, 1)
    np.testing.assert_array_equal(_stored(native), stored)
    np.testing.assert_array_equal(_stored(jpeg, "imagecodecs"), stored)
    monkeypatch.delenv(dicom.JPEG_LOSSLESS_DECODER_ENV, raising=False)
    np.testing.assert_array_equal(dicom.read_hu(jpeg), dicom.read_hu(native))


@needs_imagecodecs
def test_imagecodecs_refuses_a_frame_of_the_wrong_size(tmp_path, monkeypatch) -> None:
    """A frame whose size is not the header's is an error from this plugin (pylibjpeg's turn
    next), never pixels in the wrong places."""
    from ichinfer.imagecodecs_decoder import decode_frame

    _, jpeg, _ = _lossless_file(tmp_path, 12, 0, 1)
    ds = dicom.pydicom.dcmread(jpeg)
    frame = next(dicom.pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))

    class Runner:
        rows, columns, samples_per_pixel, bits_allocated = 48, 64, 1, 16

    assert len(decode_frame(frame, Runner())) == 48 * 64 * 2
    Runner.rows = 64
    with pytest.raises(ValueError, match=r"the JPEG frame is \(48, 64\), the dataset says"):
        decode_frame(frame, Runner())


@pytest.mark.parametrize("ts", [uid.JPEG2000Lossless, uid.JPEG2000, uid.JPEGLSLossless,
                                uid.RLELossless, uid.JPEGBaseline8Bit, uid.ExplicitVRLittleEndian])
def test_other_syntaxes_never_start_with_an_extra(ts) -> None:
    plugins = dicom.decoding_plugins(ts)
    assert plugins[0] not in ("gdcm", "imagecodecs")
    assert "imagecodecs" not in dicom.installed_plugins(ts)
    installed = dicom.installed_plugins(ts)
    if "gdcm" in installed and "pylibjpeg" in installed:  # pydicom alone would try GDCM first
        assert plugins == ("pylibjpeg", "")


@pytest.mark.shared_data
@pytest.mark.parametrize("extra", EXTRAS)
def test_a_failing_decoder_falls_back_to_the_next(extra, shared_data, monkeypatch) -> None:
    path = str(_cq500(shared_data)[0])
    monkeypatch.setenv(dicom.JPEG_LOSSLESS_DECODER_ENV, "pylibjpeg")
    want = dicom.read_hu(path)
    monkeypatch.setenv(dicom.JPEG_LOSSLESS_DECODER_ENV, extra)
    real = dicom._decode_pixels
    tried = []

    def flaky(ds, *, index=None, decoding_plugin=""):
        tried.append(decoding_plugin)
        if decoding_plugin == extra:
            raise RuntimeError(f"{extra} could not decode")
        return real(ds, index=index, decoding_plugin=decoding_plugin)

    monkeypatch.setattr(dicom, "_decode_pixels", flaky)
    np.testing.assert_array_equal(dicom.read_hu(path), want)
    assert tried == list(dicom.decoding_plugins(uid.JPEGLosslessSV1)[:2])
    assert tried[0] == extra


@pytest.mark.shared_data
def test_unknown_decoder_name_is_a_clear_error(shared_data, monkeypatch) -> None:
    path = str(_cq500(shared_data)[0])
    monkeypatch.setenv(dicom.JPEG_LOSSLESS_DECODER_ENV, "openjpeg")
    with pytest.raises(InvalidInputError,
                       match="DECODER=openjpeg is not one of imagecodecs, gdcm, pylibjpeg"):
        dicom.read_hu(path)
    (record,) = dicom.read_header(path).records  # read after the header scan: the same error
    assert record.info.encoded is not None
    with pytest.raises(InvalidInputError, match=r"\.dcm.*DECODER=openjpeg is not one of"):
        dicom.read_slice_hu(record.info)
