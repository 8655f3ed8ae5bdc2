"""Keras 3 model definitions: the seed CNN baseline, the 2.5-D DenseNet classifier, the segmenter.

Every model takes Hounsfield units (NHWC float32) and windows them inside the graph, so an
exported ONNX file is self-contained. Only ``keras.layers`` / ``keras.ops`` are used, so the same
code runs on the TensorFlow backend (export) and the PyTorch backend (training on a GPU box).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers, ops

from ichinfer.labels import LABELS
from ichinfer.preprocess import DEFAULT_WINDOWS


@keras.saving.register_keras_serializable(package="ichinfer")
class HUWindows(layers.Layer):
    """Map each of the first ``hu_channels`` HU channels to ``len(windows)`` windowed channels.

    Window (center c, width w): ``clip((hu - (c - w/2)) / w, 0, 1)`` — the same formula as
    :func:`ichinfer.preprocess.window`. Channels after ``hu_channels`` pass through unchanged.
    """

    def __init__(self, windows: Sequence[Sequence[float]], hu_channels: int, **kwargs):
        super().__init__(**kwargs)
        self.windows = [[float(c), float(w)] for c, w in windows]
        self.hu_channels = int(hu_channels)

    def call(self, x):
        hu = x[..., : self.hu_channels]
        parts = []
        for c, w in self.windows:
            parts.append(ops.clip((hu - (c - w / 2.0)) / w, 0.0, 1.0))
        rest = x[..., self.hu_channels :]
        if rest.shape[-1]:
            parts.append(rest)
        return ops.concatenate(parts, axis=-1)

    def compute_output_shape(self, input_shape):
        extra = input_shape[-1] - self.hu_channels
        return (*input_shape[:-1], self.hu_channels * len(self.windows) + extra)

    def get_config(self):
        return {**super().get_config(), "windows": self.windows, "hu_channels": self.hu_channels}


def _conv_bn(x, filters: int, kernel: int = 3, strides: int = 1, name: str | None = None):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=name)(
        x
    )
    x = layers.BatchNormalization(name=None if name is None else name + "_bn")(x)
    return layers.Activation("relu")(x)


def _dense_block(x, n_layers: int, growth: int, prefix: str, *, preactivation: bool = True):
    """DenseNet block of bottleneck layers (1x1 conv to 4 x growth, 3x3 conv to growth), each
    concatenated to its input. ``preactivation``: BN-ReLU-Conv as in DenseNet; otherwise
    Conv-BN-ReLU, whose BN folds into the convolution at export (onnxruntime then runs each
    layer as one fused conv, in float32 and int8 alike)."""
    for i in range(n_layers):
        if preactivation:
            y = layers.BatchNormalization(name=f"{prefix}_l{i}_bn1")(x)
            y = layers.Activation("relu")(y)
            y = layers.Conv2D(4 * growth, 1, use_bias=False, name=f"{prefix}_l{i}_c1")(y)
            y = layers.BatchNormalization(name=f"{prefix}_l{i}_bn2")(y)
            y = layers.Activation("relu")(y)
            y = layers.Conv2D(growth, 3, padding="same", use_bias=False, name=f"{prefix}_l{i}_c3")(
                y
            )
        else:
            y = _conv_bn(x, 4 * growth, 1, name=f"{prefix}_l{i}_c1")
            y = _conv_bn(y, growth, 3, name=f"{prefix}_l{i}_c3")
        x = layers.Concatenate(name=f"{prefix}_l{i}_cat")([x, y])
    return x


def _transition(x, prefix: str, compression: float = 0.5, *, preactivation: bool = True):
    filters = max(8, int(x.shape[-1] * compression))
    if preactivation:
        x = layers.BatchNormalization(name=f"{prefix}_bn")(x)
        x = layers.Activation("relu")(x)
        x = layers.Conv2D(filters, 1, use_bias=False, name=f"{prefix}_conv")(x)
    else:
        x = _conv_bn(x, filters, 1, name=f"{prefix}_conv")
    return layers.AveragePooling2D(2, name=f"{prefix}_pool")(x)


def seed_cnn(image_size: int = 128, *, windows=DEFAULT_WINDOWS) -> keras.Model:
    """The original design: four conv layers and two fully-connected ones, on one slice."""
    inp = keras.Input((image_size, image_size, 1), name="hu")
    x = HUWindows(windows, hu_channels=1, name="windows")(inp)
    for i, f in enumerate((16, 32, 64, 64)):
        x = layers.Conv2D(f, 3, padding="same", activation="relu", name=f"conv{i + 1}")(x)
        x = layers.MaxPooling2D(2)(x)
    # the original flattened; a 4x4 average pool first keeps the dense layer small at any size
    x = layers.AveragePooling2D(max(1, image_size // 64))(x)
    x = layers.Flatten()(x)
    x = layers.Dense(64, activation="relu", name="fc1")(x)
    x = layers.Dropout(0.3)(x)
    out = layers.Dense(len(LABELS), activation="sigmoid", name="probabilities")(x)
    return keras.Model(inp, out, name="seed_cnn")


def densenet_classifier(
    image_size: int = 192,
    *,
    context: int = 1,
    growth: int = 12,
    blocks: Sequence[int] = (3, 4, 6, 4),
    windows=DEFAULT_WINDOWS,
) -> keras.Model:
    """2.5-D compact DenseNet: the slab, its neighbours ± one slab, six sigmoid outputs."""
    channels = 2 * context + 1
    inp = keras.Input((image_size, image_size, channels), name="hu")
    x = HUWindows(windows, hu_channels=channels, name="windows")(inp)
    x = _conv_bn(x, 2 * growth, 3, strides=2, name="stem")
    x = layers.MaxPooling2D(2, name="stem_pool")(x)
    for b, n in enumerate(blocks):
        x = _dense_block(x, n, growth, prefix=f"block{b + 1}")
        if b < len(blocks) - 1:
            x = _transition(x, prefix=f"trans{b + 1}")
    x = layers.BatchNormalization(name="final_bn")(x)
    x = layers.Activation("relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    out = layers.Dense(len(LABELS), activation="sigmoid", name="probabilities")(x)
    return keras.Model(inp, out, name="densenet25d")


def densenet_unet(
    image_size: int = 192,
    *,
    context: int = 1,
    growth: int = 8,
    blocks: Sequence[int] = (2, 3, 4, 4),
    windows=DEFAULT_WINDOWS,
    preactivation: bool = False,
) -> keras.Model:
    """U-Net with a DenseNet encoder. Input: 2.5-D HU slabs plus the dense-area prior channel.

    The encoder's layers are Conv-BN-ReLU unless ``preactivation`` (DenseNet's BN-ReLU-Conv,
    the design of the checkpoints bundled before this option): with every BN after a
    convolution, the exported graph is fused convolutions and concatenations only."""
    channels = 2 * context + 1
    inp = keras.Input((image_size, image_size, channels + 1), name="hu_prior")
    x = HUWindows(windows, hu_channels=channels, name="windows")(inp)
    x = _conv_bn(x, 2 * growth, 3, name="stem")
    skips = []
    for b, n in enumerate(blocks):
        x = _dense_block(x, n, growth, prefix=f"enc{b + 1}", preactivation=preactivation)
        if b < len(blocks) - 1:
            skips.append(x)
            x = _transition(x, prefix=f"down{b + 1}", preactivation=preactivation)
    for b, skip in reversed(list(enumerate(skips))):
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"up{b + 1}")(x)
        x = layers.Concatenate(name=f"dec{b + 1}_cat")([x, skip])
        x = _conv_bn(x, max(16, skip.shape[-1] // 2), 3, name=f"dec{b + 1}_c1")
        x = _conv_bn(x, max(16, skip.shape[-1] // 2), 3, name=f"dec{b + 1}_c2")
    out = layers.Conv2D(1, 1, activation="sigmoid", name="mask")(x)
    return keras.Model(inp, out, name="densenet_unet")


ARCHITECTURES = {
    "seed_cnn": seed_cnn,
    "densenet25d": densenet_classifier,
    "densenet_unet": densenet_unet,
}
