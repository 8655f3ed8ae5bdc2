"""Pictures: a brain-window rendering with the bleed in blue, masks as PNG. Owns opencv writes."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ichinfer.errors import InvalidInputError
from ichinfer.preprocess import BRAIN_WINDOW, window
from ichinfer.results import atomic_write_bytes

#: RGB of the bleed overlay
BLUE = (0, 90, 255)
OUTLINE = (40, 200, 255)


def render_window(hu: np.ndarray, center_hu: float = BRAIN_WINDOW[0],
                  width_hu: float = BRAIN_WINDOW[1]) -> np.ndarray:
    """uint8 grey rendering of ``hu`` through a (center, width) window."""
    return np.round(window(hu, center_hu, width_hu) * 255.0).astype(np.uint8)


def blue_overlay(hu: np.ndarray, mask: np.ndarray, *, alpha: float = 0.45,
                 window_hu: tuple[float, float] = BRAIN_WINDOW) -> np.ndarray:
    """RGB uint8 (rows, cols, 3): the brain window with ``mask`` pixels tinted blue and outlined."""
    grey = render_window(hu, *window_hu)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    m = np.asarray(mask).astype(bool)
    if m.shape != grey.shape:
        raise ValueError(f"mask shape {m.shape} differs from image shape {grey.shape}")
    if m.any():
        tint = np.asarray(BLUE, dtype=np.float32)
        rgb[m] = np.round((1 - alpha) * rgb[m] + alpha * tint).astype(np.uint8)
        contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(rgb, contours, -1, OUTLINE, 1)
    return rgb


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a grey (H, W) or RGB (H, W, 3) uint8 image."""
    img = np.asarray(image)
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise InvalidInputError("opencv could not encode the image as PNG")
    return buf.tobytes()


def write_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write ``image`` (grey or RGB) as PNG, atomically."""
    atomic_write_bytes(path, encode_png(image))
    return Path(path)


def read_mask_png(path: str | os.PathLike) -> np.ndarray | None:
    """A mask PNG written by ``ichinfer segment`` as uint8 0/1, or None if missing/unreadable."""
    if not os.path.isfile(path):
        return None
    image = cv2.imread(os.fspath(path), cv2.IMREAD_GRAYSCALE)
    return None if image is None else (image > 0).astype(np.uint8)


def mask_png(mask: np.ndarray) -> np.ndarray:
    """A 0/255 uint8 image of a 0/1 mask (what ``masks/*.png`` hold)."""
    return (np.asarray(mask) > 0).astype(np.uint8) * 255
