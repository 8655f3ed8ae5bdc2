"""Train the bleed segmenter (DenseNet-encoder U-Net + the 50–90 HU dense-area prior).

    python training/train_segmenter.py --data DATA --epochs 8 --image-size 192 --crop 96 \
        --out runs/densenet_unet.keras

Data: the RSNA layout with ``masks/ID_<id>.png`` (the phantom generator writes them) or
``ct_scans/`` + ``masks/`` NIfTI pairs. Trains on random crops (biased to bleeds) and validates on
whole slices: Dice (+ cross-entropy) loss; logs the validation Dice every epoch next to the Dice
of plain 50–90 HU masking inside the skull, keeps the best epoch, and writes ``<out>.json``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

from ichinfer.labels import LABELS  # noqa: E402
from ichinfer.metrics import dice  # noqa: E402
from ichinfer.preprocess import DEFAULT_WINDOWS, DENSE_RANGE_HU  # noqa: E402
from training import common  # noqa: E402
from training.datasets import SegmenterBatches  # noqa: E402
from training.models import ARCHITECTURES  # noqa: E402

log = common.log


def tversky_bce(fn_weight: float = 0.5):
    """Binary cross-entropy plus a soft Tversky loss per image, 1 - (TP + ½) / (TP + (1 - w) FP
    + w FN + ½) with ``w = fn_weight``: at 0.5 it is the soft Dice loss (``dice_bce``); above
    it, missed bleed pixels cost more than false ones, against under-segmentation."""
    if not 0.0 < fn_weight < 1.0:
        raise ValueError(f"fn_weight must be in (0, 1), not {fn_weight}")

    def loss(y_true, y_pred):
        p = ops.clip(y_pred, 1e-6, 1 - 1e-6)
        bce = -ops.mean(y_true * ops.log(p) + (1 - y_true) * ops.log(1 - p), axis=(1, 2, 3))
        tp = ops.sum(y_true * p, axis=(1, 2, 3))
        fp = ops.sum(p, axis=(1, 2, 3)) - tp
        fn = ops.sum(y_true, axis=(1, 2, 3)) - tp
        index = (tp + 0.5) / (tp + (1.0 - fn_weight) * fp + fn_weight * fn + 0.5)
        return bce + 1.0 - index

    return loss


dice_bce = tversky_bce(0.5)  # soft Dice loss per image plus binary cross-entropy


def evaluate(model, batches: SegmenterBatches, threshold: float = 0.5) -> dict:
    """Dice on whole validation slices: pooled over all pixels and mean over bleeding slices."""
    inter = total = prior_inter = prior_total = 0.0
    per_slice, per_slice_prior = [], []
    for b in range(len(batches)):
        x, m = batches[b]
        pred = model.predict_on_batch(x) >= threshold
        truth = m[..., 0] > 0.5
        prior = x[..., -1] > 0.5
        for k in range(len(x)):
            t, q, r = truth[k], pred[k, ..., 0], prior[k]
            inter += np.logical_and(t, q).sum()
            total += t.sum() + q.sum()
            prior_inter += np.logical_and(t, r).sum()
            prior_total += t.sum() + r.sum()
            if t.any():
                per_slice.append(dice(t, q))
                per_slice_prior.append(dice(t, r))
    return {
        "dice_pooled": float(2 * inter / max(total, 1)),
        "dice_mean_bleeding_slices": float(np.mean(per_slice)) if per_slice else float("nan"),
        "prior_dice_pooled": float(2 * prior_inter / max(prior_total, 1)),
        "prior_dice_mean_bleeding_slices": float(np.mean(per_slice_prior))
        if per_slice_prior
        else float("nan"),
        "n_bleeding_slices": len(per_slice),
    }


class ValidationLog(keras.callbacks.Callback):
    def __init__(self, val: SegmenterBatches, out: Path):
        super().__init__()
        self.val, self.out, self.best, self.history = val, out, -1.0, []

    def on_epoch_end(self, epoch, logs=None):
        f = evaluate(self.model, self.val)
        f["epoch"], f["loss"] = epoch + 1, float((logs or {}).get("loss", np.nan))
        self.history.append(f)
        log.info(
            "epoch %d loss %.4f val Dice pooled %.3f mean %.3f (plain 50-90 HU mask: %.3f / %.3f)",
            epoch + 1,
            f["loss"],
            f["dice_pooled"],
            f["dice_mean_bleeding_slices"],
            f["prior_dice_pooled"],
            f["prior_dice_mean_bleeding_slices"],
        )
        if f["dice_pooled"] > self.best:
            self.best = f["dice_pooled"]
            self.model.save(self.out)


def main(argv: list[str] | None = None) -> int:
    p = common.base_parser(__doc__.splitlines()[0], default_arch="densenet_unet", default_size=192)
    p.add_argument("--crop", type=int, default=96, help="training crop size (0: whole slices)")
    p.add_argument(
        "--monitor-slices",
        type=int,
        default=480,
        help="validation slices scored every epoch (all of them at the end)",
    )
    p.add_argument(
        "--positive-fraction",
        type=float,
        default=0.7,
        help="share of training slices with a bleed (the rest: bleed-free slices, mimics "
        "included; default 0.7)",
    )
    p.add_argument(
        "--fn-weight",
        type=float,
        default=0.5,
        help="Tversky weight of missed bleed pixels against false ones (0.5: the Dice loss)",
    )
    p.add_argument(
        "--oversample",
        nargs="+",
        default=[],
        metavar="LABEL=K",
        help="repeat the training slices labelled positive for LABEL K times in each epoch "
        "(e.g. subarachnoid=3; slice labels from stage_2_train.csv, so the RSNA layout only)",
    )
    args = p.parse_args(argv)
    oversample = {}
    for item in args.oversample:
        name, _, k = item.partition("=")
        if name not in LABELS[1:] or not k.isdigit() or int(k) < 1:
            p.error(f"--oversample takes LABEL=K with a subtype label and K >= 1, not {item!r}")
        oversample[name] = int(k)
    if not 0.0 < args.fn_weight < 1.0:
        p.error(f"--fn-weight must be in (0, 1), not {args.fn_weight}")
    if not 0.0 < args.positive_fraction <= 1.0:
        p.error(f"--positive-fraction must be in (0, 1], not {args.positive_fraction}")
    common.setup_logging()
    keras.utils.set_random_seed(args.seed)
    series = [s for s in common.load_series(args, with_masks=True) if s.masks is not None]
    train, val = common.split(args, series)
    kw = dict(slab_mm=args.slab_mm, context=args.context)
    # distributed: batches cut to a multiple of the replica count (unequal ones fail in AddN)
    train_b = SegmenterBatches(
        train,
        train=True,
        batch_size=args.batch_size,
        crop=args.crop or None,
        positive_fraction=args.positive_fraction,
        oversample=oversample,
        seed=args.seed,
        batch_multiple=common.replicas(args),
        **kw,
        **common.batch_options(args),
    )
    val_b = SegmenterBatches(val, train=False, batch_size=8, **kw)
    monitor = SegmenterBatches(val, train=False, batch_size=8, **kw)
    if len(monitor.samples) > args.monitor_slices:  # a fixed, seeded subset, half with bleed
        rng = np.random.default_rng(args.seed)
        has = np.array([val[si].masks[i].any() for si, i in monitor.samples])
        pos, neg = np.flatnonzero(has), np.flatnonzero(~has)
        k = args.monitor_slices // 2
        keep = np.concatenate([rng.permutation(pos)[:k], rng.permutation(neg)[:k]])
        monitor.samples = monitor.samples[np.sort(keep)]
        monitor.order = np.arange(len(monitor.samples))
    log.info("%d training slices, %d validation slices", len(train_b.samples), len(val_b.samples))
    if not len(train_b):
        raise SystemExit(
            f"{len(train_b.samples)} training slices: fewer than the "
            f"{common.replicas(args)} replicas"
        )

    with common.strategy_scope(args):  # --distribute mirrored: variables on every replica
        model = ARCHITECTURES[args.arch](args.image_size, context=args.context)
        # fully convolutional: train on crops with a model of the crop's size, same weights
        crop = args.crop or args.image_size
        train_model = ARCHITECTURES[args.arch](crop, context=args.context)
        common.init_weights(args, train_model)
        common.freeze_batch_norm(args, train_model)
        lr = common.learning_rate(args, len(train_b) * args.epochs)
        train_model.compile(optimizer=keras.optimizers.Adam(lr), loss=tversky_bce(args.fn_weight))

    class Sync(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            model.set_weights(train_model.get_weights())
            cb.set_model(model)
            cb.on_epoch_end(epoch, logs)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    cb = ValidationLog(monitor, args.out)
    t0 = time.time()
    train_model.fit(
        train_b, epochs=args.epochs, callbacks=[Sync(), *common.callbacks(args)], verbose=0
    )
    train_s = time.time() - t0

    best = keras.models.load_model(args.out, compile=False)
    figures = evaluate(best, val_b)
    common.write_sidecar(
        args.out,
        {
            "task": "segment",
            "arch": args.arch,
            "image_size": args.image_size,
            "context": args.context,
            "slab_mm": args.slab_mm,
            "windows": DEFAULT_WINDOWS,
            "prior": {"dense_range_hu": DENSE_RANGE_HU, "inside_skull": True},
            "params": best.count_params(),
            "epochs": args.epochs,
            "crop": args.crop,
            "oversample": oversample,
            "train_seconds": round(train_s, 1),
            "n_train_slices": len(train_b.samples),
            "n_val_slices": len(val_b.samples),
            "training_data": common.data_note(args),
            "command": "python training/train_segmenter.py " + " ".join(argv or sys.argv[1:]),
            "validation": figures,
            "thresholds": {"mask": 0.5},
            "history": cb.history,
        },
    )
    log.info("best val Dice %.3f; saved %s (+ .json)", figures["dice_pooled"], args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
