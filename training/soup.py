"""Average the weights of two checkpoints of one architecture ("model soup").

    python training/soup.py --a runs/stage-h-keras/densenet_unet.keras \
        --b runs/ft14/densenet_unet.keras --weight 0.5 --out runs/soup-0.5/densenet_unet.keras

Every weight becomes ``weight * b + (1 - weight) * a``. Meant for two models fine-tuned from
one start (here: stage L from stage H with batch normalisation frozen, so both share it); for
unrelated networks an average means nothing. The ``.json`` sidecar is ``--b``'s, with the
command, the training data and a validation note saying what was done: a soup has no
training-time validation split of its own (``training/trials/selection-m-rule.md`` scores it).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def soup(a, b, weight: float):
    """A copy of ``b`` holding ``weight * b + (1 - weight) * a``, weight by weight."""
    import keras

    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1], not {weight}")
    la, lb = a.layers, b.layers
    if [(x.name, type(x)) for x in la] != [(x.name, type(x)) for x in lb]:
        raise ValueError("the two models have different layers")
    out = keras.models.clone_model(b)
    for x, y, z in zip(la, lb, out.layers, strict=True):
        wa, wb = x.get_weights(), y.get_weights()
        if [w.shape for w in wa] != [w.shape for w in wb]:
            raise ValueError(f"layer {x.name}: weight shapes differ")
        z.set_weights([weight * q + (1.0 - weight) * p for p, q in zip(wa, wb, strict=True)])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--a", type=Path, required=True, help="checkpoint weighted 1 - weight")
    p.add_argument("--b", type=Path, required=True, help="checkpoint weighted weight (sidecar)")
    p.add_argument("--weight", type=float, required=True, help="the share of --b, 0 to 1")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)

    import keras

    import training.models  # noqa: F401 - registers the custom layers

    a = keras.models.load_model(args.a, compile=False)
    b = keras.models.load_model(args.b, compile=False)
    model = soup(a, b, args.weight)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save(args.out)
    info = json.loads(args.b.with_suffix(".json").read_text())
    what = (f"weights averaged: {args.weight:g} x {args.b} + {1 - args.weight:g} x {args.a}")
    info.update(
        command="python training/soup.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
        training_data=f"{info['training_data']}; then {what}",
        validation={"note": f"not scored on a training split: {what}"},
        train_seconds=0.0,
        epochs=0,
        soup={"a": str(args.a), "b": str(args.b), "weight_b": args.weight},
    )
    args.out.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"wrote {args.out} ({what})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
