"""Tiny pure-python PNG reader/writer for 8-bit grey and 8-bit RGB images (no opencv needed).

Only what masks and montages need: bit depth 8, colour type 0 (grey) or 2 (RGB), no interlace.
The reader undoes all five PNG row filters, so files written by other tools (opencv, PIL) load too.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(image: np.ndarray) -> bytes:
    """Encode a uint8 (H, W) grey or (H, W, 3) RGB array as PNG bytes (filter 'Up')."""
    arr = np.ascontiguousarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"PNG writer needs uint8, got {arr.dtype}")
    if arr.ndim == 2:
        colour_type = 0
    elif arr.ndim == 3 and arr.shape[2] == 3:
        colour_type = 2
    else:
        raise ValueError(f"PNG writer needs (H, W) or (H, W, 3), got {arr.shape}")
    height, width = arr.shape[:2]
    rows = arr.reshape(height, -1)
    up = rows.copy()
    up[1:] = rows[1:] - rows[:-1]  # filter type 2 (Up), wraps modulo 256 like PNG wants
    raw = np.empty((height, rows.shape[1] + 1), np.uint8)
    raw[:, 0] = 2
    raw[0, 0] = 0
    raw[:, 1:] = up
    raw[0, 1:] = rows[0]
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (
        _SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
        + _chunk(b"IEND", b"")
    )


def write_png(path: str | Path, image: np.ndarray) -> None:
    """Write a uint8 grey (H, W) or RGB (H, W, 3) array to `path` as PNG."""
    Path(path).write_bytes(encode_png(image))


def _paeth_row(line: np.ndarray, prev: np.ndarray, bpp: int) -> np.ndarray:
    out = line.astype(np.int16)
    up = prev.astype(np.int16)
    for i in range(out.size):
        a = int(out[i - bpp]) if i >= bpp else 0
        b = int(up[i])
        c = int(up[i - bpp]) if i >= bpp else 0
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        pred = a if (pa <= pb and pa <= pc) else (b if pb <= pc else c)
        out[i] = (out[i] + pred) & 0xFF
    return out.astype(np.uint8)


def _unfilter(raw: np.ndarray, height: int, stride: int, bpp: int) -> np.ndarray:
    data = raw.reshape(height, stride + 1)
    out = np.zeros((height, stride), np.uint8)
    prev = np.zeros(stride, np.uint8)
    for r in range(height):
        ftype, line = int(data[r, 0]), data[r, 1:]
        if ftype == 0:
            row = line.copy()
        elif ftype == 1:  # Sub: cumulative sum per channel, modulo 256
            row = np.cumsum(line.reshape(-1, bpp).astype(np.uint32), axis=0) & 0xFF
            row = row.astype(np.uint8).reshape(-1)
        elif ftype == 2:
            row = line + prev
        elif ftype == 3:  # Average: sequential in the left neighbour
            row = line.astype(np.int32)
            for i in range(stride):
                left = row[i - bpp] if i >= bpp else 0
                row[i] = (row[i] + ((left + int(prev[i])) >> 1)) & 0xFF
            row = row.astype(np.uint8)
        elif ftype == 4:
            row = _paeth_row(line, prev, bpp)
        else:
            raise ValueError(f"bad PNG filter type {ftype} in row {r}")
        out[r] = row
        prev = row
    return out


def decode_png(blob: bytes) -> np.ndarray:
    """Decode 8-bit grey or RGB PNG bytes into a uint8 (H, W) or (H, W, 3) array."""
    if not blob.startswith(_SIGNATURE):
        raise ValueError("not a PNG file")
    pos, idat, header = len(_SIGNATURE), [], None
    while pos < len(blob):
        (length,) = struct.unpack(">I", blob[pos : pos + 4])
        kind = blob[pos + 4 : pos + 8]
        data = blob[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", data)
        elif kind == b"IDAT":
            idat.append(data)
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError("PNG without IHDR")
    width, height, depth, colour_type, _, _, interlace = header
    if depth != 8 or colour_type not in _CHANNELS or interlace != 0:
        raise ValueError(
            f"unsupported PNG (bit depth {depth}, colour type {colour_type}, "
            f"interlace {interlace}); only 8-bit grey/RGB, non-interlaced"
        )
    channels = _CHANNELS[colour_type]
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8)
    pixels = _unfilter(raw, height, width * channels, channels)
    return pixels.reshape(height, width) if channels == 1 else pixels.reshape(height, width, 3)


def read_png(path: str | Path) -> np.ndarray:
    """Read an 8-bit grey or RGB PNG file into a uint8 array ((H, W) or (H, W, 3))."""
    try:
        return decode_png(Path(path).read_bytes())
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
