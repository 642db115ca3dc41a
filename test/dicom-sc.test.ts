/**
 * The overlay as a DICOM Secondary Capture (src/core/dicom-out/sc.ts), for viewers without SEG support:
 * dciodvfy reports no error in any identity mode, its pixels are exactly the overlay PNG's, it references
 * the source image, and the identity modes hold as for the SEG and SR (deidentified: no source identifier;
 * linked: the source's study and UIDs). dcmtk's dcm2pnm reads it back to the same pixels.
 */
import { afterAll, describe, test } from '@jest/globals';
import { testContext } from './helpers/test-context';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { data as dcmjsData } from 'dcmjs';
import sharp from 'sharp';
import { composeOverlay, decodeImage, overlayPng } from '../src/core';
import { buildOverlayCapture, IDENTITY_MODES } from '../src/core/dicom-out';
import { DEFAULT_IDENTIFIERS, hasTool, makeDicom } from './helpers/fixtures';
import { boxMasks } from './helpers/synthetic';

const naturalize = (b: Uint8Array) => {
  const f = dcmjsData.DicomMessage.readFile(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer);
  return dcmjsData.DicomMetaDictionary.naturalizeDataset(f.dict);
};

describe('Secondary Capture of the overlay', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'cxr-sc-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  for (const identity of IDENTITY_MODES) {
    test(`identity ${identity}: valid SC (dciodvfy), the overlay's pixels, referencing the source`, async () => {
      const t = testContext();
      const source = makeDicom({ rows: 160, cols: 192, pixelSpacing: [0.5, 0.5], extra: { PatientOrientation: ['L', 'F'] } });
      const img = await decodeImage(source);
      // As the segment stage does: the capture from the overlay's pixels, the PNG from the same pixels.
      const rgb = composeOverlay(img, boxMasks(192, 160));
      const overlay = await overlayPng(rgb);
      const sc = buildOverlayCapture({
        source: img.dicomSource!, model: { name: 'test-model', version: '0.0.1' }, identity, secret: 'test-pseudonym-key-0123456789',
        seed: 'sc-test', patientKey: 'pt_0123456789abcdef', now: new Date('2024-01-01T00:00:00Z'),
      }, rgb);
      const ds = naturalize(sc);
      const src = naturalize(source);
      assert.equal(ds.SOPClassUID, '1.2.840.10008.5.1.4.1.1.7');
      assert.equal(ds.PhotometricInterpretation, 'RGB');
      const raw = await sharp(overlay).removeAlpha().raw().toBuffer({ resolveWithObject: true });
      assert.equal(ds.Columns, raw.info.width);
      assert.equal(ds.Rows, raw.info.height);
      assert.deepEqual(Buffer.from((ds.PixelData as ArrayBuffer[])[0]!).subarray(0, raw.data.length), raw.data, 'the overlay PNG\'s pixels');

      const refd = (ds.SourceImageSequence as { ReferencedSOPInstanceUID: string }[])[0]!.ReferencedSOPInstanceUID;
      if (identity === 'linked') {
        assert.equal(refd, src.SOPInstanceUID);
        assert.equal(ds.StudyInstanceUID, src.StudyInstanceUID, 'filed in the source\'s study');
        assert.equal(ds.PatientID, DEFAULT_IDENTIFIERS.patientId);
      } else {
        assert.notEqual(refd, src.SOPInstanceUID, 'the source only by a keyed pseudonym UID');
        const text = JSON.stringify({ ...ds, PixelData: undefined });
        for (const v of [...Object.values(DEFAULT_IDENTIFIERS), String(src.SOPInstanceUID), String(src.SeriesInstanceUID), '20200315']) {
          assert.ok(!text.includes(v), `${identity}: ${v} not in the object`);
        }
        if (identity === 'deidentified') assert.equal(ds.PatientID, 'pt_0123456789abcdef');
      }

      const file = join(tmp, `sc-${identity}.dcm`);
      writeFileSync(file, sc);
      if (!hasTool('dciodvfy')) t.diagnostic('dciodvfy not installed: not validated (apt-get install dicom3tools)');
      else {
        const out = spawnSync('dciodvfy', [file], { encoding: 'utf8' });
        const lines = `${out.stdout}${out.stderr}`.split('\n');
        assert.deepEqual(lines.filter((l) => l.startsWith('Error')), [], `dciodvfy errors:\n${lines.join('\n')}`);
        // Expected: empty type 2 Patient ID / Study Date / Study Time / Study ID (DICOMDIR), as for the SEG and SR.
        const unexpected = lines.filter((l) => l.startsWith('Warning') && !/needed to build DICOMDIR - (Patient ID|Study Date|Study Time|Study ID)$/.test(l));
        assert.deepEqual(unexpected, [], `unexpected dciodvfy warnings:\n${lines.join('\n')}`);
      }
      if (hasTool('dcm2pnm')) {
        const ppm = join(tmp, `sc-${identity}.ppm`);
        const r = spawnSync('dcm2pnm', ['+op', file, ppm], { encoding: 'utf8' });
        assert.equal(r.status, 0, r.stderr);
        const p = readFileSync(ppm);
        assert.deepEqual(p.subarray(p.length - raw.data.length), raw.data, 'dcmtk reads the same pixels');
      }
    });
  }
});
