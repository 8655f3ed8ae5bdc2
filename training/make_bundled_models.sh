#!/usr/bin/env bash
# Rebuild the bundled models: phantoms -> training -> ONNX -> evaluation.
# Run from the repository root after `pip install -e ".[train]"`. DATA (default data/) receives
# the generated phantoms; runs/ the Keras checkpoints.
#
# How the bundled models were made (models/README.md has the figures):
#   stage 1, GPU: training/gpu_pretrain.sh on a lent H100 (16 phantom folders, seeds 3000-3015,
#                 Keras on PyTorch, a few minutes per model) -> runs/gpu/*.keras
#   stage 2, this script on 2 CPU cores: fine-tune those on fresh phantoms (about 20 minutes
#                 with the three trainings side by side), export, evaluate.
# Without runs/gpu/ the same commands train from scratch (set the EPOCHS_* higher: about an
# hour per model on 2 cores for 10 epochs).
set -euo pipefail
DATA=${DATA:-data}
EPOCHS_CLS=${EPOCHS_CLS:-8}
EPOCHS_SEG=${EPOCHS_SEG:-10}
EPOCHS_SEED=${EPOCHS_SEED:-5}
LR=${LR:-1e-3}
NOTE="ichinfer synthetic head-CT phantoms only (training/synth.py): pre-trained on folders g0-g15 (seeds 3000-3015, training/gpu_pretrain.sh), fine-tuned on ft-3100, ft-3101"
init() { [ -f "runs/gpu/$1.keras" ] && echo "--init runs/gpu/$1.keras" || true; }

# 1. phantoms: two fine-tuning folders, a validation and a test folder, each from its own
#    seed, so no phantom is shared between them
python -m training.synth --out "$DATA/ft-3100" --studies 70 --seed 3100 &
python -m training.synth --out "$DATA/ft-3101" --studies 70 --seed 3101 &
wait
python -m training.synth --out "$DATA/phantoms-val" --studies 30 --seed 98 &
python -m training.synth --out "$DATA/phantoms-test" --studies 40 --seed 99 &
wait

# 2. training (patient-level split of the training folders for per-epoch validation)
TRAIN=("$DATA/ft-3100" "$DATA/ft-3101")
# shellcheck disable=SC2046
python training/train_classifier.py --data "${TRAIN[@]}" --arch densenet25d $(init densenet25d) \
    --lr "$LR" --epochs "$EPOCHS_CLS" --image-size 192 --data-note "$NOTE" \
    --out runs/densenet25d.keras &
# shellcheck disable=SC2046
python training/train_segmenter.py --data "${TRAIN[@]}" $(init densenet_unet) --lr "$LR" \
    --epochs "$EPOCHS_SEG" --image-size 192 --crop 96 --batch-size 16 --data-note "$NOTE" \
    --out runs/densenet_unet.keras &
# shellcheck disable=SC2046
python training/train_classifier.py --data "${TRAIN[@]}" --arch seed_cnn $(init seed_cnn) \
    --lr "$LR" --epochs "$EPOCHS_SEED" --image-size 192 --data-note "$NOTE" \
    --out runs/seed_cnn.keras &
wait

# 3. export (parity check; int8 variants kept only if they hold accuracy on phantoms-val)
python export/to_onnx.py --data "$DATA/phantoms-val"

# 4. the model card's figures: held-out phantoms, plus the real-scan checks when available
python training/evaluate.py --data "$DATA/phantoms-test" --real ../shared/data \
    --out models/evaluation.json
python export/model_card.py
