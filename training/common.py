"""What the two training scripts share: arguments, data loading, the checkpoint sidecar."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from training.data import SeriesData, load_nifti_pairs, load_rsna, split_by_patient

log = logging.getLogger("training")


def base_parser(
    description: str, *, default_arch: str, default_size: int
) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--data",
        type=Path,
        nargs="+",
        required=True,
        help="one or more folders: RSNA layout, or ct_scans/ + masks/ NIfTI pairs",
    )
    p.add_argument("--arch", default=default_arch)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--image-size", type=int, default=default_size)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--slab-mm", type=float, default=5.0, help="thin series are averaged to this")
    p.add_argument("--context", type=int, default=1, help="neighbouring slabs on each side")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--max-series", type=int, default=None, help="use at most this many series")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="checkpoint path (.keras)")
    p.add_argument(
        "--distribute",
        choices=["none", "mirrored"],
        default="none",
        help="mirrored: tf.distribute.MirroredStrategy over this host's GPUs (TensorFlow backend)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes that read the data folders and cut training batches (default 1)",
    )
    p.add_argument(
        "--kernel-augment",
        action="store_true",
        help="also vary reconstruction-kernel sharpness (blur / unsharp mask) in augmentation",
    )
    p.add_argument(
        "--hu-shift",
        type=float,
        default=4.0,
        help="augmentation: shift each training input by up to this many HU (scanner "
        "calibration; default 4)",
    )
    p.add_argument(
        "--init",
        type=Path,
        default=None,
        help="start from this checkpoint's weights (same architecture), e.g. to fine-tune",
    )
    p.add_argument(
        "--freeze-bn",
        action="store_true",
        help="keep every batch normalisation in inference mode, its scale and shift fixed: for "
        "fine-tuning a checkpoint of export/from_onnx.py, whose batch normalisations hold the "
        "folded scale and shift of the ONNX file, not statistics a batch could re-estimate",
    )
    p.add_argument(
        "--time-budget",
        type=float,
        default=None,
        help="train for this many seconds: the learning rate decays with the clock and training "
        "stops after the epoch that passes it (best epoch kept)",
    )
    p.add_argument(
        "--data-note",
        default=None,
        help="what trained the model, for the model card (default: derived from --data)",
    )
    return p


def strategy_scope(args: argparse.Namespace):
    """The scope to build and compile the model in: MirroredStrategy's for ``--distribute
    mirrored`` (one replica per visible GPU, or per logical device), else a no-op.

    Raises SystemExit when the Keras backend is not TensorFlow (tf.distribute needs it).
    """
    import contextlib

    strategy = _strategy(args)
    return contextlib.nullcontext() if strategy is None else strategy.scope()


def replicas(args: argparse.Namespace) -> int:
    """How many replicas each global batch is split across (1 without ``--distribute``)."""
    strategy = _strategy(args)
    return 1 if strategy is None else strategy.num_replicas_in_sync


def _strategy(args: argparse.Namespace):
    """The run's tf.distribute strategy (made once, kept on ``args``), or None."""
    if args.distribute == "none":
        return None
    if getattr(args, "_strategy", None) is not None:
        return args._strategy
    import keras

    if keras.backend.backend() != "tensorflow":
        raise SystemExit(
            f"--distribute {args.distribute} needs the TensorFlow Keras backend, not "
            f"{keras.backend.backend()!r} (set KERAS_BACKEND=tensorflow)"
        )
    import tensorflow as tf

    strategy = tf.distribute.MirroredStrategy()
    log.info("MirroredStrategy: %d replicas", strategy.num_replicas_in_sync)
    args._strategy = strategy
    return strategy


def batch_options(args: argparse.Namespace) -> dict:
    """Training-batch options: ``--kernel-augment``, ``--hu-shift``, and ``--workers``
    processes that cut batches (numpy work, off the trainer)."""
    opts = {"kernel_augment": args.kernel_augment, "hu_shift": args.hu_shift}
    if args.workers > 1:
        opts.update(workers=args.workers, use_multiprocessing=True, max_queue_size=16)
    return opts


def init_weights(args: argparse.Namespace, model) -> None:
    """``--init``: copy a checkpoint's weights into ``model`` (any input size: the layers of a
    fully convolutional network do not depend on it)."""
    if args.init is None:
        return
    import keras

    source = keras.models.load_model(args.init, compile=False)
    model.set_weights(source.get_weights())
    log.info("weights from %s", args.init)


def freeze_batch_norm(args: argparse.Namespace, model) -> int:
    """``--freeze-bn``: every BatchNormalization of ``model`` untrainable, which in Keras 3 also
    runs it in inference mode (moving statistics, not the batch's). Returns how many."""
    if not getattr(args, "freeze_bn", False):
        return 0
    import keras

    layers, stack = [], list(model.layers)
    while stack:  # nested models included
        layer = stack.pop()
        stack.extend(getattr(layer, "layers", []))
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
            layers.append(layer)
    log.info("%d batch normalisations frozen (--freeze-bn)", len(layers))
    return len(layers)


def learning_rate(args: argparse.Namespace, steps: int):
    """Cosine decay over ``steps``; with ``--time-budget`` a constant that :func:`callbacks`
    decays by the clock instead (the epochs that fit are not known in advance)."""
    import keras

    if args.time_budget is not None:
        return args.lr
    return keras.optimizers.schedules.CosineDecay(args.lr, max(1, steps), alpha=0.05)


def callbacks(args: argparse.Namespace) -> list:
    """Training callbacks the scripts share: ``--time-budget`` (cosine decay of the learning
    rate over the budget's seconds, and a stop after the epoch that spends it)."""
    import math

    import keras

    if args.time_budget is None:
        return []
    budget, base = args.time_budget, args.lr

    class TimeBudget(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.t0 = time.time()

        def on_train_batch_begin(self, batch, logs=None):
            if batch % 10 == 0:
                frac = min(1.0, (time.time() - self.t0) / budget) if budget > 0 else 1.0
                lr = base * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * frac)))
                self.model.optimizer.learning_rate = lr

        def on_epoch_end(self, epoch, logs=None):
            if time.time() - self.t0 > budget:
                log.info("time budget of %.0f s spent after epoch %d: stopping", budget, epoch + 1)
                self.model.stop_training = True

    return [TimeBudget()]


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)


def _warm_cache(data: Path, image_size: int, with_masks: bool, max_series: int | None) -> None:
    """Fill one folder's grid cache in a worker process (the stacks are not sent back)."""
    load_rsna(data, image_size=image_size, with_masks=with_masks, max_series=max_series)


def load_series(args: argparse.Namespace, *, with_masks: bool) -> list[SeriesData]:
    t0 = time.time()
    series: list[SeriesData] = []
    rsna = [d for d in args.data if not (d / "ct_scans").is_dir()]
    if args.workers > 1 and len(rsna) > 1:
        # each folder's grid cache is built in its own process; the loop below then reads caches
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(args.workers, len(rsna))) as pool:
            jobs = [
                pool.submit(_warm_cache, d, args.image_size, with_masks, args.max_series)
                for d in rsna
            ]
            for job in jobs:
                job.result()
    for data in args.data:
        if (data / "ct_scans").is_dir():
            series += load_nifti_pairs(data, image_size=args.image_size)
        else:
            series += load_rsna(
                data, image_size=args.image_size, with_masks=with_masks, max_series=args.max_series
            )
    log.info(
        "loaded %d series, %d slices in %.0f s",
        len(series),
        sum(len(s.ids) for s in series),
        time.time() - t0,
    )
    return series


def split(args: argparse.Namespace, series: list[SeriesData]):
    train, val = split_by_patient(series, args.val_fraction, seed=args.seed)
    if not train or not val:
        raise SystemExit(f"{args.data}: too few patients for a train/validation split")
    log.info("patients split: %d train series, %d validation series", len(train), len(val))
    return train, val


def data_note(args: argparse.Namespace) -> str:
    if args.data_note:
        return args.data_note
    names = ", ".join(Path(d).name for d in args.data)
    if all((Path(d) / "studies.csv").exists() for d in args.data):
        return f"ichinfer synthetic head-CT phantoms only (training/synth.py; folders {names})"
    return f"data folders {names}"


def write_sidecar(out: Path, info: dict) -> Path:
    path = Path(out).with_suffix(".json")
    path.write_text(json.dumps(info, indent=2, default=_jsonable))
    return path


def _jsonable(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(type(obj))
