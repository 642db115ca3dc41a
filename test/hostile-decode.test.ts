/**
 * Issue 10, decoding: inputs that cannot be measured are refused with their own code and a reason that
 * echoes no tag text, and DICOM parsing is bounded (depth, element count, time). Every file is generated
 * here (helpers/hostile-files.ts); dcmtk's dcmdump checks that the nested files are DICOM it can read.
 */
import { describe, test } from '@jest/globals';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { MAX_ELEMENTS, MAX_SEQUENCE_DEPTH, MIN_IMAGE_SIDE, decodeImage } from '../src/core/decode';
import { grayValue } from '../src/core/gray';
import { InputError } from '../src/core/errors';
import { analyzeMain } from '../src/cli/analyze';
import { hasTool, makeDicom, makeJpeg, makePng, chestPattern } from './helpers/fixtures';
import {
  UID, baseDicom, encapsulated, hiddenDelimiterSequence, insertBeforePixelData, jpegFrame, manyElements, nestedSequences,
  oversizedPixelData, taggedWithControlText, type Encoding,
} from './helpers/hostile-files';
import { chestPixels, chestPng } from './helpers/synthetic';
import { writeTinyModel } from './helpers/tiny-model';

/** No control characters (C0, DEL, C1) and none of the planted text. */
function assertClean(text: string, what: string): void {
  // eslint-disable-next-line no-control-regex
  assert.ok(!/[\u0000-\u001f\u007f-\u009f]/.test(text), `${what} holds a control character: ${JSON.stringify(text)}`);
  assert.ok(!/FORGED|forged|QQQQ/.test(text), `${what} echoes tag text: ${text}`);
}

/** Decodes, expecting InputError `code` within `maxMs`; returns the error and the time taken. */
async function refused(bytes: Uint8Array, code: string, maxMs = 1000): Promise<{ e: InputError; ms: number }> {
  const t = performance.now();
  try {
    await decodeImage(bytes);
  } catch (e) {
    const ms = performance.now() - t;
    assert.ok(e instanceof InputError, `expected InputError ${code}, got ${String(e)}`);
    assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
    assert.ok(e.message.length > 40, 'the reason says what is wrong and what to do');
    assertClean(e.message, 'reason');
    assert.ok(ms < maxMs, `${code} took ${ms.toFixed(0)} ms`);
    return { e, ms };
  }
  assert.fail(`expected InputError ${code}, but it decoded`);
}

function dcmdumpReads(bytes: Buffer): boolean {
  const dir = mkdtempSync(join(tmpdir(), 'cxr-hostile-dcm-'));
  try {
    writeFileSync(join(dir, 'f.dcm'), bytes);
    execFileSync('dcmdump', ['-q', '+L', join(dir, 'f.dcm')], { stdio: 'ignore', maxBuffer: 1 << 28 });
    return true;
  } catch {
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('bounded DICOM parsing', () => {
  const timings: string[] = [];

  for (const enc of ['explicit', 'implicit'] as Encoding[]) {
    for (const lengths of ['undefined', 'defined'] as const) {
      test(`sequences nested 20,000 and 80,000 deep (${enc} VR, ${lengths} lengths) are refused TOO_COMPLEX in well under a second`, async () => {
        const base = baseDicom(enc === 'implicit' ? { transferSyntax: 'implicit' } : {});
        for (const depth of [20_000, 80_000]) {
          const file = insertBeforePixelData(base, nestedSequences(depth, enc, lengths));
          const { e, ms } = await refused(file, 'TOO_COMPLEX', 500);
          assert.match(e.message, new RegExp(`nested more than ${MAX_SEQUENCE_DEPTH} deep`));
          timings.push(`${depth} deep ${enc}/${lengths} (${(file.length / 1e6).toFixed(1)} MB): ${ms.toFixed(1)} ms`);
        }
      });
    }
  }

  test('the limit is exact: 32 levels decode, 33 are refused; dcmtk reads both files', async () => {
    const ok = insertBeforePixelData(baseDicom(), nestedSequences(MAX_SEQUENCE_DEPTH, 'explicit', 'undefined'));
    const deep = insertBeforePixelData(baseDicom(), nestedSequences(MAX_SEQUENCE_DEPTH + 1, 'explicit', 'defined'));
    const img = await decodeImage(ok);
    assert.equal(img.width, 256);
    await refused(deep, 'TOO_COMPLEX');
    if (hasTool('dcmdump')) {
      assert.ok(dcmdumpReads(ok), 'dcmdump reads the 32-deep file');
      assert.ok(dcmdumpReads(deep), 'dcmdump reads the 33-deep file');
      assert.ok(dcmdumpReads(insertBeforePixelData(baseDicom(), nestedSequences(2000, 'explicit', 'undefined'))), 'a 2,000-deep file is valid DICOM');
    }
  });

  test(`more than ${MAX_ELEMENTS.toLocaleString('en')} elements are refused TOO_COMPLEX before parsing`, async () => {
    for (const enc of ['explicit', 'implicit'] as Encoding[]) {
      const base = baseDicom(enc === 'implicit' ? { transferSyntax: 'implicit' } : {});
      const file = insertBeforePixelData(base, manyElements(MAX_ELEMENTS + 10, enc));
      const { e, ms } = await refused(file, 'TOO_COMPLEX', 500);
      assert.match(e.message, /more than 100,000 elements/);
      timings.push(`${MAX_ELEMENTS + 10} elements ${enc}: ${ms.toFixed(1)} ms`);
      // Well within the limit the same kind of file decodes.
      assert.equal((await decodeImage(insertBeforePixelData(base, manyElements(5000, enc)))).height, 200);
    }
  });

  test('a delimiter hidden inside a value (what dcmjs would read as a 20,000-deep structure) is refused CORRUPT', async () => {
    const file = insertBeforePixelData(baseDicom(), hiddenDelimiterSequence(20_000));
    const { e, ms } = await refused(file, 'CORRUPT', 500);
    assert.match(e.message, /delimiters hidden inside element values/);
    timings.push(`hidden delimiter + 20,000 deep: ${ms.toFixed(1)} ms`);
  });

  test('a sequence encoded as UN (which dcmjs re-reads as SQ) cannot hide nesting', async () => {
    const file = insertBeforePixelData(baseDicom(), nestedSequences(20_000, 'explicit', 'defined', 'UN'));
    await refused(file, 'TOO_COMPLEX', 500);
    const shallow = insertBeforePixelData(baseDicom(), nestedSequences(3, 'explicit', 'defined', 'UN'));
    assert.equal((await decodeImage(shallow)).width, 256);
  });

  test('timings', () => {
    console.log(`pre-scan refusals:\n  ${timings.join('\n  ')}`);
  });
});

describe('decode checks: what cannot be measured is refused', () => {
  test('pixel data longer than Rows x Columns: a whole multiple is multi-frame, anything else INVALID_HEADER', async () => {
    const doubled = await refused(oversizedPixelData(2), 'UNSUPPORTED_IMAGE');
    assert.match(doubled.e.message, /holds 2 times the bytes of one 256 x 200 16-bit image \(NumberOfFrames is missing\)/);
    const extra = await refused(oversizedPixelData(1, {}, 100), 'INVALID_HEADER');
    assert.match(extra.e.message, /102500 bytes, but 256 x 200 pixels at 16 bits need 102400/);
    // 8-bit with an odd pixel count: the one padding byte DICOM adds is accepted, a second byte is not.
    const odd = { rows: 129, cols: 129, bitsAllocated: 8 as const, bitsStored: 8, windowCenter: 128, windowWidth: 256 };
    assert.equal((await decodeImage(makeDicom({ ...odd, pixels: new Uint8Array(129 * 129).fill(90) }))).width, 129);
    await refused(makeDicom({ ...odd, pixels: new Uint8Array(129 * 129 + 2).fill(90) }), 'INVALID_HEADER');
  });

  test('multi-frame detected from the data, not only NumberOfFrames', async () => {
    await refused(oversizedPixelData(3), 'UNSUPPORTED_IMAGE');
    const saysOne = await refused(oversizedPixelData(2, { numberOfFrames: 1 }), 'UNSUPPORTED_IMAGE');
    assert.match(saysOne.e.message, /NumberOfFrames says 1/);
    // Compressed: two JPEG codestreams, with and without a Basic Offset Table, no NumberOfFrames.
    const spec = { rows: 200, cols: 256, bitsAllocated: 8 as const, bitsStored: 8, windowCenter: 128, windowWidth: 256 };
    const frames = [await jpegFrame(256, 200, 1), await jpegFrame(256, 200, 2)];
    for (const offsetTable of [true, false]) {
      const two = await refused(encapsulated(spec, UID.jpegBaseline, frames, { offsetTable }), 'UNSUPPORTED_IMAGE');
      assert.match(two.e.message, /holds 2 compressed frames \(NumberOfFrames is missing\)/);
    }
    // One frame split into many fragments is still one frame.
    const one = await decodeImage(encapsulated(spec, UID.jpegBaseline, [frames[0]], { offsetTable: false, splitEach: 1000 }));
    assert.equal(one.width, 256);
    // A three-component (colour) codestream in a MONOCHROME2 dataset decodes to 3x the bytes: refused, not cropped.
    const colourFrame = await refused(encapsulated(spec, UID.jpegBaseline, [await jpegFrame(256, 200, 1, true)], { offsetTable: false }), 'INVALID_HEADER');
    assert.match(colourFrame.e.message, /decoded to 153600 bytes, more than the 51200/);
  });

  test('SamplesPerPixel and PhotometricInterpretation must agree (RGB labelled MONOCHROME2)', async () => {
    const rgbAsMono = await refused(baseDicom({ samplesPerPixel: 3, bitsAllocated: 8, bitsStored: 8, pixels: new Uint8Array(256 * 200 * 3), extra: { PlanarConfiguration: 0 } }), 'INVALID_HEADER');
    assert.match(rgbAsMono.e.message, /PhotometricInterpretation MONOCHROME2 has 1 sample per pixel but SamplesPerPixel is 3/);
    await refused(baseDicom({ photometric: 'RGB', bitsAllocated: 8, bitsStored: 8, pixels: new Uint8Array(256 * 200) }), 'INVALID_HEADER');
    // RGB samples with SamplesPerPixel 1: three times the bytes of the gray image.
    const triple = await refused(oversizedPixelData(3, { bitsAllocated: 8, bitsStored: 8, rows: 200, cols: 256 }), 'UNSUPPORTED_IMAGE');
    assert.match(triple.e.message, /colour \(RGB\) samples labelled as grayscale/);
    // Consistent colour is still UNSUPPORTED_IMAGE, as before.
    await refused(baseDicom({ samplesPerPixel: 3, photometric: 'RGB', bitsAllocated: 8, bitsStored: 8, pixels: new Uint8Array(256 * 200 * 3), extra: { PlanarConfiguration: 0 } }), 'UNSUPPORTED_IMAGE');
  });

  test('Rescale Slope/Intercept must be finite and sane', async () => {
    for (const [name, spec] of [
      ['slope 1e308', { rescaleSlope: 1e308, rescaleIntercept: 0 }],
      ['intercept -1e308', { rescaleSlope: 1, rescaleIntercept: -1e308 }],
      ['slope 1e-9', { rescaleSlope: 1e-9, rescaleIntercept: 0 }],
      ['slope 1e7', { rescaleSlope: 1e7, rescaleIntercept: 0 }],
    ] as const) {
      const { e } = await refused(baseDicom(spec), 'INVALID_HEADER');
      assert.match(e.message, /Rescale(Slope|Intercept)/, name);
    }
    const img = await decodeImage(baseDicom({ rescaleSlope: 0.5, rescaleIntercept: -1024 }));
    assert.equal(img.width, 256, 'ordinary rescale values decode');
  });

  test(`a minimum size of ${MIN_IMAGE_SIDE} px on the short side, DICOM, PNG and JPEG`, async () => {
    for (const [rows, cols] of [[8, 8], [26, 32], [127, 2000]]) {
      const { e } = await refused(makeDicom({ rows, cols }), 'TOO_SMALL');
      assert.match(e.message, new RegExp(`${cols} x ${rows} pixels; the smallest image that can be measured has 128 pixels`));
    }
    assert.equal((await decodeImage(makeDicom({ rows: 128, cols: 128 }))).width, 128);
    await refused(await makePng({ width: 300, height: 100 }), 'TOO_SMALL');
    await refused(await makeJpeg({ width: 127, height: 127 }), 'TOO_SMALL');
    assert.equal((await decodeImage(await makePng({ width: 128, height: 140 }))).height, 140);
    // The floor applies to the image as displayed: 200 x 100 stored, rotated by EXIF, is still 100 px short.
    await refused(await makeJpeg({ width: 200, height: 100, orientation: 6 }), 'TOO_SMALL');
  });

  test('PNG transparency: refused when any pixel is not fully opaque, accepted when the alpha is all opaque', async () => {
    const w = 200;
    const h = 160;
    const gray = chestPattern(w, h);
    const rgba = (alphaOf: (x: number) => number, bits: 8 | 16) => {
      const max = bits === 16 ? 65535 : 255;
      const s = bits === 16 ? new Uint16Array(w * h * 4) : new Uint8Array(w * h * 4);
      for (let i = 0; i < w * h; i++) {
        s.fill(Math.round(gray[i] * max), 4 * i, 4 * i + 3);
        s[4 * i + 3] = Math.round(alphaOf(i % w) * max);
      }
      return makePng({ width: w, height: h, channels: 4, samples: s, bits });
    };
    const halfTransparent = await refused(await rgba((x) => (x < w / 2 ? 0 : 1), 8), 'UNSUPPORTED_IMAGE');
    assert.match(halfTransparent.e.message, /transparent pixels \(50\.0% of the image/);
    await refused(await rgba((x) => (x < w / 2 ? 0 : 1), 16), 'UNSUPPORTED_IMAGE');
    const ga = new Uint8Array(w * h * 2);
    for (let i = 0; i < w * h; i++) { ga[2 * i] = Math.round(gray[i] * 255); ga[2 * i + 1] = i % w === 0 ? 254 : 255; }
    await refused(await makePng({ width: w, height: h, channels: 2, samples: ga }), 'UNSUPPORTED_IMAGE');
    // Fully opaque alpha: the same pixels as without alpha.
    const opaque = await decodeImage(await rgba(() => 1, 8));
    const plain = await decodeImage(await makePng({ width: w, height: h, gray }));
    assert.deepEqual(Array.from(opaque.data), Array.from(plain.data));
  });

  test('EXIF orientation 1-8 is applied (JPEG and PNG): the image is analysed as displayed', async () => {
    const W = 200;
    const H = 150;
    // An asymmetric pattern: a bright block at the top-left, a gradient to the right.
    const stored = new Uint8Array(W * H);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) stored[y * W + x] = y < 40 && x < 70 ? 240 : 20 + Math.round((x / W) * 100);
    // Independent of sharp: display pixel (x, y) <- stored pixel, per the EXIF orientation definitions.
    const displayed = (o: number) => {
      const swap = o >= 5;
      const w = swap ? H : W;
      const h = swap ? W : H;
      const out = new Float32Array(w * h);
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const [sx, sy] = ({ 1: [x, y], 2: [W - 1 - x, y], 3: [W - 1 - x, H - 1 - y], 4: [x, H - 1 - y], 5: [y, x], 6: [y, H - 1 - x], 7: [W - 1 - y, H - 1 - x], 8: [W - 1 - y, x] } as Record<number, number[]>)[o];
          out[y * w + x] = stored[sy * W + sx] / 255;
        }
      }
      return { w, h, out };
    };
    for (const o of [1, 2, 3, 4, 5, 6, 7, 8]) {
      const raw = sharp(Buffer.from(stored), { raw: { width: W, height: H, channels: 1 } });
      for (const [kind, bytes] of [
        ['jpeg', await raw.clone().jpeg({ quality: 100 }).withMetadata({ orientation: o }).toBuffer()],
        ['png', await raw.clone().png().withMetadata({ orientation: o }).toBuffer()],
      ] as const) {
        const img = await decodeImage(bytes);
        const want = displayed(o);
        assert.deepEqual([img.width, img.height], [want.w, want.h], `${kind} orientation ${o}: size`);
        let worst = 0;
        for (let i = 0; i < want.out.length; i++) worst = Math.max(worst, Math.abs(grayValue(img, i) - want.out[i]));
        assert.ok(worst < (kind === 'png' ? 0.5 / 65535 + 1e-9 : 0.06), `${kind} orientation ${o}: max difference ${worst}`);
      }
    }
  });
});

describe('tag text never echoed raw', () => {
  test('Modality and ViewPosition with escape sequences and CR LF become OTHER in meta', async () => {
    const m = await decodeImage(taggedWithControlText('modality'));
    assert.equal(m.meta.modality, 'OTHER');
    const v = await decodeImage(taggedWithControlText('viewPosition'));
    assert.equal(v.meta.viewPosition, 'OTHER');
    for (const img of [m, v]) assertClean(JSON.stringify(img.meta), 'meta');
    // Defined terms pass through (normalised).
    const ok = await decodeImage(baseDicom({ modality: 'cr', viewPosition: 'pa ' }));
    assert.deepEqual([ok.meta.modality, ok.meta.viewPosition, ok.meta.photometricInterpretation], ['CR', 'PA', 'MONOCHROME2']);
  });

  test('PhotometricInterpretation and Transfer Syntax UID with control text reach the reason only as "unrecognised"', async () => {
    const p = await refused(taggedWithControlText('photometric'), 'UNSUPPORTED_IMAGE');
    assert.match(p.e.message, /PhotometricInterpretation is \(unrecognised value\), not one DICOM defines/);
    const ts = await refused(taggedWithControlText('transferSyntax'), 'UNSUPPORTED_TRANSFER_SYNTAX');
    assert.match(ts.e.message, /unrecognised value/);
    // A known unsupported syntax is still named.
    const rgb = await refused(baseDicom({ samplesPerPixel: 3, photometric: 'YBR_FULL', bitsAllocated: 8, bitsStored: 8, pixels: new Uint8Array(256 * 200 * 3), extra: { PlanarConfiguration: 0 } }), 'UNSUPPORTED_IMAGE');
    assert.match(rgb.e.message, /YBR_FULL/);
  });
});

/** The synthetic chest (320 x 256) as RGBA whose left half (the patient's right lung) is fully transparent. */
async function halfTransparentChest(): Promise<Buffer> {
  const { width, height, data } = chestPixels({ rightOpacity: 0.5 });
  const s = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    s.fill(Math.round(data[i] * 255), 4 * i, 4 * i + 3);
    s[4 * i + 3] = i % width < width / 2 ? 0 : 255;
  }
  return makePng({ width, height, channels: 4, samples: s });
}

describe('through the CLI: one result per hostile input, with the right status and code', () => {
  test('cxr-opacity analyze', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cxr-hostile-cli-'));
    const inDir = join(dir, 'in');
    mkdirSync(inDir);
    const files: Record<string, [Uint8Array, string, string?]> = {
      'nested-80000.dcm': [insertBeforePixelData(baseDicom(), nestedSequences(80_000, 'explicit', 'undefined')), 'FAILED', 'TOO_COMPLEX'],
      'doubled-rows.dcm': [oversizedPixelData(2), 'FAILED', 'UNSUPPORTED_IMAGE'],
      'rgb-as-mono.dcm': [baseDicom({ samplesPerPixel: 3, bitsAllocated: 8, bitsStored: 8, pixels: new Uint8Array(256 * 200 * 3), extra: { PlanarConfiguration: 0 } }), 'FAILED', 'INVALID_HEADER'],
      'rescale-1e308.dcm': [baseDicom({ rescaleSlope: 1e308, rescaleIntercept: 0 }), 'FAILED', 'INVALID_HEADER'],
      'eight-by-eight.dcm': [makeDicom({ rows: 8, cols: 8 }), 'FAILED', 'TOO_SMALL'],
      'photometric-ctl.dcm': [taggedWithControlText('photometric'), 'FAILED', 'UNSUPPORTED_IMAGE'],
      'ts-ctl.dcm': [taggedWithControlText('transferSyntax'), 'FAILED', 'UNSUPPORTED_TRANSFER_SYNTAX'],
      'half-transparent.png': [await halfTransparentChest(), 'FAILED', 'UNSUPPORTED_IMAGE'],
      'good.png': [await chestPng({ rightOpacity: 0.5 }), 'SCORED'],
    };
    for (const [name, [bytes]] of Object.entries(files)) writeFileSync(join(inDir, name), bytes);
    const out: string[] = [];
    const log = console.log;
    const err = process.stderr.write.bind(process.stderr);
    console.log = (...a: unknown[]) => { out.push(a.join(' ')); };
    process.stderr.write = (() => true) as typeof process.stderr.write;
    let code: number;
    const t = performance.now();
    try {
      code = await analyzeMain([inDir, '--out', join(dir, 'out'), '--model', writeTinyModel(join(dir, 'model'), { size: 128 }), '--format', 'json']);
    } finally {
      console.log = log;
      process.stderr.write = err;
    }
    const ms = performance.now() - t;
    assert.equal(code, 1, 'exit 1: some inputs failed');
    const stdout = out.join('\n');
    assertClean(stdout.replace(/\n/g, ' '), 'CLI output');
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as { input: string; status: string; errorCode?: string; errorReason?: string });
    assert.equal(lines.length, Object.keys(files).length, 'exactly one result per input');
    for (const [name, [, status, errorCode]] of Object.entries(files)) {
      const rows = lines.filter((l) => l.input === name);
      assert.equal(rows.length, 1, `${name}: one result`);
      assert.equal(rows[0].status, status, `${name}: ${rows[0].errorCode} ${rows[0].errorReason}`);
      if (errorCode) {
        assert.equal(rows[0].errorCode, errorCode, `${name}: ${rows[0].errorReason}`);
        const saved = JSON.parse(readFileSync(join(dir, 'out', name, 'result.json'), 'utf8')) as { errorCode: string; errorReason: string };
        assert.equal(saved.errorCode, errorCode);
        assertClean(saved.errorReason, `${name} result.json`);
      }
    }
    console.log(`CLI: ${lines.length} hostile/good inputs in ${ms.toFixed(0)} ms`);
    rmSync(dir, { recursive: true, force: true });
  });
});
