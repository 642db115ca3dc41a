/**
 * Compressed DICOM decodes the way the deployed code loads its codecs. dcmjs-codecs is loaded with the first compressed
 * frame (import(), src/core/decode/codecs.ts); jest turns that import() into require(), so a decode test in this
 * suite cannot see what Node's own loader does with the package (a UMD bundle whose exports it cannot name). Here the
 * decoder is bundled as functions/segment/Dockerfile bundles it (esbuild, CommonJS, dcmjs-codecs external) and run in
 * a plain `node`, without jest or tsx.
 */
import { describe, test } from '@jest/globals';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildSync } from 'esbuild';
import { codecsModule } from '../src/core/decode/codecs';
import { chestPattern, compressedVariant, hasTool, makeDicom, toStored, VARIANTS, type DicomSpec, type Variant } from './helpers/fixtures';
import { testContext } from './helpers/test-context';

const ROOT = join(__dirname, '..');

describe('dcmjs-codecs as the deployed bundles load it', () => {
  test('codecsModule takes the exports directly (CommonJS transforms) or from default (Node\'s loader)', () => {
    const exports = { NativeCodecs: { initializeAsync: () => undefined }, log: { setLevel: () => undefined } };
    assert.equal(codecsModule(exports), exports);
    assert.equal(codecsModule({ default: exports, 'dcmjs-codecs': exports }), exports);
    assert.throws(() => codecsModule({ default: {} }), /did not export NativeCodecs/);
  });

  test('a bundled decoder in a plain node decodes RLE, JPEG baseline and JPEG-LS DICOM', () => {
    const t = testContext();
    const variants = (['rle', 'jpeg-baseline', 'jpegls'] as Variant[]).filter((v) => hasTool(VARIANTS[v].tool));
    if (variants.length === 0) {
      t.skip('dcmtk (dcmcrle, dcmcjpeg, dcmcjpls) is not installed: no compressed DICOM to decode (apt install dcmtk)');
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'cxr-codecs-'));
    const spec: DicomSpec = { rows: 192, cols: 160, bitsStored: 8, bitsAllocated: 8, pixels: toStored(chestPattern(160, 192), 8) };
    const files = variants.map((v) => {
      const file = join(dir, `${v}.dcm`);
      writeFileSync(file, compressedVariant(makeDicom(spec), v, spec));
      return file;
    });
    // What the functions' Dockerfiles run, for the decoder alone.
    const entry = join(dir, 'entry.ts');
    writeFileSync(entry, [
      `import { readFileSync } from 'node:fs';`,
      `import { decodeImage } from ${JSON.stringify(join(ROOT, 'src/core/decode'))};`,
      `(async () => {`,
      `  for (const f of process.argv.slice(2)) {`,
      `    const img = await decodeImage(readFileSync(f));`,
      `    console.log(JSON.stringify({ width: img.width, height: img.height, syntax: img.meta.transferSyntaxUid }));`,
      `  }`,
      `})().catch((e) => { console.error(e?.cause?.message ?? '', e?.message); process.exit(3); });`,
    ].join('\n'));
    const outfile = join(dir, 'decode.js');
    // The packages left external resolve from the bundle's folder, as in the image (/var/task/node_modules).
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
    buildSync({
      entryPoints: [entry], bundle: true, platform: 'node', target: 'node22', format: 'cjs',
      external: ['sharp', 'onnxruntime-node', 'dcmjs-codecs'], outfile, logLevel: 'silent',
    });
    const r = spawnSync(process.execPath, [outfile, ...files], {
      cwd: dir, encoding: 'utf8', timeout: 60_000, env: { PATH: process.env.PATH ?? '' },
    });
    assert.equal(r.status, 0, `the bundled decoder failed: ${r.stderr}`);
    const decoded = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { width: number; height: number; syntax?: string });
    assert.equal(decoded.length, variants.length);
    for (const [i, d] of decoded.entries()) {
      assert.deepEqual([d.width, d.height, d.syntax], [160, 192, VARIANTS[variants[i]].uid], variants[i]);
    }
  });
});
