/**
 * One cold start, for compare.ts cold: a fresh process loads a model manifest with the production loader
 * (layers/onnx/session.ts: sha256 check, session creation, the guard) and runs one image through the model and
 * the guard. Prints JSON: ms from process start to the loader's start, load ms, first run ms, and the total.
 *   node --import tsx models/quantize/cold.ts models/cxr-unet-r18-int8.json
 */
import { performance } from 'node:perf_hooks';
import { loadModel } from '../../layers/onnx/session';

async function main(): Promise<void> {
  const t0 = performance.now();
  const model = await loadModel(process.argv[2], { threads: 2 });
  const t1 = performance.now();
  const S = model.manifest.input.size;
  const x = new Float32Array(S * S).fill(0.1);
  if (model.guard) await model.guard.run(x, 1);
  await model.run(x, 1);
  const t2 = performance.now();
  console.log(JSON.stringify({ startMs: t0, loadMs: t1 - t0, firstRunMs: t2 - t1, totalMs: t2 }));
  await model.release();
}

main().catch((e: Error) => { console.error(e); process.exitCode = 1; });
