/**
 * Step 1 of `npm run quantize`: save onnxruntime's 'basic'-optimised graph of the fp32 model (constant folding,
 * including the fp16 -> fp32 Casts of the weights, and BatchNormalization folded into the Convs). 'basic' is
 * hardware-independent; the 'all' level would write NCHWc layouts for this CPU, so it is never used here.
 *   npx tsx models/quantize/fold.ts [--model models/cxr-unet-r18.onnx] [--out out/quantize/folded.onnx]
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { model: { type: 'string' }, out: { type: 'string' } } });
  const model = resolve(values.model ?? 'models/cxr-unet-r18.onnx');
  const out = resolve(values.out ?? 'out/quantize/folded.onnx');
  mkdirSync(dirname(out), { recursive: true });
  const s = await ort.InferenceSession.create(model, {
    graphOptimizationLevel: 'basic', optimizedModelFilePath: out, intraOpNumThreads: 1, interOpNumThreads: 1,
  });
  await s.release();
  console.log(`folded: ${out}`);
}

main().catch((e: Error) => { console.error(e); process.exitCode = 1; });
