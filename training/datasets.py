"""Keras ``PyDataset`` batches cut from :class:`training.data.SeriesData` stacks.

Inputs are built with :func:`ichinfer.preprocess.model_inputs` — the same slabs, neighbours and
prior the runtime builds. Augmentation (numpy + opencv) covers what the phantom generator does
not: left-right flips, small shifts, soft or sharp reconstruction kernels, HU gain/offset
jitter and extra noise (kernel sharpness only with ``--kernel-augment``).
"""

from __future__ import annotations

import cv2
import keras
import numpy as np

from ichinfer.labels import LABELS
from ichinfer.preprocess import AIR_HU, model_inputs, with_prior
from training.data import SeriesData


def n_batches(n_samples: int, batch_size: int, batch_multiple: int = 1) -> int:
    """Batches per epoch; with ``batch_multiple`` > 1 a final batch smaller than it is dropped.

    Under tf.distribute ``batch_multiple`` is the replica count and every batch is cut to a
    multiple of it (:func:`_cut`): replicas given unequal batches (or none) make TensorFlow's
    AddN fail. The samples left out come back in later epochs' shuffles."""
    full, rest = divmod(n_samples, batch_size)
    return full + (1 if rest and rest >= batch_multiple else 0)


def _cut(rows: np.ndarray, batch_multiple: int) -> np.ndarray:
    return rows[: len(rows) - len(rows) % batch_multiple] if batch_multiple > 1 else rows


def classifier_samples(series: list[SeriesData]) -> np.ndarray:
    """(series index, slice index) of every slice with all six labels known."""
    rows = []
    for si, s in enumerate(series):
        if s.labels is None:
            continue
        ok = ~np.isnan(s.labels).any(axis=1)
        rows += [(si, int(i)) for i in np.flatnonzero(ok)]
    return np.asarray(rows, dtype=np.int64).reshape(-1, 2)


def segmenter_samples(series: list[SeriesData]) -> np.ndarray:
    rows = []
    for si, s in enumerate(series):
        if s.masks is not None:
            rows += [(si, i) for i in range(len(s.masks))]
    return np.asarray(rows, dtype=np.int64).reshape(-1, 2)


def build_inputs(
    series: list[SeriesData], samples: np.ndarray, *, slab_mm: float, context: int
) -> np.ndarray:
    """Model inputs for ``samples`` (grouped per series so slabs are shared)."""
    size = series[0].grid.shape[-1]
    out = np.empty((len(samples), size, size, 2 * context + 1), dtype=np.float32)
    for si in np.unique(samples[:, 0]):
        rows = np.flatnonzero(samples[:, 0] == si)
        s = series[int(si)]
        out[rows] = model_inputs(
            s.grid, s.locations_mm, samples[rows, 1], slab_mm=slab_mm, context=context
        )
    return out


def sharpness(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Soft or sharp reconstruction kernels: a Gaussian blur or an unsharp mask, at random.

    Sharpening the slabs of the real CQ500 series (8 thin slices averaged, smooth edges) halves
    the bundled classifier's subdural scores (``training/probe_real.py``); varying edge
    sharpness in training is meant to take that cue away (measured: it did not help, hence
    opt-in)."""
    u = rng.random()
    if u < 0.35:
        return cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.4, 1.3))).reshape(img.shape)
    if u < 0.7:
        soft = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.8, 2.0))).reshape(img.shape)
        return img + np.float32(rng.uniform(0.3, 1.0)) * (img - soft)
    return img


def augment(
    x: np.ndarray,
    rng: np.random.Generator,
    masks: np.ndarray | None = None,
    *,
    kernels: bool = False,
    hu_shift: float = 4.0,
):
    """Flip, shift, intensity jitter (gain 0.96-1.04, an offset of up to ``hu_shift`` HU,
    noise) and (``kernels``) kernel sharpness, in place where possible. ``masks`` follow the
    geometry."""
    n, size = x.shape[0], x.shape[1]
    for k in range(n):
        if kernels:
            x[k] = sharpness(x[k], rng)
        if rng.random() < 0.5:
            x[k] = x[k, :, ::-1]
            if masks is not None:
                masks[k] = masks[k, :, ::-1]
        dy, dx = rng.integers(-size // 12, size // 12 + 1, size=2)
        if dy or dx:
            x[k] = _shift(x[k], dy, dx, AIR_HU)
            if masks is not None:
                masks[k] = _shift(masks[k], dy, dx, 0)
    gain = rng.uniform(0.96, 1.04, size=(n, 1, 1, 1)).astype(np.float32)
    offset = rng.uniform(-hu_shift, hu_shift, size=(n, 1, 1, 1)).astype(np.float32)
    sigma = rng.uniform(0, 4, size=(n, 1, 1, 1)).astype(np.float32)
    hu_channels = x.shape[-1]
    x[..., :hu_channels] = x[..., :hu_channels] * gain + offset
    x += rng.standard_normal(x.shape, dtype=np.float32) * sigma
    return x, masks


def _shift(img: np.ndarray, dy: int, dx: int, fill: float) -> np.ndarray:
    out = np.full_like(img, fill)
    h, w = img.shape[0], img.shape[1]
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = img[ys, xs]
    return out


class _Batches(keras.utils.PyDataset):
    """What both batch sources share: settings, the shuffled order (reshuffled every epoch) and
    per-batch randomness."""

    def __init__(
        self,
        series: list[SeriesData],
        *,
        batch_size: int,
        slab_mm: float,
        context: int,
        train: bool,
        seed: int = 0,
        batch_multiple: int = 1,
        kernel_augment: bool = False,
        hu_shift: float = 4.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.series, self.batch_size, self.batch_multiple = series, batch_size, batch_multiple
        self.slab_mm, self.context, self.train = slab_mm, context, train
        self.kernel_augment, self.hu_shift = kernel_augment, hu_shift
        self.rng = np.random.default_rng(seed)
        self.seed, self.epoch = seed, 0

    def _set_samples(self, samples: np.ndarray) -> None:
        self.samples = samples
        self.order = np.arange(len(samples))
        if self.train:
            self.rng.shuffle(self.order)

    def __len__(self) -> int:
        return n_batches(len(self.samples), self.batch_size, self.batch_multiple)

    def on_epoch_end(self) -> None:
        self.epoch += 1
        if self.train:
            self.rng.shuffle(self.order)

    def batch_rng(self, idx: int) -> np.random.Generator:
        """Augmentation (and crop) randomness of one batch: the same with any ``workers``."""
        return np.random.default_rng([self.seed, self.epoch, idx])

    def _rows(self, idx: int) -> np.ndarray:
        rows = self.samples[self.order[idx * self.batch_size : (idx + 1) * self.batch_size]]
        return _cut(rows, self.batch_multiple)


class ClassifierBatches(_Batches):
    """Batches of (HU inputs, six labels); ``context=0`` gives the seed CNN's single slab.
    Options as :class:`_Batches`."""

    def __init__(self, series: list[SeriesData], **options):
        super().__init__(series, **options)
        self._set_samples(classifier_samples(series))

    def labels(self) -> np.ndarray:
        return np.stack([self.series[si].labels[i] for si, i in self.samples])

    def __getitem__(self, idx: int):
        rows = self._rows(idx)
        x = build_inputs(self.series, rows, slab_mm=self.slab_mm, context=self.context)
        y = np.stack([self.series[si].labels[i] for si, i in rows]).astype(np.float32)
        if self.train:
            x, _ = augment(
                x, self.batch_rng(idx), kernels=self.kernel_augment, hu_shift=self.hu_shift
            )
        return x, y


def oversampled(series: list[SeriesData], samples: np.ndarray,
                times: dict[str, int]) -> np.ndarray:
    """``samples`` with each slice labelled positive for a label of ``times`` there that many
    times in all (a slice with two such labels: the larger count). Slices whose label is
    unknown (NaN, as in the image + mask layouts) are not repeated."""
    if not times:
        return samples
    count = np.ones(len(samples), dtype=np.int64)
    for name, k in times.items():
        col = LABELS.index(name)
        pos = np.array([series[si].labels is not None and series[si].labels[i, col] == 1.0
                        for si, i in samples], dtype=bool).reshape(-1)
        count[pos] = np.maximum(count[pos], k)
    return np.repeat(samples, count, axis=0)


class SegmenterBatches(_Batches):
    """Batches of (HU inputs + prior, mask). Training cuts random crops, biased to bleeds;
    ``oversample`` ({label: k}) repeats the training slices positive for a label k times in each
    epoch (after the share of bleeding slices is set). Other options as :class:`_Batches`."""

    def __init__(
        self,
        series: list[SeriesData],
        *,
        crop: int | None = None,
        positive_fraction: float = 0.7,
        oversample: dict[str, int] | None = None,
        **options,
    ):
        super().__init__(series, **options)
        self.crop = crop
        all_samples = segmenter_samples(series)
        has = np.array([series[si].masks[i].any() for si, i in all_samples], dtype=bool)
        if self.train:
            # every positive slice, and negatives so positives make ~positive_fraction
            pos, neg = all_samples[has], all_samples[~has]
            n_neg = min(len(neg), int(len(pos) * (1 - positive_fraction) / positive_fraction) + 1)
            neg = neg[self.rng.choice(len(neg), size=n_neg, replace=False)] if n_neg else neg[:0]
            all_samples = np.concatenate([oversampled(series, pos, oversample or {}), neg])
        self._set_samples(all_samples)

    def _crop(
        self, x: np.ndarray, m: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        c, size = self.crop, x.shape[1]
        xs = np.empty((len(x), c, c, x.shape[-1]), dtype=np.float32)
        ms = np.empty((len(x), c, c), dtype=np.float32)
        for k in range(len(x)):
            ys, xs_ = np.nonzero(m[k])
            if len(ys) and rng.random() < 0.85:
                j = rng.integers(len(ys))
                cy = int(np.clip(ys[j] + rng.integers(-c // 3, c // 3 + 1), c // 2, size - c // 2))
                cx = int(np.clip(xs_[j] + rng.integers(-c // 3, c // 3 + 1), c // 2, size - c // 2))
            else:
                cy, cx = rng.integers(c // 2, size - c // 2 + 1, size=2)
            y0, x0 = cy - c // 2, cx - c // 2
            xs[k] = x[k, y0 : y0 + c, x0 : x0 + c]
            ms[k] = m[k, y0 : y0 + c, x0 : x0 + c]
        return xs, ms

    def __getitem__(self, idx: int):
        rows = self._rows(idx)
        x = build_inputs(self.series, rows, slab_mm=self.slab_mm, context=self.context)
        m = np.stack([self.series[si].masks[i] for si, i in rows]).astype(np.float32)
        rng = self.batch_rng(idx)
        if self.train:
            x, m = augment(x, rng, m, kernels=self.kernel_augment, hu_shift=self.hu_shift)
        x = with_prior(x, self.context)
        if self.train and self.crop and self.crop < x.shape[1]:
            x, m = self._crop(x, m, rng)
        return x, m[..., None]
