#!/usr/bin/env bash
# Patient-level k-fold cross-validation of the training recipe (issue 3), one fold after another.
#   models/training/cv.sh [FOLDS=3] [MINUTES_PER_FOLD=10]
# Each fold: split.py --folds K --fold i, then train.py with its own checkpoints and log under
# models/training/cv/ (logs are committed; checkpoints are not). Summarise with cv_summary.py.
set -euo pipefail
cd "$(dirname "$0")"
K=${1:-3}; MIN=${2:-10}
PY=/usr/bin/python3
export LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
mkdir -p cv
for i in $(seq 0 $((K - 1))); do
  $PY split.py --folds "$K" --fold "$i" --out "cv/splits_fold$i.json"
  $PY train.py --splits "cv/splits_fold$i.json" --ckpt-dir "checkpoints/cv_fold$i" --log "cv/train_log_fold$i.csv" \
    --budget-minutes "$MIN" > "checkpoints/cv_fold$i.stdout" 2>&1
done
$PY cv_summary.py "$K"
