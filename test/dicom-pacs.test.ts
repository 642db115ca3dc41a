/**
 * The README's PACS command works: dcmtk's storescp on a loopback port stands in for the PACS, and the
 * documented `storescu -R -aec <AE> <host> <port> seg.dcm sr.dcm` sends our SEG and SR to it; what it
 * stored is our objects (same SOP instances, same SEG frames). Skipped where dcmtk is not installed.
 */
import { afterAll, describe, test } from '@jest/globals';
import { testContext } from './helpers/test-context';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { countMasks, decodeImage, loadSeverityConfig, scoreCounts } from '../src/core';
import { readSegFrames, writeDicomOutputs } from '../src/core/dicom-out';
import { hasTool, makeDicom } from './helpers/fixtures';
import { boxMasks } from './helpers/synthetic';

const freePort = () => new Promise<number>((resolve, reject) => {
  const s = createServer();
  s.once('error', reject);
  s.listen(0, '127.0.0.1', () => {
    const { port } = s.address() as { port: number };
    s.close(() => resolve(port));
  });
});

const accepting = (port: number) => new Promise<boolean>((resolve) => {
  const c = createConnection({ port, host: '127.0.0.1' });
  c.once('connect', () => { c.destroy(); resolve(true); });
  c.once('error', () => resolve(false));
});

describe('sending the SEG and SR to a PACS with dcmtk (storescp as the PACS)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cxr-pacs-'));
  let scp: ChildProcess | undefined;
  afterAll(() => {
    if (scp?.pid && scp.exitCode === null) process.kill(scp.pid);
    rmSync(dir, { recursive: true, force: true });
  });

  test('storescu -R -aec PACS_AE 127.0.0.1 <port> seg.dcm sr.dcm: both stored, unchanged', async () => {
    const t = testContext();
    if (!hasTool('storescp') || !hasTool('storescu')) {
      t.diagnostic('dcmtk not installed: skipped (apt-get install dcmtk)');
      return;
    }
    const img = await decodeImage(makeDicom({ rows: 160, cols: 192, pixelSpacing: [0.5, 0.5] }));
    const masks = boxMasks(192, 160);
    const out = writeDicomOutputs({
      source: img.dicomSource!, masks, model: { name: 'test-model', version: '0.0.1' }, identity: 'linked',
      secret: 'test-pseudonym-key-0123456789', seed: 'pacs-test', now: new Date('2024-01-01T00:00:00Z'),
    }, scoreCounts(countMasks(masks), loadSeverityConfig(), img.meta.pixelSpacingMm));
    const seg = join(dir, 'seg.dcm');
    const sr = join(dir, 'sr.dcm');
    writeFileSync(seg, out.seg);
    writeFileSync(sr, out.sr);

    const inbox = join(dir, 'pacs');
    mkdirSync(inbox);
    const port = await freePort();
    scp = spawn('storescp', ['-od', inbox, '-aet', 'PACS_AE', String(port)], { stdio: 'ignore' });
    for (let i = 0; i < 50 && !(await accepting(port)); i++) await new Promise((r) => setTimeout(r, 100));

    const r = spawnSync('storescu', ['-R', '-aec', 'PACS_AE', '127.0.0.1', String(port), seg, sr], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, `storescu failed: ${r.stdout}${r.stderr}`);
    const stored = readdirSync(inbox).sort();
    assert.equal(stored.length, 2, `storescp stored ${stored.join(', ')}`);
    const segStored = stored.find((f) => f.startsWith('SG.'));
    const srStored = stored.find((f) => f.startsWith('SRc.'));
    assert.ok(segStored && srStored, `a Segmentation (SG) and a Comprehensive SR (SRc): ${stored.join(', ')}`);

    const sent = readSegFrames(out.seg);
    const got = readSegFrames(readFileSync(join(inbox, segStored)));
    assert.equal(got.dataset.SOPInstanceUID, sent.dataset.SOPInstanceUID);
    assert.equal(got.dataset.StudyInstanceUID, sent.dataset.StudyInstanceUID, 'linked: filed in the source\'s study');
    got.frames.forEach((f, i) => assert.deepEqual(f.data, sent.frames[i]!.data, `frame ${i + 1} arrives unchanged`));
    assert.match(srStored, /^SRc\.2\.25\./, 'the SR is stored under its own SOP Instance UID');
  });
});
