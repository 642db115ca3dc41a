/**
 * Makes docs/overlay-example.png for the README: the synthetic chest phantom of docs/phantom.ts (no patient
 * image may be redistributed here) with a hazy patch in the patient's right lower zone, run through the real
 * pipeline stages and the committed model.   npx tsx docs/make-overlay-example.ts
 * Since model 2.0.0 the non-chest guard refuses the phantom (it is a drawing, not a radiograph) and the script
 * stops with that refusal; the committed picture was made with model 1.0.0 (README says so).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { DEFAULT_MODEL_MANIFEST, loadModel } from '../layers/onnx/session';
import { loadSeverityConfig } from '../src/core';
import { analyzeInMemory } from '../src/pipeline/in-memory';
import { phantom } from './phantom';

async function main() {
  const W = 768, H = 768;
  const png = await sharp(phantom(W, H), { raw: { width: W, height: H, channels: 1 } }).blur(3).png().toBuffer();
  const model = await loadModel(DEFAULT_MODEL_MANIFEST);
  const { item, outputs } = await analyzeInMemory({ bytes: png, name: 'phantom.png' }, {
    model, severity: loadSeverityConfig(), pseudonymKey: 'documentation-example-key', path: 'local',
  });
  await model.release();
  const overlay = outputs['overlay.png'];
  if (!overlay) throw new Error(`phantom was not scored: ${item.errorCode} ${item.errorReason}`);
  const out = join(__dirname, 'overlay-example.png');
  writeFileSync(out, await sharp(overlay).resize(512).png({ compressionLevel: 9, palette: true }).toBuffer());
  console.log(`${out}: opacity ${item.opacityPctTotal?.toFixed(1)}% (right ${item.opacityPctRight?.toFixed(1)}%, left ${item.opacityPctLeft?.toFixed(1)}%), grade ${item.grade}`);
}

main().catch((e) => { console.error(e); process.exitCode = 1; });
