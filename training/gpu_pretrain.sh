#!/usr/bin/env bash
# Stage 1 of the bundled models (see models/README.md): pre-training on a GPU machine.
#
# Phantoms are generated on all cores (NGEN folders, seeds 3000.., STUDIES each), then the
# three models train at once on the GPU with Keras on its PyTorch backend, each for a fixed
# wall-clock budget (--time-budget: the learning rate decays with the clock). Checkpoints and
# logs go to $OUT. Needs keras, torch, numpy, pydicom and opencv-python-headless importable
# (SITE_TAR: an optional tarball of them, unpacked first, for a machine without a network).
#
# As run for the bundled models (2026-11-27, one H100 + 16 cores, `STUDIES=26 BUDGET=320`):
# generation took ~350 s of the 590 s the machine was lent for, so the two DenseNets trained
# ~200 s before the run was stopped (their best checkpoints so far were kept, without
# sidecars); seed_cnn was trained afterwards on the same folders for 110 s. Stage 2
# (training/make_bundled_models.sh) fine-tunes all three on 2 CPU cores.
set -uo pipefail
PY=${PY:-python}
NGEN=${NGEN:-16}          # generator processes = data folders
STUDIES=${STUDIES:-26}    # studies per folder
SIZE=${SIZE:-512}
IMG=${IMG:-192}
BUDGET=${BUDGET:-320}     # training seconds per model
WORKERS=${WORKERS:-5}
DATA=${DATA:-/tmp/ichinfer-data}
OUT=${OUT:-runs/gpu}
T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
SITE=/tmp/ichinfer-site
mkdir -p "$SITE" "$DATA" "$OUT"
if [ -n "${SITE_TAR:-}" ]; then
  $PY -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" "$SITE_TAR" "$SITE"
fi
export PYTHONPATH="$SITE:$PWD" KERAS_BACKEND=torch
$PY -c "import keras, cv2, pydicom, torch, numpy; print('keras', keras.__version__, keras.backend.backend(), 'torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'cv2', cv2.__version__, 'numpy', numpy.__version__)" || exit 3
nproc; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
stamp "generating $NGEN x $STUDIES studies"
for i in $(seq 0 $((NGEN - 1))); do
  $PY -m training.synth --out "$DATA/g$i" --studies "$STUDIES" --seed $((3000 + i)) --size "$SIZE" > "$OUT/gen$i.log" 2>&1 &
done
wait
cat "$OUT"/gen*.log | tail -n "$NGEN"
stamp "generated"
$PY - "$DATA" "$IMG" <<'PYEOF'
import glob, sys
from concurrent.futures import ProcessPoolExecutor
from training.data import load_rsna
def warm(args):
    d, m = args
    load_rsna(d, image_size=int(sys.argv[2]), with_masks=m)
    return d
jobs = [(d, m) for d in sorted(glob.glob(sys.argv[1] + "/g*")) for m in (False, True)]
with ProcessPoolExecutor(16) as pool:
    list(pool.map(warm, jobs))
PYEOF
stamp "caches built"
G=("$DATA"/g*)
COMMON=(--image-size "$IMG" --workers "$WORKERS" --time-budget "$BUDGET" --epochs 1000)
$PY training/train_classifier.py --data "${G[@]}" --arch densenet25d "${COMMON[@]}" \
    --out "$OUT/densenet25d.keras" > "$OUT/train_densenet25d.log" 2>&1 &
$PY training/train_segmenter.py --data "${G[@]}" --crop "${CROP:-96}" --batch-size 16 "${COMMON[@]}" \
    --out "$OUT/densenet_unet.keras" > "$OUT/train_densenet_unet.log" 2>&1 &
$PY training/train_classifier.py --data "${G[@]}" --arch seed_cnn "${COMMON[@]}" \
    --out "$OUT/seed_cnn.keras" > "$OUT/train_seed_cnn.log" 2>&1 &
wait
stamp "trained"
tail -n 4 "$OUT"/train_*.log
ls -la "$OUT"
