"""A pydicom decoding plugin: JPEG Lossless through libjpeg-turbo, as imagecodecs ships it.

The ``[imagecodecs]`` extra. libjpeg-turbo decodes JPEG Lossless (process 14, any predictor)
since its version 3.0, of 8, 12 and 16 bits there and of 2 to 16 bits since 3.1, several times
faster than pylibjpeg's libjpeg on the CQ500 series (``benchmarks/README.md``). Checked here
with imagecodecs 2024.6.1 (libjpeg-turbo 3.0.3: every CQ500 slice and 8-, 12- and 16-bit
frames right; 10-, 13- and 15-bit ones raise, and the next decoder reads them) and 2026.3.6
(libjpeg-turbo 3.1.3: all of them). :mod:`ichinfer.dicom` registers this module with
pydicom's JPEG Lossless decoders under the label ``imagecodecs``; pydicom then does all it does
for its own plugins (the frame's bytes become stored values, then HU), so only the frame's
decoding changes. The tests check it against pylibjpeg, value for value, on every CQ500 slice
and on frames of 12, 13, 15 and 16 bits with every predictor, and an 8-bit one
(``tests/test_jpeg_decoders.py``).

``is_available`` reads the installed version only: imagecodecs (about 70 ms to import) is
imported at the first frame, so series in other syntaxes never load it.
"""

from __future__ import annotations

import functools
import re
from importlib import metadata
from typing import Any

from pydicom import uid

#: the oldest imagecodecs checked (above; the oldest with a Python 3.11 wheel and libjpeg-turbo 3)
MIN_VERSION = (2024, 6, 1)
_REQUIREMENT = "imagecodecs>=" + ".".join(map(str, MIN_VERSION))
DECODER_DEPENDENCIES = {uid.JPEGLossless: (_REQUIREMENT,), uid.JPEGLosslessSV1: (_REQUIREMENT,)}


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


@functools.cache
def _installed() -> bool:
    try:
        return _version(metadata.version("imagecodecs")) >= MIN_VERSION
    except metadata.PackageNotFoundError:
        return False


def is_available(ts: str) -> bool:
    """Whether this plugin decodes transfer syntax ``ts`` here (pydicom's plugin interface)."""
    return ts in DECODER_DEPENDENCIES and _installed()


@functools.cache
def _jpeg8_decode() -> Any:
    """imagecodecs' libjpeg-turbo decoder, or an error if that build cannot do lossless."""
    import imagecodecs

    version = imagecodecs.jpeg8_version()  # e.g. "libjpeg_turbo 3.1.3/8.0"
    found = re.search(r"turbo[^\d]*(\d+)", version)
    if found is None or int(found.group(1)) < 3:
        raise RuntimeError(f"imagecodecs' JPEG library is {version}; JPEG Lossless needs "
                           "libjpeg-turbo 3.0 or later")
    return imagecodecs.jpeg8_decode


def decode_frame(src: bytes, runner: Any) -> bytes:
    """One encoded frame as the bytes pydicom expects: ``rows × columns`` samples of
    ``bits_allocated`` bits (pydicom's plugin interface). Anything unexpected raises, and
    ichinfer then tries the next decoder."""
    if runner.samples_per_pixel != 1:
        raise ValueError(f"{runner.samples_per_pixel} samples per pixel; this plugin decodes "
                         "greyscale only")
    arr = _jpeg8_decode()(src)
    if arr.shape != (runner.rows, runner.columns):
        raise ValueError(f"the JPEG frame is {arr.shape}, the dataset says "
                         f"{(runner.rows, runner.columns)}")
    itemsize = runner.bits_allocated // 8
    if arr.dtype.itemsize != itemsize:
        if itemsize not in (2, 4) or arr.dtype.itemsize > itemsize:
            raise ValueError(f"{arr.dtype} samples for {runner.bits_allocated} bits allocated")
        arr = arr.astype(f"<u{itemsize}")
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
