/**
 * Makes docs/overlay-example.png for the README: a synthetic chest phantom (no patient image may be
 * redistributed here) with a hazy patch in the patient's right lower zone, run through the real
 * pipeline stages and the committed model.   npx tsx docs/make-overlay-example.ts
 * Since model 2.0.0 the non-chest guard refuses the phantom (it is a drawing, not a radiograph) and the script
 * stops with that refusal; the committed picture was made with model 1.0.0 (README says so).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { loadModel } from '../layers/onnx/session';
import { loadSeverityConfig } from '../src/core';
import { DEFAULT_MODEL_MANIFEST } from '../src/local/pipeline';
import { MemoryObjects, MemoryResults, MemorySink, silentLogger } from '../src/local/memory';
import { runScoreStage } from '../src/pipeline/score-stage';
import { runSegmentStage } from '../src/pipeline/segment-stage';

function phantom(W: number, H: number): Buffer {
  const px = Buffer.alloc(W * H);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    const u = x / W, v = y / H;
    let g = 0.08;
    const body = ((u - 0.5) / 0.47) ** 2 + ((v - 0.6) / 0.55) ** 2;
    if (body < 1) {
      g = 0.78 - 0.12 * body;
      const lung = (cx: number) => ((u - cx) / 0.17) ** 2 + ((v - 0.47) / 0.33) ** 2 * (v < 0.47 ? 1.6 : 1);
      const l = Math.min(lung(0.31), lung(0.69));
      if (l < 1) g = 0.2 + 0.22 * l ** 2 + 0.06 * Math.max(0, Math.sin(v * 55 + Math.abs(u - 0.5) * 8));
      const haze = ((u - 0.3) / 0.1) ** 2 + ((v - 0.62) / 0.1) ** 2;
      if (l < 1 && haze < 1) g += 0.28 * (1 - haze);
      if (Math.abs(u - 0.5) < 0.05 + 0.06 * Math.max(0, v - 0.55)) g = Math.max(g, 0.88);
    }
    px[y * W + x] = Math.round(Math.min(1, Math.max(0, g)) * 255);
  }
  return px;
}

async function main() {
  const W = 768, H = 768;
  const png = await sharp(phantom(W, H), { raw: { width: W, height: H, channels: 1 } }).blur(3).png().toBuffer();
  const model = await loadModel(DEFAULT_MODEL_MANIFEST);
  const objects = new MemoryObjects();
  await objects.put('docs', 'phantom.png', png, 'image/png');
  const msg = await runSegmentStage({ bucket: 'docs', key: 'phantom.png' }, {
    objects, sink: new MemorySink(), model, pseudonymKey: 'documentation-example-key', resultsBucket: 'docs', log: silentLogger, path: 'local',
  });
  const { item } = await runScoreStage(msg, { objects, results: new MemoryResults(), severity: loadSeverityConfig(), resultsBucket: 'docs', log: silentLogger });
  await model.release();
  if (!item.keys) throw new Error(`phantom was not scored: ${item.errorCode} ${item.errorReason}`);
  const overlay = (await objects.get('docs', item.keys.overlay)).body;
  const out = join(__dirname, 'overlay-example.png');
  writeFileSync(out, await sharp(overlay).resize(512).png({ compressionLevel: 9, palette: true }).toBuffer());
  console.log(`${out}: opacity ${item.opacityPctTotal?.toFixed(1)}% (right ${item.opacityPctRight?.toFixed(1)}%, left ${item.opacityPctLeft?.toFixed(1)}%), grade ${item.grade}`);
}

main().catch((e) => { console.error(e); process.exitCode = 1; });
