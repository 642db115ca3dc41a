/**
 * Makes docs/seg-viewer.png for the README: our DICOM SEG laid over its source image, as read back by an
 * independent reader (pydicom, docs/seg-viewer.py), rendered by headless Chromium.
 *
 *   npx tsx docs/make-seg-viewer.ts [--keep DIR]      (--keep: leave source.dcm, seg.dcm, sr.dcm, viewer.html in DIR)
 *
 * The source is the synthetic phantom of docs/phantom.ts written as a 12-bit DICOM with made-up identifiers
 * (never a patient image). The masks are the phantom's own drawn lung fields and haze, encoded with
 * writeDicomOutputs (identity `linked`, so the objects share the source's study): model 2.0.0's guard
 * refuses the phantom (it is a drawing, not a radiograph), so this picture shows the encoding, not the
 * model. The script checks that the frames pydicom decodes have exactly the mask pixel counts, that
 * dciodvfy finds no error in seg.dcm and sr.dcm, and prints both.
 * Needs: /usr/bin/python3 with pydicom, numpy, Pillow; chromium; dciodvfy (dicom3tools) for the check.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { countMasks, decodeImage, loadSeverityConfig, scoreCounts } from '../src/core';
import { SEGMENTS, writeDicomOutputs } from '../src/core/dicom-out';
import { makeDicom } from '../test/helpers/fixtures';
import { phantom, phantomMasks } from './phantom';

const W = 768, H = 768;
const SECRET = 'documentation-example-key';
const NOTE = 'Synthetic phantom with made-up identifiers, not a patient. The masks are the phantom\'s own drawn lung fields and haze, '
  + 'encoded by writeDicomOutputs (identity linked): model 2.0.0\'s guard refuses the phantom, so this shows the encoding, not the model.';

function run(cmd: string, args: string[]): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 120_000 });
  if (r.error) throw r.error;
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

async function main() {
  const keepAt = process.argv.indexOf('--keep');
  const dir = keepAt > 0 ? resolve(process.argv[keepAt + 1] ?? 'seg-viewer') : mkdtempSync(join(tmpdir(), 'seg-viewer-'));
  mkdirSync(dir, { recursive: true });

  // The source: the blurred phantom as 12-bit MONOCHROME2, 0.35 mm pixels, synthetic identifiers.
  const gray = await sharp(phantom(W, H), { raw: { width: W, height: H, channels: 1 } }).blur(3).toColourspace('b-w').raw().toBuffer();
  const pixels = Uint16Array.from(gray, (g) => g * 16);
  const source = makeDicom({
    rows: H, cols: W, bitsAllocated: 16, bitsStored: 12, pixels, pixelSpacing: [0.35, 0.35], viewPosition: 'PA',
    patientName: 'PHANTOM^SYNTHETIC', patientId: 'PHANTOM-0001', birthDate: '19700101', institutionName: 'none',
    studyInstanceUid: '2.25.1234567890123456789', studyDate: '20240101', studyTime: '120000', extra: { PatientOrientation: ['L', 'F'] },
  });
  const img = await decodeImage(source);
  if (!img.dicomSource) throw new Error('the phantom DICOM has no DICOM source refs');
  const masks = phantomMasks(W, H);
  const counts = countMasks(masks);
  const score = scoreCounts(counts, loadSeverityConfig(), img.meta.pixelSpacingMm);
  const { seg, sr } = writeDicomOutputs({
    source: img.dicomSource, masks, model: { name: 'cxr-unet-r18', version: '2.0.0' }, identity: 'linked', secret: SECRET,
    seed: 'docs-seg-viewer', now: new Date('2024-01-01T12:00:00Z'),
  }, score);
  const file = (n: string) => join(dir, n);
  writeFileSync(file('source.dcm'), source);
  writeFileSync(file('seg.dcm'), seg);
  writeFileSync(file('sr.dcm'), sr);

  // Independent read-back and page.
  const py = run('/usr/bin/python3', [join(__dirname, 'seg-viewer.py'), file('source.dcm'), file('seg.dcm'), file('sr.dcm'), file('viewer.html'), file('summary.json'), NOTE]);
  if (py.status !== 0) throw new Error(`seg-viewer.py failed: ${py.out}`);
  const summary = JSON.parse(readFileSync(file('summary.json'), 'utf8')) as { frames: { frame: number; segment: number; pixels: number }[]; checks: Record<string, boolean> };
  for (const f of summary.frames) {
    const def = SEGMENTS.find((s) => s.number === f.segment)!;
    const want = masks[def.key].data.reduce((a, v) => a + v, 0);
    if (f.pixels !== want) throw new Error(`frame ${f.frame} (${def.label}): pydicom reads ${f.pixels} pixels, the mask has ${want}`);
    console.log(`frame ${f.frame} = segment ${f.segment} ${def.label}: ${f.pixels} pixels, as written`);
  }
  const failed = Object.entries(summary.checks).filter(([, ok]) => !ok).map(([k]) => k);
  if (failed.length) throw new Error(`reference checks failed: ${failed.join('; ')}`);
  console.log(`references: ${Object.keys(summary.checks).join('; ')}: all true`);

  // dciodvfy (dicom3tools), when installed: errors fail the script; warnings are printed (README explains them).
  for (const n of ['seg.dcm', 'sr.dcm']) {
    const v = spawnSync('dciodvfy', [file(n)], { encoding: 'utf8' });
    if (v.error) {
      console.log(`dciodvfy not found: ${n} not validated`);
      continue;
    }
    const lines = `${v.stdout}${v.stderr}`.split('\n');
    const errors = lines.filter((l) => l.startsWith('Error'));
    const warnings = lines.filter((l) => l.startsWith('Warning'));
    console.log(`dciodvfy ${n}: ${errors.length} errors, ${warnings.length} warnings`);
    for (const w of new Set(warnings)) console.log(`  ${w}`);
    if (errors.length) throw new Error(`dciodvfy ${n}:\n${errors.join('\n')}`);
  }

  // Headless Chromium screenshot of the page, then a small palette PNG.
  const shot = file('shot.png');
  const c = run('chromium', ['--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', '--force-device-scale-factor=1',
    '--window-size=1100,675', `--screenshot=${shot}`, `file://${file('viewer.html')}`]);
  if (c.status !== 0) throw new Error(`chromium failed: ${c.out}`);
  const out = join(__dirname, 'seg-viewer.png');
  writeFileSync(out, await sharp(shot).png({ compressionLevel: 9, palette: true, colours: 256, dither: 0.6 }).toBuffer());
  const kb = Math.round(readFileSync(out).length / 1024);
  console.log(`${out}: ${kb} KB; opacity ${score.opacityPct.total?.toFixed(1)}% (right ${score.opacityPct.right?.toFixed(1)}%), grade ${score.grade.label}`);
  if (keepAt < 0) rmSync(dir, { recursive: true, force: true });
  else console.log(`objects and page kept in ${dir}`);
}

main().catch((e) => { console.error(e); process.exitCode = 1; });
