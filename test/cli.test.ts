/** The two command-line entry points, run in-process on generated files with the small test model. */
import { describe, test } from '@jest/globals';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { analyzeMain } from '../src/cli/analyze';
import { collectInputs, inputErrorReason } from '../src/cli/inputs';
import { startMain } from '../src/local/start';
import { pseudonymise } from '../src/core/pseudonym';
import { makeDicom } from './helpers/fixtures';
import { chestPixels, chestPng } from './helpers/synthetic';
import { writeTinyModel } from './helpers/tiny-model';
import { capture } from './helpers/capture';
import { data as dcmjsData } from 'dcmjs';

async function inputs() {
  const dir = mkdtempSync(join(tmpdir(), 'cxr-cli-'));
  mkdirSync(join(dir, 'in', 'sub'), { recursive: true });
  writeFileSync(join(dir, 'in', 'a.png'), await chestPng({ rightOpacity: 0.5 }));
  const { width, height, data } = chestPixels({ width: 160, height: 128, rightOpacity: 0.5 });
  writeFileSync(join(dir, 'in', 'sub', 'b'), makeDicom({ rows: height, cols: width, pixels: Uint16Array.from(data, (v) => Math.round(v * 4095)), windowCenter: 2048, windowWidth: 4096 }));
  writeFileSync(join(dir, 'in', 'notes.txt'), 'ignored: not an image extension');
  writeFileSync(join(dir, 'in', 'broken.jpg'), Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0x10]));
  return { dir, model: writeTinyModel(join(dir, 'model'), { size: 128 }) };
}

describe('command line', () => {
  test('collectInputs walks folders, keeps image files and extension-less DICOMs, names outputs uniquely', async () => {
    const { dir } = await inputs();
    assert.deepEqual(collectInputs([join(dir, 'in')]).map((i) => i.name), ['a.png', 'broken.jpg', 'sub__b']);
    assert.throws(() => collectInputs([join(dir, 'nope')]), /no such file or folder/);
  });

  test('collectInputs skips the run\'s own output folder, walks each folder once through links, and keeps unreadable images to report them', async () => {
    const { dir } = await inputs();
    const root = join(dir, 'in');
    // A previous run's outputs inside the folder given (same real folder, named two ways).
    mkdirSync(join(root, 'out', 'a.png'), { recursive: true });
    writeFileSync(join(root, 'out', 'a.png', 'overlay.png'), 'an earlier output');
    // A link loop, a second link to a folder already walked, a dangling link with an image's name and one without.
    symlinkSync(root, join(root, 'sub', 'loop'), 'dir');
    symlinkSync(join(root, 'sub'), join(root, 'sub-again'), 'dir');
    symlinkSync(join(dir, 'gone.png'), join(root, 'dangling.png'));
    symlinkSync(join(dir, 'gone.txt'), join(root, 'dangling.txt'));
    assert.deepEqual(collectInputs([root], { exclude: [join(root, 'out')] }).map((i) => i.name), ['a.png', 'broken.jpg', 'dangling.png', 'sub__b']);
    assert.deepEqual(collectInputs([root], { exclude: [join(root, 'sub-again', '..', 'out')] }).map((i) => i.name), ['a.png', 'broken.jpg', 'dangling.png', 'sub__b']);
    // Without the exclusion the earlier output is an input like any other file.
    assert.ok(collectInputs([root]).some((i) => i.name === 'out__a.png__overlay.png'));
  });

  test('an input that cannot be read is reported in its row, without its path (the table, results.csv, report.html)', async () => {
    const { dir, model } = await inputs();
    const root = join(dir, 'in');
    symlinkSync(join(dir, 'DOE^JOHN_gone.png'), join(root, 'DOE^JOHN.png'));
    // A named pipe with an image's name, in the folder and given by name: reading it would wait forever.
    execFileSync('mkfifo', [join(root, 'pipe.png')]);
    const out = join(dir, 'out');
    const { code, out: stdout } = await capture(() => analyzeMain([root, '--out', out, '--model', model, '--format', 'json']));
    assert.equal(code, 1);
    const lost = stdout.trim().split('\n').map((l) => JSON.parse(l) as { input: string; status: string; reason?: string; lostReason?: string })
      .find((l) => l.input === 'DOE^JOHN.png');
    assert.ok(lost, 'the dangling link has a row');
    assert.match(JSON.stringify(lost), /the file does not exist \(a broken link, or moved away during the run\) \(ENOENT on (stat|open)\)/);
    const rows = stdout.trim().split('\n').map((l) => JSON.parse(l) as { input: string; status: string });
    assert.match(JSON.stringify(rows.find((l) => l.input === 'pipe.png')), /"status":"LOST".*not a regular file but a named pipe \(FIFO\)/);
    const given = await capture(() => analyzeMain([join(root, 'pipe.png'), '--out', join(dir, 'out-pipe'), '--model', model, '--format', 'json']));
    assert.equal(given.code, 1);
    assert.match(given.out, /"status":"LOST".*named pipe/);
    for (const f of ['results.csv', 'report.html']) {
      const text = readFileSync(join(out, f), 'utf8');
      assert.ok(text.includes('the file does not exist'), `${f} gives the reason`);
      assert.ok(!text.includes('DOE^JOHN_gone') && !text.includes(dir), `${f} names no path`);
    }
    assert.equal(inputErrorReason(new Error(`bad bytes in ${join(root, 'x.png')}`), { path: join(root, 'x.png'), name: 'x.png' }), 'bad bytes in x.png');
  });

  test('pseudonyms are keyed by the output folder\'s own secret key (0600), never a built-in one', async () => {
    const { dir, model } = await inputs();
    const saved = process.env.PSEUDONYM_KEY;
    delete process.env.PSEUDONYM_KEY;
    try {
      const run = async (out: string) => {
        const { out: stdout } = await capture(() => analyzeMain([join(dir, 'in', 'sub'), '--out', out, '--model', model, '--format', 'json']));
        return (JSON.parse(stdout.trim().split('\n')[0]) as { patientKey?: string }).patientKey;
      };
      const first = await run(join(dir, 'out-a'));
      const again = await run(join(dir, 'out-a'));
      const other = await run(join(dir, 'out-b'));
      assert.match(first ?? '', /^pt_/);
      assert.equal(again, first, 'the same output folder keeps its key: stable pseudonyms across runs');
      assert.notEqual(other, first, 'another output folder has another key');
      const keyFile = join(dir, 'out-a', '.local-data', 'pseudonym.key');
      assert.equal(statSync(keyFile).mode & 0o777, 0o600);
      assert.equal(first, pseudonymise(readFileSync(keyFile, 'utf8').trim(), 'patient', 'PID-0042'));
      // The key the CLI used to fall back on, public in its source: its pseudonym of this patient is not the one given.
      assert.notEqual(first, pseudonymise('cxr-opacity-local-cli-key', 'patient', 'PID-0042'));
    } finally {
      if (saved !== undefined) process.env.PSEUDONYM_KEY = saved;
    }
  });

  test('cxr-opacity analyze writes the four files per input and reports failures with reasons', async () => {
    const { dir, model } = await inputs();
    const out = join(dir, 'out');
    const { code, out: stdout } = await capture(() => analyzeMain([join(dir, 'in'), '--out', out, '--model', model, '--format', 'json']));
    assert.equal(code, 1, 'exit 1 because one input failed');
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => [l.input, l.status]), [['a.png', 'SCORED'], ['broken.jpg', 'FAILED'], ['sub__b', 'SCORED']]);
    for (const name of ['a.png', 'sub__b']) {
      for (const f of ['lung.png', 'opacity.png', 'overlay.png', 'result.json']) assert.ok(existsSync(join(out, name, f)), `${name}/${f}`);
    }
    const dcm = JSON.parse(readFileSync(join(out, 'sub__b', 'result.json'), 'utf8'));
    assert.ok(Math.abs(dcm.opacityPctRight - 50) < 8, `DICOM right lung half opaque: ${dcm.opacityPctRight}`);
    assert.match(JSON.parse(readFileSync(join(out, 'broken.jpg', 'result.json'), 'utf8')).errorCode, /TRUNCATED|CORRUPT/);
    const csv = await capture(() => analyzeMain([join(dir, 'in', 'a.png'), '--out', out, '--model', model, '--format', 'csv']));
    assert.match(csv.out.split('\n')[0], /^input,status,opacity%/);
    assert.equal((await capture(() => analyzeMain([]))).code, 2);
  });

  test('npm start runs the local pipeline on files and writes outputs', async () => {
    const { dir, model } = await inputs();
    const out = join(dir, 'out-start');
    const { code, out: stdout } = await capture(() => startMain([join(dir, 'in', 'a.png'), join(dir, 'in', 'sub'), '--out', out, '--model', model]));
    assert.equal(code, 0, stdout);
    assert.match(stdout, /\[2\/2\]/);
    assert.match(stdout, /s per image/);
    for (const name of ['a.png', 'b']) assert.ok(existsSync(join(out, name, 'overlay.png')), name);
    // A named pipe among the inputs is reported LOST, not read (that would wait forever) and not skipped.
    execFileSync('mkfifo', [join(dir, 'in', 'sub', 'pipe.png')]);
    const withPipe = await capture(() => startMain([join(dir, 'in', 'sub'), '--out', join(dir, 'out-pipe'), '--model', model]));
    assert.match(withPipe.out, /LOST +not read: not a regular file but a named pipe \(FIFO\)/);
    const usage = await capture(() => startMain([]));
    assert.equal(usage.code, 2);
    assert.match(usage.out, /usage: npm start --/);
  });

  test('npm start --dicom-identity: deidentified SEG/SR beside a DICOM input; an unknown mode is refused before anything runs', async () => {
    const { dir, model } = await inputs();
    const out = join(dir, 'out-identity');
    const { code, out: stdout } = await capture(() => startMain([join(dir, 'in', 'sub'), '--out', out, '--model', model, '--dicom-identity', 'deidentified']));
    assert.equal(code, 0, stdout);
    const seg = readFileSync(join(out, 'b', 'seg.dcm'));
    const ds = dcmjsData.DicomMetaDictionary.naturalizeDataset(dcmjsData.DicomMessage.readFile(seg.buffer.slice(seg.byteOffset, seg.byteOffset + seg.byteLength) as ArrayBuffer).dict) as { Modality: string; PatientID: string };
    assert.equal(ds.Modality, 'SEG');
    assert.match(ds.PatientID, /^pt_/, 'deidentified: the keyed patient pseudonym');
    assert.ok(existsSync(join(out, 'b', 'sr.dcm')));
    const bad = await capture(() => startMain([join(dir, 'in', 'sub'), '--out', out, '--model', model, '--dicom-identity', 'bogus']));
    assert.equal(bad.code, 2);
  });
});
