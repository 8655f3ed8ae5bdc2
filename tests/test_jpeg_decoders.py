"""Which decoder reads which transfer syntax: GDCM (the ``[gdcm]`` extra) for JPEG Lossless,
checked against pylibjpeg on real data; pylibjpeg for everything else, GDCM installed or not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom import uid

from ichinfer import dicom
from ichinfer.errors import InvalidInputError

GDCM = dicom.gdcm_installed()
needs_gdcm = pytest.mark.skipif(not GDCM, reason="python-gdcm is not installed ('.[gdcm]')")


def _cq500(shared_data: Path) -> list[Path]:
    files = sorted(p for p in (shared_data / "cq500-ct0").rglob("*") if p.is_file())
    if not files:
        pytest.skip("no CQ500 series in ../shared/data")
    return files


@pytest.mark.shared_data
@needs_gdcm
def test_gdcm_gives_pylibjpegs_hu_on_every_cq500_slice(shared_data, monkeypatch) -> None:
    files = _cq500(shared_data)
    assert dicom.decoding_plugins(uid.JPEGLosslessSV1)[0] == "gdcm"
    hu = {}
    for decoder in dicom.JPEG_LOSSLESS_DECODERS:
        monkeypatch.setenv(dicom.JPEG_LOSSLESS_DECODER_ENV, decoder)
        assert dicom.decoding_plugins(uid.JPEGLosslessSV1)[0] == decoder
        hu[decoder] = [dicom.read_hu(str(f)) for f in files]
    assert len(hu["gdcm"]) == 238
    for path, a, b in zip(files, hu["gdcm"], hu["pylibjpeg"], strict=True):
        np.testing.assert_array_equal(a, b, err_msg=str(path))


@pytest.mark.parametrize("ts", [uid.JPEG2000Lossless, uid.JPEG2000, uid.JPEGLSLossless,
                                uid.RLELossless, uid.JPEGBaseline8Bit, uid.ExplicitVRLittleEndian])
def test_other_syntaxes_never_start_with_gdcm(ts) -> None:
    plugins = dicom.decoding_plugins(ts)
    assert plugins[0] != "gdcm"
    installed = dicom.installed_plugins(ts)
    if "gdcm" in installed and "pylibjpeg" in installed:  # pydicom alone would try GDCM first
        assert plugins == ("pylibjpeg", "")


@pytest.mark.shared_data
@needs_gdcm
def test_a_failing_decoder_falls_back_to_the_next(shared_data, monkeypatch) -> None:
    path = str(_cq500(shared_data)[0])
    want = dicom.read_hu(path)
    real = dicom._decode_pixels
    tried = []

    def flaky(ds, *, index=None, decoding_plugin=""):
        tried.append(decoding_plugin)
        if decoding_plugin == "gdcm":
            raise RuntimeError("gdcm could not decode")
        return real(ds, index=index, decoding_plugin=decoding_plugin)

    monkeypatch.setattr(dicom, "_decode_pixels", flaky)
    np.testing.assert_array_equal(dicom.read_hu(path), want)
    assert tried == ["gdcm", "pylibjpeg"]


@pytest.mark.shared_data
def test_unknown_decoder_name_is_a_clear_error(shared_data, monkeypatch) -> None:
    path = str(_cq500(shared_data)[0])
    monkeypatch.setenv(dicom.JPEG_LOSSLESS_DECODER_ENV, "libjpeg-turbo")
    with pytest.raises(InvalidInputError, match="DECODER=libjpeg-turbo is not one of gdcm"):
        dicom.read_hu(path)
