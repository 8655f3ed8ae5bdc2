"""Train a slice classifier (six ICH labels) on the RSNA layout.

    python training/train_classifier.py --data DATA --arch densenet25d --epochs 12 \
        --image-size 192 --out runs/densenet25d.keras

``--arch seed_cnn`` trains the original four-conv baseline (one slab, no neighbours).
Logs per-label AUC and the RSNA weighted log loss on the validation patients every epoch, keeps
the best epoch, and writes ``<out>.json`` beside the checkpoint (settings, figures, thresholds).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

from ichinfer.labels import LABEL_WEIGHTS, LABELS  # noqa: E402
from ichinfer.metrics import roc_auc, weighted_log_loss, youden_threshold  # noqa: E402
from ichinfer.preprocess import DEFAULT_WINDOWS  # noqa: E402
from training import common  # noqa: E402
from training.datasets import ClassifierBatches  # noqa: E402
from training.models import ARCHITECTURES  # noqa: E402

log = common.log


def weighted_bce(y_true, y_pred):
    """Binary cross-entropy with the RSNA label weights (``any`` twice)."""
    w = ops.convert_to_tensor(np.asarray(LABEL_WEIGHTS, dtype="float32"))
    p = ops.clip(y_pred, 1e-7, 1 - 1e-7)
    per = -(y_true * ops.log(p) + (1 - y_true) * ops.log(1 - p))
    return ops.sum(per * w, axis=-1) / ops.sum(w)


def evaluate(model, batches: ClassifierBatches) -> tuple[dict, np.ndarray, np.ndarray]:
    prob = model.predict(batches, verbose=0)
    y = batches.labels()
    aucs = {name: roc_auc(y[:, k], prob[:, k]) for k, name in enumerate(LABELS)}
    return {"auc": aucs, "weighted_log_loss": weighted_log_loss(y, prob)}, y, prob


class ValidationLog(keras.callbacks.Callback):
    def __init__(self, val: ClassifierBatches, out: Path):
        super().__init__()
        self.val, self.out, self.best, self.history = val, out, np.inf, []

    def on_epoch_end(self, epoch, logs=None):
        figures, _, _ = evaluate(self.model, self.val)
        figures["epoch"], figures["loss"] = epoch + 1, float((logs or {}).get("loss", np.nan))
        self.history.append(figures)
        aucs = " ".join(f"{k[:5]}={v:.3f}" for k, v in figures["auc"].items())
        log.info(
            "epoch %d loss %.4f val wll %.4f AUC %s",
            epoch + 1,
            figures["loss"],
            figures["weighted_log_loss"],
            aucs,
        )
        if figures["weighted_log_loss"] < self.best:
            self.best = figures["weighted_log_loss"]
            self.model.save(self.out)


def main(argv: list[str] | None = None) -> int:
    p = common.base_parser(__doc__.splitlines()[0], default_arch="densenet25d", default_size=192)
    args = p.parse_args(argv)
    common.setup_logging()
    keras.utils.set_random_seed(args.seed)
    context = 0 if args.arch == "seed_cnn" else args.context
    series = common.load_series(args, with_masks=False)
    train, val = common.split(args, series)
    kw = dict(batch_size=args.batch_size, slab_mm=args.slab_mm, context=context)
    # distributed: batches cut to a multiple of the replica count (unequal ones fail in AddN)
    train_b = ClassifierBatches(
        train,
        train=True,
        seed=args.seed,
        batch_multiple=common.replicas(args),
        **kw,
        **common.batch_options(args),
    )
    val_b = ClassifierBatches(val, train=False, **kw)
    log.info("%d training slices, %d validation slices", len(train_b.samples), len(val_b.samples))
    if not len(train_b):
        raise SystemExit(
            f"{len(train_b.samples)} training slices: fewer than the "
            f"{common.replicas(args)} replicas"
        )

    build = ARCHITECTURES[args.arch]
    with common.strategy_scope(args):  # --distribute mirrored: variables on every replica
        model = (
            build(args.image_size)
            if args.arch == "seed_cnn"
            else build(args.image_size, context=context)
        )
        common.init_weights(args, model)
        common.freeze_batch_norm(args, model)
        lr = common.learning_rate(args, len(train_b) * args.epochs)
        model.compile(optimizer=keras.optimizers.Adam(lr), loss=weighted_bce)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cb = ValidationLog(val_b, args.out)
    t0 = time.time()
    model.fit(train_b, epochs=args.epochs, callbacks=[cb, *common.callbacks(args)], verbose=0)
    train_s = time.time() - t0

    best = keras.models.load_model(args.out, compile=False)
    figures, y, prob = evaluate(best, val_b)
    thresholds = {name: youden_threshold(y[:, k], prob[:, k]) for k, name in enumerate(LABELS)}
    common.write_sidecar(
        args.out,
        {
            "task": "classify",
            "arch": args.arch,
            "image_size": args.image_size,
            "context": context,
            "slab_mm": args.slab_mm,
            "windows": DEFAULT_WINDOWS,
            "params": best.count_params(),
            "epochs": args.epochs,
            "train_seconds": round(train_s, 1),
            "n_train_slices": len(train_b.samples),
            "n_val_slices": len(val_b.samples),
            "training_data": common.data_note(args),
            "command": "python training/train_classifier.py " + " ".join(argv or sys.argv[1:]),
            "validation": figures,
            "thresholds": thresholds,
            "history": cb.history,
        },
    )
    log.info("best val wll %.4f; saved %s (+ .json)", figures["weighted_log_loss"], args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
