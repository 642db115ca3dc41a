#!/bin/sh
# npm run quantize: rebuilds models/cxr-unet-r18-int8.onnx and its manifest from models/cxr-unet-r18.onnx and
# training images of ../shared/data (see models/quantize/README.md), evaluates it on external22 and checks
# the gate. About 10 minutes on 2 cores.
# Work files (folded graph, preprocessed inputs, statistics) go to out/quantize/ (git-ignored).
#   METHOD=mse|minmax|p99.99 WEIGHT_BITS=7|8 FP32=conv1,... sh models/quantize/quantize.sh
# A trial elsewhere, without touching models/: WORK=out/q2 MODEL=out/q2/int8.onnx EVAL=0 sh models/quantize/quantize.sh
set -eu
cd "$(dirname "$0")/../.."
PY=/usr/bin/python3
WORK=${WORK:-out/quantize}
MODEL=${MODEL:-models/cxr-unet-r18-int8.onnx}
MANIFEST=${MODEL%.onnx}.json
mkdir -p "$WORK"
npx tsx models/quantize/fold.ts --model models/cxr-unet-r18.onnx --out "$WORK/folded.onnx"
$PY models/quantize/qdq.py calib-graph --folded "$WORK/folded.onnx" --out "$WORK/calib.onnx"
npx tsx models/quantize/calibrate.ts inputs --work "$WORK" --calib 160 --select 40
npx tsx models/quantize/calibrate.ts stats --work "$WORK" --graph "$WORK/calib.onnx"
$PY models/quantize/qdq.py quantize --folded "$WORK/folded.onnx" --stats "$WORK/stats.json" \
  --method "${METHOD:-mse}" --weight-bits "${WEIGHT_BITS:-7}" --fp32 "${FP32:-}" --out "$MODEL"
$PY models/quantize/qdq.py manifest --manifest models/cxr-unet-r18.json --model "$MODEL" \
  --inputs "$WORK/inputs.json" --out "$MANIFEST"
# Fidelity against fp32 on training images that did not calibrate, then the interleaved speed comparison.
npx tsx models/quantize/compare.ts fidelity --work "$WORK" --set select models/cxr-unet-r18.onnx "$MODEL"
npx tsx models/quantize/compare.ts speed --work "$WORK" --reps "${REPS:-100}" models/cxr-unet-r18.onnx "$MODEL"
# The gate of issue 12: external22 through the production path, every metric inside the fp32 model's 95% CI
# (models/eval/external22.json). The reports go to models/eval/*-int8.* and the manifest records the summary.
if [ "${EVAL:-1}" = 0 ]; then
  echo "EVAL=0: not evaluated"
elif [ -d ../shared/data/external22 ]; then
  npm run eval -- --data ../shared/data/external22 --model "$MANIFEST" --out "$WORK/eval-int8"
  npm run eval -- --data ../shared/data/gb_covid_seg --split val --model "$MANIFEST" --out "$WORK/eval-int8"
  for d in external22 gb_covid_seg-val; do
    cp "$WORK/eval-int8/$d.json" "models/eval/$d-int8.json"; cp "$WORK/eval-int8/$d.md" "models/eval/$d-int8.md"
  done
  $PY models/quantize/qdq.py manifest --manifest models/cxr-unet-r18.json --model "$MODEL" \
    --inputs "$WORK/inputs.json" --eval models/eval/external22-int8.json --out "$MANIFEST"
  npx tsx models/quantize/compare.ts gate models/eval/external22.json models/eval/external22-int8.json
else
  echo "../shared/data/external22 missing: not evaluated, do not ship"
fi
