/**
 * Decoder tests: pixel values through the DICOM grayscale pipeline, every supported transfer syntax
 * against an independent encoder (dcmtk / OpenJPEG), a cross-check against dcmtk's own rendering,
 * PNG/JPEG precision and orientation, and the hostile-input corpus. All fixtures are generated here.
 */
import { describe, test } from '@jest/globals';
import { testContext, type TestContext } from './helpers/test-context';
import assert from 'node:assert/strict';
import { deflateRawSync } from 'node:zlib';
import sharp from 'sharp';
import { decodeImage as decodeAtLeast128 } from '../src/core/decode';
import { voiFunction } from '../src/core/decode/pixels';
import { prescanDicom } from '../src/core/decode/prescan';
import { InputError } from '../src/core/errors';
import type { DecodedImage } from '../src/core/types';
import {
  DEFAULT_IDENTIFIERS, UID, VARIANTS, bareDataset, chestPattern, compressedVariant, dcm2pnm16, hasTool,
  hostileInputs, htj2kVariant, makeDicom, makeJpeg, makePng, pngHeaderOnly, toStored, withTransferSyntax, type DicomSpec, type Variant,
} from './helpers/fixtures';

/**
 * These tests check pixel arithmetic and parsing on images a few pixels wide, below the 128-pixel floor
 * that decodeImage applies by default (TOO_SMALL); the floor itself is tested in hostile-decode.test.ts.
 */
const decodeImage = async (bytes: Uint8Array, opts: Parameters<typeof decodeAtLeast128>[1] = {}): Promise<DecodedImage & { data: Float32Array }> => {
  const img = await decodeAtLeast128(bytes, { minSide: 1, ...opts });
  // The decoders store 16-bit display values (core/types.ts GrayImage); the formulas below are written in [0, 1].
  assert.ok(img.data instanceof Uint16Array, 'decoded pixels are 16-bit display values');
  return Object.assign(img, { data: Float32Array.from(img.data, (v) => v / 65535) });
};
/** The most a [0, 1] value moves when stored in 16 bits (half a step), plus float slack. */
const QUANTUM = 0.5 / 65535 + 1e-9;

async function expectCode(p: Promise<unknown>, code: string): Promise<InputError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof InputError, `expected InputError ${code}, got ${String(e)}`);
    assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
    assert.ok(e.message.length > 20, 'the message says what is wrong');
    return e;
  }
  assert.fail(`expected InputError ${code}, but it decoded`);
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function meanAbsDiff(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] - b[i]);
  return s / a.length;
}

function skipWithout(t: TestContext, tool: string): boolean {
  if (hasTool(tool)) return false;
  const reason = `${tool} is not installed: install it (dcmtk / libopenjp2-tools) to run this check`;
  console.warn(`SKIPPED: ${t.name}: ${reason}`);
  t.skip(reason);
  return true;
}

/** One row of stored values; every value of the pipeline is checked against a formula. */
function rowDicom(values: number[], spec: DicomSpec = {}): Buffer {
  return makeDicom({ rows: 1, cols: values.length, pixels: Uint16Array.from(values), ...spec });
}

describe('DICOM grayscale pipeline', () => {
  test('VOI window from the tags (LINEAR, PS3.3 C.11.2.1.2) on known stored values', async () => {
    const values = [0, 500, 1000, 1523, 2048, 2500, 3000, 4095];
    const img = await decodeImage(rowDicom(values, { bitsStored: 12, windowCenter: 2000, windowWidth: 2000 }));
    assert.equal(img.width, values.length);
    assert.equal(img.height, 1);
    const f = voiFunction(2000, 2000, 'LINEAR');
    const expected = values.map((v) => Math.min(1, Math.max(0, (v - 1999.5) / 1999 + 0.5)));
    values.forEach((v, i) => assert.ok(Math.abs(img.data[i] - expected[i]) <= QUANTUM, `value ${v}: ${img.data[i]} vs ${expected[i]}`));
    assert.equal(img.data[0], 0);
    assert.equal(img.data[7], 1);
    assert.ok(Math.abs(f(2000) - img.data[values.indexOf(2048)]) < 0.03);
    assert.deepEqual(img.meta.window, { center: 2000, width: 2000, source: 'dicom' });
  });

  test('Modality LUT (RescaleSlope/Intercept) is applied before the window', async () => {
    // stored s -> HU-like 2s - 1024; window in modality units
    const values = [0, 256, 512, 768, 1024];
    const img = await decodeImage(rowDicom(values, { bitsStored: 12, rescaleSlope: 2, rescaleIntercept: -1024, windowCenter: 0, windowWidth: 2049, voiLutFunction: 'LINEAR_EXACT' }));
    const expected = values.map((v) => Math.min(1, Math.max(0, (2 * v - 1024) / 2049 + 0.5)));
    values.forEach((_, i) => assert.ok(Math.abs(img.data[i] - expected[i]) <= QUANTUM, `${img.data[i]} vs ${expected[i]}`));
  });

  test('SIGMOID VOI function', async () => {
    const values = [1000, 2000, 3000];
    const img = await decodeImage(rowDicom(values, { windowCenter: 2000, windowWidth: 1000, voiLutFunction: 'SIGMOID' }));
    values.forEach((v, i) => assert.ok(Math.abs(img.data[i] - 1 / (1 + Math.exp(-4 * (v - 2000) / 1000))) <= QUANTUM));
  });

  test('multi-valued WindowCenter/Width: the first pair is used', async () => {
    const img = await decodeImage(rowDicom([0, 1000, 2000], { windowCenter: [1000, 3000], windowWidth: [1001, 500] }));
    assert.equal(img.meta.window?.center, 1000);
    assert.equal(img.meta.window?.width, 1001);
    assert.ok(Math.abs(img.data[1] - 0.5) < 1e-3);
  });

  test('MONOCHROME1 is inverted so that air is dark', async () => {
    const spec: DicomSpec = { rows: 16, cols: 16, windowCenter: 2048, windowWidth: 4096 };
    const m2 = await decodeImage(makeDicom({ ...spec, photometric: 'MONOCHROME2' }));
    const m1 = await decodeImage(makeDicom({ ...spec, photometric: 'MONOCHROME1' }));
    assert.equal(m1.meta.photometricInterpretation, 'MONOCHROME1');
    for (let i = 0; i < m1.data.length; i++) assert.ok(Math.abs(m1.data[i] - (1 - m2.data[i])) <= QUANTUM);
  });

  test('stored values are masked to BitsStored (garbage in the high bits is ignored)', async () => {
    const clean = [0, 1, 100, 2048, 4095];
    const dirty = clean.map((v, i) => v | ((0xa + i) << 12)); // bits 12-15 set to junk
    const spec = { bitsStored: 12, windowCenter: 2048, windowWidth: 4096 };
    const a = await decodeImage(rowDicom(clean, spec));
    const b = await decodeImage(rowDicom(dirty, spec));
    assert.deepEqual(Array.from(b.data), Array.from(a.data));
    assert.equal(a.meta.bitsStored, 12);
  });

  test('HighBit below the top of the word: stored bits are shifted down', async () => {
    // 10 stored bits at bits 2..11 (HighBit 11)
    const stored = [0, 100, 1023];
    const img = await decodeImage(rowDicom(stored.map((v) => v << 2 | 0b11), { bitsStored: 10, highBit: 11, windowCenter: 512, windowWidth: 1024, voiLutFunction: 'LINEAR_EXACT' }));
    stored.forEach((v, i) => assert.ok(Math.abs(img.data[i] - Math.min(1, (v - 512) / 1024 + 0.5)) <= QUANTUM));
  });

  test('signed pixels (PixelRepresentation 1), sign-extended or not', async () => {
    const values = [-2048, -1000, -1, 0, 1, 1000, 2047];
    const spec: DicomSpec = { bitsStored: 12, pixelRepresentation: 1, windowCenter: 0, windowWidth: 4096, voiLutFunction: 'LINEAR_EXACT' };
    const extended = Uint16Array.from(Int16Array.from(values));
    const twelveBit = Uint16Array.from(values, (v) => v & 0x0fff);
    const a = await decodeImage(makeDicom({ ...spec, rows: 1, cols: values.length, pixels: extended }));
    const b = await decodeImage(makeDicom({ ...spec, rows: 1, cols: values.length, pixels: twelveBit }));
    values.forEach((v, i) => assert.ok(Math.abs(a.data[i] - (v / 4096 + 0.5)) <= QUANTUM, `${v}: ${a.data[i]}`));
    assert.deepEqual(Array.from(b.data), Array.from(a.data));
  });

  test('no window in the tags: a 0.5-99.5 percentile window over the modality values', async () => {
    // 0..999 each ten times (10000 pixels) + a few outliers
    const values: number[] = [];
    for (let v = 0; v < 1000; v++) for (let k = 0; k < 10; k++) values.push(v);
    values.push(4095, 4095, 4095);
    const img = await decodeImage(makeDicom({ rows: 1, cols: values.length, pixels: Uint16Array.from(values), rescaleSlope: 1, rescaleIntercept: 100 }));
    assert.equal(img.meta.window?.source, 'percentile');
    const lo = 100 + 5; // 0.5 % of 10003 -> the 51st value
    const hi = 100 + 995;
    assert.ok(Math.abs(img.meta.window!.center - (lo + hi) / 2) <= 1.5, JSON.stringify(img.meta.window));
    assert.ok(Math.abs(img.meta.window!.width - (hi - lo)) <= 2, JSON.stringify(img.meta.window));
    assert.equal(img.data[0], 0);
    assert.equal(img.data[values.length - 1], 1, 'outliers saturate');
    assert.ok(Math.abs(img.data[values.indexOf(500)] - 0.5) < 0.01);
  });

  test('VOI LUT Sequence (no window): entries looked up from the modality value', async () => {
    const lut = Array.from({ length: 1024 }, (_, i) => Math.round(Math.sqrt(i / 1023) * 4095));
    const values = [0, 50, 100, 500, 1100, 1123, 1200, 4000];
    const img = await decodeImage(rowDicom(values, {
      rescaleIntercept: -100, rescaleSlope: 1,
      extra: { VOILUTSequence: [{ LUTDescriptor: [1024, 0, 12], LUTData: lut, LUTExplanation: 'SQRT', _vrMap: { LUTData: 'US' } }] },
    }));
    const expected = values.map((v) => lut[Math.min(1023, Math.max(0, v - 100))] / 4095);
    values.forEach((v, i) => assert.ok(Math.abs(img.data[i] - expected[i]) <= QUANTUM, `${v}: ${img.data[i]} vs ${expected[i]}`));
    assert.equal(img.meta.window?.source, 'dicom');
  });

  test('Modality LUT Sequence replaces rescale; the window applies to its output', async () => {
    const lut = Array.from({ length: 4096 }, (_, i) => 4095 - i); // an inverting modality LUT
    const values = [0, 1000, 2048, 4095];
    const img = await decodeImage(rowDicom(values, {
      windowCenter: 2048, windowWidth: 4096, voiLutFunction: 'LINEAR_EXACT', rescaleSlope: 3, rescaleIntercept: 7, // ignored
      extra: { ModalityLUTSequence: [{ LUTDescriptor: [4096, 0, 12], LUTData: lut, ModalityLUTType: 'US', _vrMap: { LUTData: 'US' } }] },
    }));
    values.forEach((v, i) => assert.ok(Math.abs(img.data[i] - ((4095 - v - 2048) / 4096 + 0.5)) <= QUANTUM, `${v}: ${img.data[i]}`));
  });

  test('VOI LUT on signed data: a negative first mapped value (SS, or US-labelled)', async () => {
    const lut = Array.from({ length: 200 }, (_, i) => i * 20);
    for (const [vr, first] of [['SS', -100], ['US', 65436]] as const) {
      const img = await decodeImage(makeDicom({
        rows: 1, cols: 4, pixelRepresentation: 1, bitsStored: 12, pixels: Uint16Array.from(Int16Array.from([-100, 0, 50, 99])),
        extra: { VOILUTSequence: [{ LUTDescriptor: [200, first, 12], LUTData: lut, _vrMap: { LUTData: 'US', LUTDescriptor: vr } }] },
      }));
      assert.deepEqual(Array.from(img.data, (v) => Math.round(v * 4095)), [0, 2000, 3000, 3980], vr);
    }
  });

  test('a window from the tags that saturates the whole image falls back to the percentile window', async () => {
    const img = await decodeImage(makeDicom({ rows: 32, cols: 32, windowCenter: 40000, windowWidth: 100 }));
    assert.equal(img.meta.window?.source, 'percentile');
    const kept = await decodeImage(makeDicom({ rows: 32, cols: 32, windowCenter: 2048, windowWidth: 4096 }));
    assert.equal(kept.meta.window?.source, 'dicom');
  });

  test('percentile window leaves out PixelPaddingValue', async () => {
    const values: number[] = [];
    for (let v = 1000; v < 2000; v++) values.push(v, v);
    const withPad = [...values, ...new Array(2000).fill(0)]; // half the image is padding 0
    const img = await decodeImage(makeDicom({ rows: 1, cols: withPad.length, pixels: Uint16Array.from(withPad), pixelPaddingValue: 0 }));
    assert.ok(img.meta.window!.center > 1400 && img.meta.window!.center < 1600, JSON.stringify(img.meta.window));
  });

  test('8-bit DICOM', async () => {
    const values = [0, 64, 128, 255];
    const img = await decodeImage(makeDicom({ rows: 1, cols: 4, bitsAllocated: 8, bitsStored: 8, pixels: Uint8Array.from(values), windowCenter: 128, windowWidth: 256, voiLutFunction: 'LINEAR_EXACT' }));
    values.forEach((v, i) => assert.ok(Math.abs(img.data[i] - Math.min(1, (v - 128) / 256 + 0.5)) <= QUANTUM));
  });

  test('meta: spacing, view, modality, date-time; identifiers: only PatientID and StudyInstanceUID', async () => {
    const img = await decodeImage(makeDicom({ viewPosition: 'AP', pixelSpacing: [0.139, 0.14], imagerPixelSpacing: [0.2, 0.2], modality: 'CR', studyDate: '20200315', studyTime: '101530.25' }));
    assert.deepEqual(img.meta.pixelSpacingMm, [0.139, 0.14]);
    assert.equal(img.meta.viewPosition, 'AP');
    assert.equal(img.meta.modality, 'CR');
    assert.equal(img.meta.format, 'dicom');
    assert.equal(img.meta.transferSyntaxUid, UID.explicitLE);
    assert.equal(img.meta.acquiredAt, '2020-03-15T10:15:30.250');
    assert.deepEqual(img.identifiers, { patientId: DEFAULT_IDENTIFIERS.patientId, studyInstanceUid: DEFAULT_IDENTIFIERS.studyInstanceUid });
    const everything = JSON.stringify({ ...img, data: undefined });
    for (const secret of ['Testperson', 'Alice', '19600229', '1960-02-29', 'Example Hospital']) {
      assert.ok(!everything.includes(secret), `${secret} must not appear in the decoded result`);
    }
    const imager = await decodeImage(makeDicom({ imagerPixelSpacing: [0.2, 0.25], acquisitionDateTime: '20210102030405.5+0100' }));
    assert.deepEqual(imager.meta.pixelSpacingMm, [0.2, 0.25]);
    assert.equal(imager.meta.acquiredAt, '2021-01-02T03:04:05.500+01:00');
  });

  test('character sets dcmjs cannot decode do not stop the image', async () => {
    for (const cs of [['', 'ISO 2022 IR 87'], 'ISO_IR 100', 'ISO_IR 192', 'NOT A CHARSET']) {
      const img = await decodeImage(makeDicom({ rows: 8, cols: 8, extra: { SpecificCharacterSet: cs } }));
      assert.equal(img.identifiers.patientId, DEFAULT_IDENTIFIERS.patientId, String(cs));
    }
  });

  test('implicit VR little endian and bare datasets (no preamble) decode to the same pixels', async () => {
    const spec: DicomSpec = { rows: 24, cols: 20, windowCenter: 2048, windowWidth: 4096 };
    const ref = await decodeImage(makeDicom(spec));
    const implicit = makeDicom({ ...spec, transferSyntax: 'implicit' });
    const imp = await decodeImage(implicit);
    assert.equal(imp.meta.transferSyntaxUid, UID.implicitLE);
    assert.deepEqual(Array.from(imp.data), Array.from(ref.data));
    for (const [name, bytes] of [
      ['meta, no preamble', bareDataset(makeDicom(spec), true)],
      ['explicit dataset only', bareDataset(makeDicom(spec), false)],
      ['implicit dataset only', bareDataset(implicit, false)],
    ] as const) {
      const img = await decodeImage(bytes);
      assert.deepEqual(Array.from(img.data), Array.from(ref.data), name);
    }
  });

  test('pixels read in place (native LE, Pixel Data last) equal pixels read through dcmjs (anything after Pixel Data)', async () => {
    // A top-level element after Pixel Data (here a private LO, explicit or implicit VR) sends the file through dcmjs
    // whole; trailing padding (FFFC,FFFC) does not. Same pixels, meta and identifiers either way, at any alignment.
    const element = (implicit: boolean, group: number, elem: number, vr: string, value: Buffer) => {
      const head = Buffer.alloc(implicit ? 8 : vr === 'OB' ? 12 : 8);
      head.writeUInt16LE(group, 0);
      head.writeUInt16LE(elem, 2);
      if (implicit) head.writeUInt32LE(value.length, 4);
      else if (vr === 'OB') { head.write(vr, 4, 'latin1'); head.writeUInt32LE(value.length, 8); } else { head.write(vr, 4, 'latin1'); head.writeUInt16LE(value.length, 6); }
      return Buffer.concat([head, value]);
    };
    for (const transferSyntax of ['explicit', 'implicit'] as const) {
      const spec: DicomSpec = { rows: 130, cols: 140, bitsStored: 12, windowCenter: 1800, windowWidth: 3000, transferSyntax };
      const plain = makeDicom(spec);
      const scan = prescanDicom(plain, 132, 132 + 12 + plain.readUInt32LE(140), { explicitVr: transferSyntax === 'explicit', littleEndian: true });
      assert.deepEqual({ ...scan.pixelData }, { valueOffset: plain.length - 130 * 140 * 2, length: 130 * 140 * 2, last: true }, transferSyntax);
      const implicit = transferSyntax === 'implicit';
      const after = Buffer.concat([plain, element(implicit, 0x7fe1, 0x0010, 'LO', Buffer.from('AB'))]);
      const padded = Buffer.concat([plain, element(implicit, 0xfffc, 0xfffc, 'OB', Buffer.alloc(6))]);
      assert.equal(prescanDicom(after, 132, 132 + 12 + after.readUInt32LE(140), { explicitVr: !implicit, littleEndian: true }).pixelData?.last, false);
      assert.equal(prescanDicom(padded, 132, 132 + 12 + padded.readUInt32LE(140), { explicitVr: !implicit, littleEndian: true }).pixelData?.last, true);
      const odd = Buffer.alloc(plain.length + 1).subarray(1);
      plain.copy(odd);
      const ref = await decodeImage(after);
      for (const [name, bytes] of [['in place', plain], ['padding after the pixels', padded], ['at an odd address', odd]] as const) {
        const img = await decodeImage(bytes);
        assert.deepEqual(Array.from(img.data), Array.from(ref.data), `${transferSyntax}, ${name}`);
        assert.deepEqual(img.meta, ref.meta);
        assert.deepEqual(img.identifiers, ref.identifiers);
        assert.deepEqual(img.dicomSource, ref.dicomSource);
      }
    }
  });

  test('common malformations that dcmtk accepts: no meta group length, implicit dataset labelled explicit', async () => {
    const spec: DicomSpec = { rows: 12, cols: 10, windowCenter: 2048, windowWidth: 4096 };
    const explicit = makeDicom(spec);
    const ref = await decodeImage(explicit);
    const noGroupLength = Buffer.concat([explicit.subarray(0, 132), explicit.subarray(132 + 12)]);
    assert.deepEqual(Array.from((await decodeImage(noGroupLength)).data), Array.from(ref.data));
    const metaEnd = 132 + 12 + explicit.readUInt32LE(132 + 8);
    const mislabelled = Buffer.concat([explicit.subarray(0, metaEnd), bareDataset(makeDicom({ ...spec, transferSyntax: 'implicit' }), false)]);
    const img = await decodeImage(mislabelled);
    assert.deepEqual(Array.from(img.data), Array.from(ref.data));
    // A meta group without a Transfer Syntax UID: guessed from the dataset.
    const noTs = Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), bareDataset(explicit, false)]);
    assert.deepEqual(Array.from((await decodeImage(noTs)).data), Array.from(ref.data));
  });

  test('a 3000 x 2500 16-bit DICOM decodes in well under a second', async () => {
    const rows = 2500;
    const cols = 3000;
    const pixels = new Uint16Array(rows * cols);
    for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 2654435761) >>> 18; // 14-bit, all values used
    const bytes = makeDicom({ rows, cols, bitsStored: 14, pixels });
    await decodeAtLeast128(bytes); // warm-up (JIT)
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t = performance.now();
      const img = await decodeAtLeast128(bytes);
      times.push(performance.now() - t);
      assert.equal(img.data.length, rows * cols);
    }
    times.sort((a, b) => a - b);
    console.log(`decode 3000x2500 16-bit explicit VR LE DICOM: median ${times[1].toFixed(0)} ms (${times.map((t) => t.toFixed(0)).join(', ')})`);
    assert.ok(times[1] < 1000, `median ${times[1]} ms`);
  });
});

describe('compressed transfer syntaxes against independent encoders', () => {
  const spec16: DicomSpec = { rows: 200, cols: 160, bitsStored: 12, windowCenter: 2048, windowWidth: 4096, viewPosition: 'PA' };
  const spec8: DicomSpec = { rows: 200, cols: 160, bitsAllocated: 8, bitsStored: 8, windowCenter: 128, windowWidth: 256 };
  const cases: { variant: Variant; spec: DicomSpec; tol?: { max: number; mean: number } }[] = [
    { variant: 'implicit', spec: spec16 },
    { variant: 'explicit-be', spec: spec16 },
    { variant: 'deflated', spec: spec16 },
    { variant: 'rle', spec: spec16 },
    { variant: 'rle', spec: spec8 },
    { variant: 'jpeg-lossless', spec: spec16 },
    { variant: 'jpeg-lossless-sv1', spec: spec16 },
    { variant: 'jpeg-lossless-sv1', spec: { ...spec16, bitsStored: 16 } },
    { variant: 'jpegls', spec: spec16 },
    { variant: 'jpegls-near', spec: spec16, tol: { max: 3 / 4096, mean: 2 / 4096 } },
    { variant: 'jpeg-baseline', spec: spec8, tol: { max: 0.12, mean: 0.01 } },
    { variant: 'jpeg-extended', spec: spec16, tol: { max: 0.12, mean: 0.01 } },
    { variant: 'j2k', spec: spec16 },
    { variant: 'j2k', spec: { ...spec16, pixelRepresentation: 1, pixels: Uint16Array.from(toStored(chestPattern(160, 200), 12), (v) => (v - 2048) & 0xffff), windowCenter: 0 } },
    { variant: 'j2k-lossy', spec: spec16, tol: { max: 0.15, mean: 0.01 } },
  ];
  for (const { variant, spec, tol } of cases) {
    const label = `${variant} (${spec.bitsAllocated ?? 16}-bit allocated, ${spec.bitsStored} stored${spec.pixelRepresentation ? ', signed' : ''}) ${tol ? 'within tolerance of' : 'reproduces exactly'} the uncompressed source`;
    test(label, async () => {
      const t = testContext();
      if (skipWithout(t, VARIANTS[variant].tool)) return;
      const src = makeDicom(spec);
      const compressed = compressedVariant(src, variant, spec);
      const ref = await decodeImage(src);
      const img = await decodeImage(compressed);
      assert.equal(img.meta.transferSyntaxUid, VARIANTS[variant].uid);
      assert.equal(img.width, ref.width);
      assert.equal(img.height, ref.height);
      assert.deepEqual(img.identifiers, ref.identifiers);
      if (!tol) {
        assert.equal(maxAbsDiff(img.data, ref.data), 0);
      } else {
        const max = maxAbsDiff(img.data, ref.data);
        const mean = meanAbsDiff(img.data, ref.data);
        assert.ok(max <= tol.max && mean <= tol.mean, `max ${max}, mean ${mean}`);
        assert.ok(max > 0 || variant === 'jpegls-near', 'a lossy codec changed something (the test would be vacuous otherwise)');
      }
    });
  }

  test('HTJ2K lossless (encoded by dcmjs-codecs itself: a round trip, not an independent check)', async () => {
    const src = makeDicom(spec16);
    const ref = await decodeImage(src);
    const img = await decodeImage(await htj2kVariant(src, spec16));
    assert.equal(img.meta.transferSyntaxUid, '1.2.840.10008.1.2.4.201');
    assert.equal(maxAbsDiff(img.data, ref.data), 0);
  });

  test('cross-check with dcmtk: JPEG Lossless MONOCHROME1 with rescale, rendered by dcmj2pnm', async () => {
    const t = testContext();
    if (skipWithout(t, 'dcmcjpeg') || skipWithout(t, 'dcmj2pnm')) return;
    const spec: DicomSpec = { rows: 120, cols: 100, bitsStored: 12, photometric: 'MONOCHROME1', rescaleSlope: 1, rescaleIntercept: -1000, windowCenter: 900, windowWidth: 2500 };
    const compressed = compressedVariant(makeDicom(spec), 'jpeg-lossless-sv1');
    const ours = await decodeImage(compressed);
    const theirsPng = dcm2pnm16(compressed, [900, 2500]);
    const { data, info } = await sharp(theirsPng).toColourspace('grey16').raw({ depth: 'ushort' }).toBuffer({ resolveWithObject: true });
    assert.equal(info.width, ours.width);
    assert.equal(info.height, ours.height);
    const theirs = new Uint16Array(data.buffer, data.byteOffset, data.byteLength / 2);
    const theirsF = Float32Array.from(theirs, (v) => v / 65535);
    const max = maxAbsDiff(ours.data, theirsF);
    assert.ok(max < 2e-3, `max difference to dcm2pnm ${max}`);
  });

  test('cross-check with dcmtk: VOI LUT Sequence after rescale, rendered by dcmj2pnm +Wl', async () => {
    const t = testContext();
    if (skipWithout(t, 'dcmj2pnm')) return;
    const lut = Array.from({ length: 1024 }, (_, i) => Math.round(Math.sqrt(i / 1023) * 4095));
    const dicom = makeDicom({
      rows: 40, cols: 50, rescaleIntercept: -1500, rescaleSlope: 1,
      extra: { VOILUTSequence: [{ LUTDescriptor: [1024, 0, 12], LUTData: lut, _vrMap: { LUTData: 'US' } }] },
    });
    const ours = await decodeImage(dicom);
    const { data } = await sharp(dcm2pnm16(dicom, 'voi-lut')).toColourspace('grey16').raw({ depth: 'ushort' }).toBuffer({ resolveWithObject: true });
    // dcmtk widens 12-bit LUT entries to 16 bits by shifting (4095 -> 65520).
    const theirs = Float32Array.from(new Uint16Array(data.buffer, data.byteOffset, data.byteLength / 2), (v) => (v >> 4) / 4095);
    assert.ok(maxAbsDiff(ours.data, theirs) <= QUANTUM, `max difference to dcmj2pnm ${maxAbsDiff(ours.data, theirs)}`);
  });

  test('JPEG 2000 decodes the same as OpenJPEG\'s own opj_decompress', async () => {
    const t = testContext();
    if (skipWithout(t, 'opj_compress')) return;
    // Lossless J2K equals the source, so equality with the source (above) is equality with OpenJPEG;
    // here the lossy stream, where the decoder matters, is compared with the source within tolerance
    // and with the lossless decode's metadata.
    const spec: DicomSpec = { ...spec16, rows: 64, cols: 64 };
    const lossy = await decodeImage(compressedVariant(makeDicom(spec), 'j2k-lossy', spec));
    assert.equal(lossy.meta.transferSyntaxUid, UID.j2k);
    assert.equal(lossy.meta.window?.source, 'dicom');
  });
});

describe('PNG and JPEG', () => {
  test('8-bit gray PNG: exact values', async () => {
    const samples = Uint8Array.from({ length: 96 * 80 }, (_, i) => i % 256);
    const img = await decodeImage(await makePng({ samples, bits: 8 }));
    assert.equal(img.meta.format, 'png');
    assert.equal(img.meta.bitsStored, 8);
    assert.deepEqual(img.identifiers, {});
    for (let i = 0; i < samples.length; i++) assert.ok(Math.abs(img.data[i] - samples[i] / 255) <= QUANTUM);
  });

  test('16-bit gray PNG keeps full precision (values 1/65535 apart stay distinct)', async () => {
    const samples = Uint16Array.from({ length: 96 * 80 }, (_, i) => 30000 + (i % 7));
    samples[0] = 0;
    samples[1] = 65535;
    const img = await decodeImage(await makePng({ samples, bits: 16 }));
    assert.equal(img.meta.bitsStored, 16);
    for (let i = 0; i < samples.length; i++) assert.ok(Math.abs(img.data[i] - samples[i] / 65535) <= QUANTUM, `${i}`);
    assert.notEqual(img.data[2], img.data[3]);
    assert.equal(img.data[0], 0);
    assert.equal(img.data[1], 1);
  });

  test('a 16-bit PNG holding 12-, 10- or 8-bit values is read against that bit depth (as a DICOM\'s BitsStored), not as a black picture', async () => {
    const gray = chestPattern(96, 80);
    for (const bits of [12, 10, 8]) {
      const top = 2 ** bits - 1;
      const samples = Uint16Array.from(gray, (v) => Math.round(v * top));
      samples[0] = top; // the full range of those bits is used
      const img = await decodeImage(await makePng({ samples, bits: 16 }));
      assert.equal(img.meta.bitsStored, bits);
      for (let i = 0; i < samples.length; i++) assert.ok(Math.abs(img.data[i] - samples[i] / top) <= QUANTUM, `${bits} bits, pixel ${i}`);
    }
    // One value above 12 bits: a 16-bit picture as before.
    const samples = Uint16Array.from(gray, (v) => Math.round(v * 4095));
    samples[0] = 4096;
    const img = await decodeImage(await makePng({ samples, bits: 16 }));
    assert.equal(img.meta.bitsStored, 16);
    assert.ok(Math.abs(img.data[1] - samples[1] / 65535) <= QUANTUM);
  });

  test('RGB / opaque RGBA / opaque gray+alpha PNG -> luma (Rec. 601); transparency refused', async () => {
    const w = 4;
    const rgb = Uint8Array.from([255, 0, 0, 0, 255, 0, 0, 0, 255, 200, 200, 200]);
    const img = await decodeImage(await makePng({ width: w, height: 1, channels: 3, samples: rgb }));
    const expect = [0.299, 0.587, 0.114, 200 / 255];
    expect.forEach((e, i) => assert.ok(Math.abs(img.data[i] - e) < 1e-3, `${i}: ${img.data[i]} vs ${e}`));
    const rgba = await decodeImage(await makePng({ width: w, height: 1, channels: 4, samples: Uint8Array.from([255, 0, 0, 255, 0, 255, 0, 255, 0, 0, 255, 255, 200, 200, 200, 255]) }));
    assert.deepEqual(Array.from(rgba.data), Array.from(img.data));
    const ga = await decodeImage(await makePng({ width: 2, height: 1, channels: 2, samples: Uint8Array.from([100, 255, 200, 255]) }));
    assert.ok(Math.abs(ga.data[0] - 100 / 255) <= QUANTUM && Math.abs(ga.data[1] - 200 / 255) <= QUANTUM);
    // Issue 10: transparency used to be dropped (the transparent half scored as white lung); now refused.
    await expectCode(decodeImage(await makePng({ width: w, height: 1, channels: 4, samples: Uint8Array.from([255, 0, 0, 10, 0, 255, 0, 20, 0, 0, 255, 30, 200, 200, 200, 0]) })), 'UNSUPPORTED_IMAGE');
    await expectCode(decodeImage(await makePng({ width: 2, height: 1, channels: 2, samples: Uint8Array.from([100, 0, 200, 255]) })), 'UNSUPPORTED_IMAGE');
    const rgb16 = await decodeImage(await makePng({ width: 2, height: 1, channels: 3, bits: 16, samples: Uint16Array.from([30000, 30000, 30000, 30001, 30001, 30001]) }));
    assert.ok(rgb16.data[1] > rgb16.data[0], '16-bit colour keeps precision');
    assert.ok(Math.abs(rgb16.data[0] - 30000 / 65535) <= QUANTUM);
  });

  test('JPEG (gray and RGB) within tolerance of the source', async () => {
    const gray = chestPattern(96, 80);
    const g = await decodeImage(await makeJpeg({ gray, quality: 95 }));
    assert.equal(g.meta.format, 'jpeg');
    assert.ok(meanAbsDiff(g.data, gray) < 0.01);
    const c = await decodeImage(await makeJpeg({ gray, channels: 3, quality: 95 }));
    assert.ok(meanAbsDiff(c.data, gray) < 0.015);
  });

  test('a JPEG whose image data is damaged is refused; stray bytes between its markers are not', async () => {
    const gray = chestPattern(160, 144);
    const jpg = await makeJpeg({ width: 160, height: 144, gray, quality: 90 });
    const sos = jpg.indexOf(Buffer.from([0xff, 0xda]));
    const mid = Math.floor((sos + jpg.length) / 2);
    // An end-of-image marker inside the scan (a file spliced or cut and re-terminated): libjpeg only warns, and the
    // rest of the picture would come out grey.
    const early = Buffer.concat([jpg.subarray(0, mid), Buffer.from([0xff, 0xd9]), jpg.subarray(mid)]);
    const e = await expectCode(decodeImage(early), 'CORRUPT');
    assert.match(e.message, /image data is damaged \(premature end of data segment\).*would be measured as grey; upload an undamaged copy/);
    // Three stray bytes after the first segment (some encoders write them): a warning about markers, not pixels.
    const at = 4 + jpg.readUInt16BE(4);
    const stray = Buffer.concat([jpg.subarray(0, at), Buffer.from([0x12, 0x34, 0x56]), jpg.subarray(at)]);
    await assert.rejects(sharp(stray, { failOn: 'warning' }).raw().toBuffer(), /3 extraneous bytes before marker/);
    const ok = await decodeImage(stray);
    const clean = await decodeImage(jpg);
    assert.deepEqual(Array.from(ok.data), Array.from(clean.data), 'decoded exactly as without the stray bytes');
  });

  test('a 12-bit JPEG file is refused as unsupported (not as damaged), with what to upload instead', async () => {
    const t = testContext();
    if (skipWithout(t, 'dcmcjpeg')) return;
    // dcmtk's extended (12-bit) JPEG, taken out of its DICOM: the codestream from SOI to EOI.
    const dicom = compressedVariant(makeDicom({ rows: 160, cols: 144, bitsStored: 12, pixels: toStored(chestPattern(144, 160), 12) }), 'jpeg-extended');
    const soi = dicom.indexOf(Buffer.from([0xff, 0xd8, 0xff]));
    const jpeg = dicom.subarray(soi, dicom.lastIndexOf(Buffer.from([0xff, 0xd9])) + 2);
    const e = await expectCode(decodeImage(jpeg), 'UNSUPPORTED_IMAGE');
    assert.match(e.message, /12-bit samples.*upload the DICOM, or a 16-bit PNG/);
  });

  test('EXIF orientation is applied to JPEG', async () => {
    // 40 x 20 (w x h), a bright block at the top-left; orientation 6 = rotate 90 degrees clockwise to display
    const width = 40;
    const height = 20;
    const gray = new Float32Array(width * height).fill(0.1);
    for (let y = 0; y < 6; y++) for (let x = 0; x < 6; x++) gray[y * width + x] = 0.9;
    const img = await decodeImage(await makeJpeg({ width, height, gray, orientation: 6 }));
    assert.equal(img.width, height);
    assert.equal(img.height, width);
    assert.ok(img.data[2 * img.width + (img.width - 3)] > 0.7, 'the block is now at the top-right');
    assert.ok(img.data[2 * img.width + 2] < 0.3);
  });
});

describe('hostile inputs', () => {
  test('the generated corpus: every input gives its InputError', async () => {
    for (const h of await hostileInputs()) {
      await expectCode(decodeImage(h.bytes), h.code).catch((e: Error) => {
        throw new Error(`${h.name}: ${e.message}`);
      });
    }
  });

  test('messages name the problem and what to do', async () => {
    const pdf = await expectCode(decodeImage(Buffer.from('%PDF-1.7\n...')), 'UNRECOGNISED_FORMAT');
    assert.match(pdf.message, /PDF/);
    assert.match(pdf.message, /DICOM.*PNG.*JPEG/);
    const corpus = await hostileInputs();
    const mpeg = await expectCode(decodeImage(corpus.find((h) => h.name === 'MPEG2 DICOM')!.bytes), 'UNSUPPORTED_TRANSFER_SYNTAX');
    assert.match(mpeg.message, /1\.2\.840\.10008\.1\.2\.4\.100/);
    assert.match(mpeg.message, /MPEG2/);
    assert.match(mpeg.message, /Explicit VR Little Endian \(1\.2\.840\.10008\.1\.2\.1\)/);
    assert.match(mpeg.message, /JPEG 2000/);
    const lat = await expectCode(decodeImage(makeDicom({ viewPosition: 'LATERAL' })), 'NOT_FRONTAL');
    assert.match(lat.message, /lateral views are not analysed; upload a PA or AP view/);
    await expectCode(decodeImage(makeDicom({ viewPosition: 'RL' })), 'NOT_FRONTAL');
    await expectCode(decodeImage(makeDicom({ extra: { PatientOrientation: ['P', 'F'] } })), 'NOT_FRONTAL');
    assert.equal((await decodeImage(makeDicom({ extra: { PatientOrientation: ['L', 'F'] } }))).width, 80, 'frontal orientation passes');
    assert.equal((await decodeImage(makeDicom({ viewPosition: 'PA', extra: { PatientOrientation: ['P', 'F'] } }))).width, 80, 'ViewPosition wins');
    await expectCode(decodeImage(makeDicom({ extra: { ViewCodeSequence: [{ CodeValue: 'R-10206', CodingSchemeDesignator: 'SRT', CodeMeaning: 'left lateral' }] } })), 'NOT_FRONTAL');
  });

  test('pixel limit: refused from the header, before decoding', async () => {
    const bomb = pngHeaderOnly(30000, 30000);
    const e = await expectCode(decodeImage(bomb), 'TOO_LARGE');
    assert.match(e.message, /30000 x 30000/);
    await expectCode(decodeImage(await makePng(), { maxPixels: 1000 }), 'TOO_LARGE');
    await expectCode(decodeImage(await makeJpeg(), { maxPixels: 1000 }), 'TOO_LARGE');
    await expectCode(decodeImage(makeDicom({ rows: 64, cols: 80 }), { maxPixels: 1000 }), 'TOO_LARGE');
    // A DICOM header that claims 60000 x 60000 pixels, with a few bytes of pixel data.
    await expectCode(decodeImage(makeDicom({ rows: 60000, cols: 60000, pixels: new Uint16Array(16) })), 'TOO_LARGE');
  });

  test('a deflated DICOM that inflates past the limit is refused (zip bomb)', async () => {
    const head = bareDataset(makeDicom({ rows: 8, cols: 8, pixels: new Uint16Array(64) }), true); // meta group, no preamble
    const metaLen = 12 + head.readUInt32LE(8);
    const part10 = Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), head.subarray(0, metaLen)]);
    const deflated = withTransferSyntax(part10, UID.deflatedLE);
    const bomb = Buffer.concat([deflated, deflateRawSync(Buffer.alloc(80 * 1024 * 1024))]);
    assert.ok(bomb.length < 200 * 1024);
    await expectCode(decodeImage(bomb, { maxPixels: 1000 }), 'TOO_LARGE');
  });

  test('concurrent decodes: corrupt compressed files do not break the good ones in flight', async () => {
    const t = testContext();
    if (skipWithout(t, 'dcmcjpls')) return;
    const good = compressedVariant(makeDicom({ rows: 48, cols: 48 }), 'jpegls');
    const ref = await decodeImage(good);
    const bad = Buffer.from(good);
    for (let i = bad.length - 400; i < bad.length - 10; i += 7) bad[i] ^= 0x5a;
    const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => decodeImage(i % 3 === 0 ? bad : good)));
    results.forEach((r, i) => {
      if (i % 3 === 0) {
        if (r.status === 'rejected') assert.ok(r.reason instanceof InputError, String(r.reason));
      } else {
        assert.equal(r.status, 'fulfilled', r.status === 'rejected' ? String(r.reason) : '');
        if (r.status === 'fulfilled') assert.deepEqual(Array.from(r.value.data), Array.from(ref.data));
      }
    });
    assert.ok(results.some((r, i) => i % 3 === 0 && r.status === 'rejected'), 'the corrupt file was refused');
  });

  test('random corruption never escapes as anything but an InputError', async () => {
    let seed = 12345;
    const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const sources: [string, Buffer][] = [
      ['dicom', makeDicom({ rows: 32, cols: 32 })],
      ['png', await makePng({ width: 32, height: 32 })],
      ['jpeg', await makeJpeg({ width: 32, height: 32 })],
    ];
    if (hasTool('dcmcjpls')) sources.push(['jpeg-ls dicom', compressedVariant(makeDicom({ rows: 32, cols: 32 }), 'jpegls')]);
    if (hasTool('dcmcrle')) sources.push(['rle dicom', compressedVariant(makeDicom({ rows: 32, cols: 32 }), 'rle')]);
    if (hasTool('opj_compress')) sources.push(['j2k dicom', compressedVariant(makeDicom({ rows: 32, cols: 32 }), 'j2k', { rows: 32, cols: 32 })]);
    let decoded = 0;
    let refused = 0;
    let total = 0;
    for (const [name, src] of sources) {
      // Fewer rounds for the WASM codecs: each trap costs a fresh codec instance (~0.1 s).
      const rounds = name.includes(' dicom') ? 24 : 60;
      total += rounds;
      for (let k = 0; k < rounds; k++) {
        const b = Buffer.from(src);
        const mode = k % 3;
        if (mode === 0) {
          for (let j = 0; j < 1 + Math.floor(rand() * 8); j++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
        } else if (mode === 1) {
          const at = Math.floor(rand() * b.length);
          b.fill(Math.floor(rand() * 256), at, Math.min(b.length, at + 1 + Math.floor(rand() * 64)));
        }
        const input = mode === 2 ? b.subarray(0, Math.floor(rand() * b.length)) : b;
        try {
          const img: DecodedImage = await decodeImage(input);
          assert.equal(img.data.length, img.width * img.height);
          decoded++;
        } catch (e) {
          assert.ok(e instanceof InputError, `${name} mutation ${k}: ${String(e)}`);
          refused++;
        }
      }
    }
    assert.ok(refused > 0 && decoded + refused === total);
    // The codecs still work after all those failures (a trapped WASM instance is replaced).
    const good = makeDicom({ rows: 32, cols: 32 });
    const ref = await decodeImage(good);
    for (const v of ['jpegls', 'rle'] as const) {
      if (!hasTool(VARIANTS[v].tool)) continue;
      const again = await decodeImage(compressedVariant(good, v));
      assert.deepEqual(Array.from(again.data), Array.from(ref.data));
    }
  });
});
