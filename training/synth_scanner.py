"""Scanner effects for the phantom generator: resampling, blur, noise, streaks, head holder.

Pure numpy functions on 2-D HU images; randomness comes in through an explicit Generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

F32 = np.float32


def upsample2(a: np.ndarray) -> np.ndarray:
    """Bilinear x2 upsampling where half-res pixel m sits at full-res coordinate 2m + 0.5."""

    def along(arr: np.ndarray, axis: int) -> np.ndarray:
        a0 = np.moveaxis(arr, axis, 0)
        prev = np.concatenate([a0[:1], a0[:-1]])
        nxt = np.concatenate([a0[1:], a0[-1:]])
        out = np.empty((2 * a0.shape[0],) + a0.shape[1:], arr.dtype)
        out[0::2] = F32(0.75) * a0 + F32(0.25) * prev
        out[1::2] = F32(0.75) * a0 + F32(0.25) * nxt
        return np.moveaxis(out, 0, axis)

    return along(along(a, 0), 1)


def blur121(a: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Separable [1, 2, 1] / 4 smoothing, blended with the input by `strength` (0..1)."""
    b = a.copy()
    for axis in (0, 1):
        a0 = np.moveaxis(b, axis, 0)
        prev = np.concatenate([a0[:1], a0[:-1]])
        nxt = np.concatenate([a0[1:], a0[-1:]])
        b = np.moveaxis(F32(0.5) * a0 + F32(0.25) * (prev + nxt), 0, axis)
    return a + F32(strength) * (b - a)


def gaussian_blur(a: np.ndarray, sigma_px: float) -> np.ndarray:
    """Separable Gaussian blur (edge-padded): the scanner's point-spread function."""
    if sigma_px < 0.2:
        return a.copy()
    r = int(np.ceil(3.0 * sigma_px))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma_px) ** 2).astype(F32)
    k /= k.sum()
    out = a
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (r, r)
        padded = np.pad(out, pad, mode="edge")
        acc = np.zeros_like(a)
        n = a.shape[axis]
        for t, w in enumerate(k):
            acc += w * (padded[t : t + n] if axis == 0 else padded[:, t : t + n])
        out = acc
    return out


def correlated_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian noise with a short correlation length (like a standard CT kernel), std `sigma`."""
    white = rng.standard_normal(shape, dtype=F32)
    smooth = blur121(blur121(white))
    return smooth * F32(sigma / 0.2734)  # [1,4,6,4,1]/16 separable keeps std * 0.2734


@dataclass(frozen=True)
class Holder:
    """Curved head holder below the head: a cylinder along the table (world z) axis."""

    center_xy: tuple[float, float]
    radius_mm: float
    thickness_mm: float
    hu: float
    sides: bool  # straight uprights as on some scanners (U shape)
    pad_hu: float

    def paint(self, wx: np.ndarray, wy: np.ndarray, hu: np.ndarray) -> None:
        """Draw into `hu` where it is air, from world x/y coordinates of the pixels."""
        cx, cy = self.center_xy
        r = np.sqrt((wx - F32(cx)) ** 2 + (wy - F32(cy)) ** 2)
        air = hu < -500.0
        shell = (np.abs(r - F32(self.radius_mm)) < F32(self.thickness_mm / 2)) & (wy > F32(cy))
        if self.sides:
            side = (
                (np.abs(np.abs(wx - F32(cx)) - F32(self.radius_mm)) < F32(self.thickness_mm / 2))
                & (wy <= F32(cy))
                & (wy > F32(cy - 70.0))
            )
            shell |= side
        pad = (
            (r < F32(self.radius_mm - self.thickness_mm / 2))
            & (r > F32(self.radius_mm - 12.0))
            & (wy > F32(cy + 0.3 * self.radius_mm))
        )
        hu[air & pad] = F32(self.pad_hu)
        hu[air & shell] = F32(self.hu)


def streaks(
    shape: tuple[int, int],
    point_ij: tuple[float, float],
    rng: np.random.Generator,
    *,
    n_lines: int,
    amplitude_hu: float,
    width_px: float,
    decay_px: float,
) -> np.ndarray:
    """Bright/dark lines radiating through one pixel position (metal or dense-bone streaks)."""
    ii, jj = np.mgrid[0 : shape[0], 0 : shape[1]].astype(F32)
    di, dj = ii - F32(point_ij[0]), jj - F32(point_ij[1])
    dist = np.sqrt(di * di + dj * dj)
    out = np.zeros(shape, F32)
    for _ in range(n_lines):
        ang = rng.uniform(0, np.pi)
        d_line = np.abs(di * F32(np.cos(ang)) - dj * F32(np.sin(ang)))
        amp = F32(amplitude_hu * rng.uniform(0.3, 1.0) * rng.choice([-1.0, 1.0]))
        out += amp * np.exp(-((d_line / F32(width_px)) ** 2))
    return out * F32(1.0) / (F32(1.0) + dist / F32(decay_px))


def band(
    shape: tuple[int, int],
    a_ij: tuple[float, float],
    b_ij: tuple[float, float],
    *,
    amplitude_hu: float,
    width_px: float,
) -> np.ndarray:
    """A dark/bright band between two pixel positions (Hounsfield bar between petrous bones)."""
    ii, jj = np.mgrid[0 : shape[0], 0 : shape[1]].astype(F32)
    ai, aj = a_ij
    bi, bj = b_ij
    vi, vj = bi - ai, bj - aj
    t = np.clip(((ii - ai) * vi + (jj - aj) * vj) / max(vi * vi + vj * vj, 1e-6), 0.0, 1.0)
    d = np.sqrt((ii - ai - t * vi) ** 2 + (jj - aj - t * vj) ** 2)
    taper = np.sqrt(np.clip(np.sin(np.pi * t), 0.0, 1.0))
    return F32(amplitude_hu) * taper * np.exp(-((d / F32(width_px)) ** 2))
