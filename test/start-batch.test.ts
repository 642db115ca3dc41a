/**
 * `npm start` as a batch tool, run as a user runs it (the CLI spawned through tsx, as `npm start` does):
 * outputs appear while the run goes on, Ctrl-C stops it cleanly and the re-run resumes at once (also
 * after a hard kill, which leaves the segment stage's idempotency lock behind), reused results are
 * marked, output folders never overwrite another image, logs go to a file, --manifest gives PNG
 * inputs a patient, study and shifted date, --watch takes files as they arrive.
 */
import { describe, test } from '@jest/globals';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { formatTable } from '../src/cli/format';
import { shiftedStudyDate } from '../src/core/date-shift';
import { pseudonymise } from '../src/core/pseudonym';
import { readManifest } from '../src/local/manifest';
import { formatDuration, Progress } from '../src/local/progress';
import { startMain } from '../src/local/start';
import type { ResultItem } from '../src/pipeline/messages';
import { capture } from './helpers/capture';
import { chestPng } from './helpers/synthetic';
import { writeTinyModel } from './helpers/tiny-model';

const ROOT = join(__dirname, '..');
const START = join(ROOT, 'src', 'local', 'start.ts');
const KEY = 'k'.repeat(32);
const ENV = { ...process.env, PSEUDONYM_KEY: KEY, KEEP_SOURCE_KEYS: '', FORCE_COLOR: '0' };

interface Run { code: number | null; signal: NodeJS.Signals | null; out: string; err: string; ms: number }

/**
 * Spawns `npm start -- args` (node --import tsx src/local/start.ts); `onLine` sees each stdout line and
 * may signal the child.
 */
function runStart(args: string[], onLine?: (line: string, child: ReturnType<typeof spawn>) => void): Promise<Run> {
  const t0 = Date.now();
  const child = spawn(process.execPath, ['--import', 'tsx', START, ...args], { cwd: ROOT, env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let partial = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    partial += d.toString();
    const lines = partial.split('\n');
    partial = lines.pop()!;
    for (const l of lines) onLine?.(l, child);
  });
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  return new Promise((res) => child.on('close', (code, signal) => res({ code, signal, out, err, ms: Date.now() - t0 })));
}

/** n distinct synthetic chests (different opacity shares), large enough that each takes a moment. */
async function films(dir: string, n: number, prefix = 'film', size = { width: 1400, height: 1200 }) {
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < n; i++) writeFileSync(join(dir, `${prefix}${String(i).padStart(2, '0')}.png`), await chestPng({ ...size, rightOpacity: 0.1 + (0.8 * i) / n }));
}

const setup = () => {
  const dir = mkdtempSync(join(tmpdir(), 'cxr-start-'));
  return { dir, model: writeTinyModel(join(dir, 'model'), { size: 128 }) };
};

const result = (out: string, folder: string) => JSON.parse(readFileSync(join(out, folder, 'result.json'), 'utf8')) as ResultItem;

describe('npm start as a batch tool', () => {
  test('Ctrl-C stops cleanly with the finished outputs written; the re-run resumes at once and marks reused results', async () => {
    const { dir, model } = setup();
    await films(join(dir, 'in'), 10);
    const out = join(dir, 'out');
    const args = [join(dir, 'in'), '--out', out, '--model', model];
    let sawFirstOutput = false;
    const first = await runStart(args, (line, child) => {
      if (/^\[1\/10\] /.test(line) && !child.killed) {
        // Written as the image finished, while the run goes on.
        sawFirstOutput = existsSync(join(out, line.split(/\s+/)[1], 'overlay.png'));
        child.kill('SIGINT');
      }
    });
    assert.equal(first.code, 130, `exit 130 after Ctrl-C\n${first.out}\n${first.err}`);
    assert.ok(sawFirstOutput, 'the first image\'s overlay was on disk when its line was printed');
    assert.match(first.out, /interrupted: \d+ image\(s\) not done; run the same command again to resume/);
    const done1 = (first.out.match(/^\[\d+\/10\] /gm) ?? []).length;
    assert.ok(done1 >= 1 && done1 < 10, `stopped part-way (${done1} done)`);
    assert.doesNotMatch(first.out + first.err, /"level":/, 'no Powertools JSON on the terminal');
    const logs = readdirSync(join(out, 'logs'));
    assert.equal(logs.length, 1);
    const logLines = readFileSync(join(out, 'logs', logs[0]), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { level: string; message: string });
    assert.ok(logLines.some((l) => l.message === 'image segmented'), 'the handlers\' JSON logs are in OUT/logs/');
    assert.ok(existsSync(join(out, 'report.html')) && existsSync(join(out, 'results.csv')), 'report of what finished');

    const second = await runStart(args);
    assert.equal(second.code, 0, `${second.out}\n${second.err}`);
    assert.doesNotMatch(second.out, /LOST|IdempotencyAlreadyInProgress/);
    const reused = (second.out.match(/\(reused from an earlier run\)/g) ?? []).length;
    // Every image reported done before Ctrl-C is reused; an image whose result was recorded while the first run was
    // stopping (after its last line) is reused too: nothing is computed twice, nothing lost.
    assert.ok(reused >= done1 && reused < 10, `${reused} reused after ${done1} reported done: every finished image is reused, the rest computed`);
    assert.match(second.out, new RegExp(`10 of 10 image\\(s\\) done .*: 10 scored, 0 failed, 0 lost; ${reused} reused from an earlier run`));
    assert.match(second.out, /SCORED \(reused\)/, 'the summary table marks reused rows');
    const mapping = JSON.parse(readFileSync(join(out, 'source-mapping.json'), 'utf8')) as { images: { output: string; reused?: boolean }[] };
    assert.equal(mapping.images.length, 10);
    assert.equal(mapping.images.filter((e) => e.reused).length, reused);
    const csv = parse(readFileSync(join(out, 'results.csv'), 'utf8'), { columns: true }) as Record<string, string>[];
    assert.equal(csv.length, 10);
  });

  test('after a hard kill (an image mid-handler, its idempotency lock left behind) the re-run finishes at once', async () => {
    const { dir, model } = setup();
    await films(join(dir, 'in'), 6);
    const out = join(dir, 'out');
    const args = [join(dir, 'in'), '--out', out, '--model', model];
    const first = await runStart(args, (line, child) => { if (/^\[1\/6\] /.test(line)) child.kill('SIGKILL'); });
    assert.equal(first.signal, 'SIGKILL');
    const second = await runStart(args);
    assert.equal(second.code, 0, `${second.out}\n${second.err}`);
    assert.doesNotMatch(second.out, /LOST|IdempotencyAlreadyInProgress|dead-lettered/);
    assert.match(second.out, /resuming: \d+ record\(s\) of an interrupted run cleared/);
    // A stale lock would hold the interrupted image for the segment timeout (120 s).
    assert.ok(second.ms < 60_000, `re-run took ${second.ms} ms`);
  });

  test('output folders never overwrite another image: same name in two folders and in a later run; --manifest and --watch', async () => {
    const { dir, model } = setup();
    const out = join(dir, 'out');
    mkdirSync(join(dir, 'a'));
    mkdirSync(join(dir, 'b'));
    writeFileSync(join(dir, 'a', 'chest.png'), await chestPng({ rightOpacity: 0.2 }));
    writeFileSync(join(dir, 'b', 'chest.png'), await chestPng({ rightOpacity: 0.6 }));
    writeFileSync(join(dir, 'manifest.csv'), 'file,patient_id,study_id,acquired_at\na/chest.png,PAT-7,ST-1,2020-03-10\nb/chest.png,PAT-7,ST-2,2020-03-14\n');
    const run = (paths: string[], extra: string[] = []) => capture(() => startMain([...paths, '--out', out, '--model', model, ...extra]));
    process.env.PSEUDONYM_KEY = KEY;
    try {
      const one = await run([join(dir, 'a', 'chest.png')], ['--manifest', join(dir, 'manifest.csv')]);
      assert.equal(one.code, 0, one.out);
      // The manifest's row for b/chest.png matched no input of this run: said, not silently ignored.
      assert.match(one.out, /manifest: 1 row\(s\) matched no input of this run; 0 PNG\/JPEG input\(s\) had no row/);
      const a = result(out, 'chest.png');
      const two = await run([join(dir, 'b', 'chest.png')], ['--manifest', join(dir, 'manifest.csv')]);
      assert.equal(two.code, 0, two.out);
      assert.deepEqual(result(out, 'chest.png'), a, 'the first run\'s chest.png is untouched');
      const other = readdirSync(out).filter((f) => f.startsWith('chest.png~'));
      assert.equal(other.length, 1, 'the second chest.png has its own folder');
      const b = result(out, other[0]);
      assert.equal(other[0], `chest.png~${b.imageId.slice(0, 8)}`);
      assert.notEqual(b.imageId, a.imageId);
      // The same film again: reused, into its own folder.
      const again = await run([join(dir, 'b', 'chest.png')], ['--manifest', join(dir, 'manifest.csv')]);
      assert.match(again.out, new RegExp(`${other[0].replace('.', '\\.')}  SCORED .*\\(reused from an earlier run\\)`));
      assert.equal(readdirSync(out).filter((f) => f.startsWith('chest.png')).length, 2);

      // --manifest: the patient, study and date of a PNG, pseudonymised and shifted as a DICOM's tags are.
      const patientKey = pseudonymise(KEY, 'patient', 'PAT-7')!;
      assert.equal(a.patientKey, patientKey);
      assert.equal(b.patientKey, patientKey, 'one patient across both films');
      assert.equal(a.studyKey, pseudonymise(KEY, 'study', 'ST-1'));
      assert.equal(a.studyDate, shiftedStudyDate(KEY, patientKey, '2020-03-10'));
      assert.equal(b.studyDate, shiftedStudyDate(KEY, patientKey, '2020-03-14'));
      assert.equal((Date.parse(b.studyDate!) - Date.parse(a.studyDate!)) / 86_400_000, 4, 'the interval is kept');
      for (const f of ['results.csv', 'report.html', join('chest.png', 'result.json')]) {
        const text = readFileSync(join(out, f), 'utf8');
        assert.ok(!text.includes('PAT-7') && !text.includes('2020-03-1') && !text.includes('ST-1'), `${f}: no raw id or date`);
      }
      for (const f of readdirSync(join(out, 'logs'))) assert.ok(!/PAT-7|2020-03-1|ST-1/.test(readFileSync(join(out, 'logs', f), 'utf8')), 'logs: no raw id or date');
    } finally {
      delete process.env.PSEUDONYM_KEY;
    }

    // --watch: files copied into the folder while it runs are processed as they arrive; Ctrl-C ends it.
    const inbox = join(dir, 'inbox');
    mkdirSync(inbox);
    const wout = join(dir, 'wout');
    let copied = false;
    const watched = await runStart(['--watch', inbox, '--out', wout, '--model', model], (line, child) => {
      if (!copied && line.startsWith('model ')) {
        copied = true;
        setTimeout(() => copyFileSync(join(dir, 'a', 'chest.png'), join(inbox, 'one.png')), 300);
        setTimeout(() => copyFileSync(join(dir, 'b', 'chest.png'), join(inbox, 'two.png')), 1500);
      }
      if (/^\[2\/2\] /.test(line)) child.kill('SIGINT');
    });
    assert.equal(watched.code, 0, `${watched.out}\n${watched.err}`);
    assert.match(watched.out, /watching /);
    assert.match(watched.out, /2 of 2 image\(s\) done/);
    for (const f of ['one.png', 'two.png']) assert.equal(result(wout, f).status, 'SCORED');
  });

  test('usage without inputs, manifest errors, whole error reasons in the table', async () => {
    const usage = await capture(() => startMain([]));
    assert.equal(usage.code, 2);
    assert.match(usage.out, /npm start needs the chest X-rays to analyse: pass a folder/);
    const dir = mkdtempSync(join(tmpdir(), 'cxr-manifest-'));
    const m = (text: string) => {
      writeFileSync(join(dir, 'm.csv'), text);
      return () => readManifest(join(dir, 'm.csv'));
    };
    assert.throws(m('file,patient,acquired_at\nx.png,P,2020-01-01\n'), /unknown: patient/);
    assert.throws(m('file,acquired_at\nx.png,10/03/2020\n'), /row 1, acquired_at: not a date/);
    assert.throws(m('file,patient_id\nx.png,Müller\n'), /row 1, patient_id: only printable ASCII/);
    assert.throws(m(`file,study_id\nx.png,${'S'.repeat(129)}\n`), /row 1, study_id: only printable ASCII, up to 128 characters/);
    assert.doesNotThrow(m('\ufefffile,patient_id\nx.png,P1\n'));
    // The terminal bar (cli-progress): our rate and ETA, not cli-progress's own {eta} (which counts reused images).
    let drawn = '';
    const tty = Object.assign(new PassThrough(), { isTTY: true, columns: 200, cursorTo: () => true, clearLine: () => true, moveCursor: () => true, clearScreenDown: () => true });
    tty.on('data', (d: Buffer) => { drawn += d.toString(); });
    const bar = new Progress(3, { tty: true, stream: tty as unknown as NodeJS.WriteStream });
    bar.started();
    bar.finish('scored', 'a.png  SCORED');
    bar.finish('failed', 'b.png  FAILED  X: why', true);
    bar.stop();
    assert.match(drawn, /2\/3 \| [\d.]+ img\/s \| ETA \d+s \| 1 scored, 1 failed, 0 lost, 1 reused/);
    assert.match(drawn, /\[1\/3\] a\.png {2}SCORED/);
    assert.equal(formatDuration(3725), '1h02m');
    assert.equal(formatDuration(245), '4m05s');
    const reason = `${'a long refusal reason '.repeat(8)}END`;
    const table = formatTable([{ input: 'x.png', refused: { code: 'TOO_LARGE', reason } }]);
    assert.ok(table.includes(`TOO_LARGE: ${reason}`), 'the reason is not cut');
  });
});
