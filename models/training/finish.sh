#!/bin/sh
# After training: export the model, evaluate it, refit the radiologist scales and the severity config, measure
# refusals on every real film. Run from the repo root: sh models/training/finish.sh [checkpoint]
set -e
CK=${1:-models/training/checkpoints/v2/last.pt}
export LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
/usr/bin/python3 models/training/export.py --ckpt "$CK"
unset LD_PRELOAD
npx tsx src/eval/evaluate.ts --data ../shared/data/external22 --out models/eval
npx tsx src/eval/evaluate.ts --data ../shared/data/gb_covid_seg --split val --out models/eval
npx tsx src/eval/evaluate.ts --data ../shared/data/covidqu_infection --split val --out models/eval
npx tsx models/severity/fit-scales.ts
npx tsx models/severity/analyze.ts
npx tsx src/eval/refusals.ts
