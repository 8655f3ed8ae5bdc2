#!/usr/bin/env bash
# Rebuild the bundled models from nothing: phantoms -> training -> ONNX -> evaluation.
# Run from the repository root of a git clone, after `pip install -e ".[train]"`.
# About three hours on 2 CPU cores. DATA (default data/) receives the phantoms, runs/
# the Keras checkpoints.
#
# The models grew with the phantom generator, in three stages, each on phantoms from the
# generator as it was then (`gen` runs an older generator from a temporary git worktree):
#   A. commit c3d99a0's generator: the classifiers trained from scratch;
#   B. commit 29eaf96's generator (young brains, cupping, Gaussian PSF, five-plane partial
#      volume): the classifier fine-tuned with --hu-shift 15, the segmenter trained from scratch;
#   C. the current generator (bone bloom, stronger cupping): both fine-tuned again.
# Validation (default thresholds, the int8 check) and test phantoms come from the current one.
# Stage A ran with commit c3d99a0's training code, B and C with this commit's: a rerun follows
# the same recipe, not the same bits (models/README.md records what was run and when).
set -euo pipefail
DATA=${DATA:-data}
ROOT=$(pwd)

gen() {  # gen COMMIT|current OUT STUDIES SEED
    if [ "$1" = current ]; then
        python -m training.synth --out "$DATA/$2" --studies "$3" --seed "$4"
        return
    fi
    local wt
    wt=$(mktemp -d)
    git worktree add --detach "$wt" "$1" >/dev/null
    (cd "$wt" && python -m training.synth --out "$ROOT/$DATA/$2" --studies "$3" --seed "$4")
    git worktree remove --force "$wt"
}

# phantoms: every folder from its own seed, so no phantom is shared between them
gen c3d99a0 phantoms-a 150 2026 & gen c3d99a0 phantoms-b 150 2027 & wait
gen 29eaf96 ft-3100 70 3100 & gen 29eaf96 ft-3101 70 3101 & wait
gen current ft-3200 70 3200 & gen current ft-3201 70 3201 & wait
gen current phantoms-val 30 98 & gen current phantoms-test 40 99 & wait

AB=("$DATA/phantoms-a" "$DATA/phantoms-b")
B=("$DATA/ft-3100" "$DATA/ft-3101")
BC=("${B[@]}" "$DATA/ft-3200" "$DATA/ft-3201")
mkdir -p runs/ft3 runs/seg3 runs/ft4

# A. classifiers from scratch (patient-level split of the folders for per-epoch validation)
python training/train_classifier.py --data "${AB[@]}" --arch densenet25d --epochs 10 \
    --image-size 192 --out runs/densenet25d.keras
python training/train_classifier.py --data "${AB[@]}" --arch seed_cnn --epochs 8 \
    --image-size 192 --out runs/seed_cnn.keras

# B. classifier fine-tuned with a wider HU offset; segmenter (Conv-BN-ReLU encoder) from scratch
python training/train_classifier.py --data "${AB[@]}" "${B[@]}" --arch densenet25d \
    --init runs/densenet25d.keras --lr 1e-3 --epochs 5 --image-size 192 --hu-shift 15 \
    --workers 2 --out runs/ft3/densenet25d.keras
python training/train_segmenter.py --data "${AB[@]}" "${B[@]}" --epochs 10 --image-size 192 \
    --crop 96 --batch-size 16 --workers 2 --out runs/seg3/densenet_unet.keras

# C. both fine-tuned on stage-B and current-generator phantoms (run side by side)
python training/train_classifier.py --data "${BC[@]}" --arch densenet25d \
    --init runs/ft3/densenet25d.keras --lr 1e-3 --epochs 5 --image-size 192 --hu-shift 15 \
    --out runs/ft4/densenet25d.keras &
python training/train_segmenter.py --data "${BC[@]}" --init runs/seg3/densenet_unet.keras \
    --lr 1e-3 --epochs 6 --image-size 192 --crop 96 --batch-size 16 \
    --out runs/ft4/densenet_unet.keras
wait

# export (parity check; int8 variants kept only if they hold accuracy on phantoms-val)
python export/to_onnx.py --classifier runs/ft4/densenet25d.keras \
    --segmenter runs/ft4/densenet_unet.keras --seed-cnn runs/seed_cnn.keras \
    --data "$DATA/phantoms-val"
# the checkpoints behind the bundled files, for the benchmarks' Keras side (benchmarks/README.md)
mkdir -p runs/bundled
ln -sfn ../ft4/densenet25d.keras runs/bundled/densenet25d.keras
ln -sfn ../ft4/densenet_unet.keras runs/bundled/densenet_unet.keras
ln -sfn ../seed_cnn.keras runs/bundled/seed_cnn.keras

# the model card's figures: held-out phantoms, plus the real-scan checks when available
python training/evaluate.py --data "$DATA/phantoms-test" --real ../shared/data \
    --out models/evaluation.json
python export/model_card.py
