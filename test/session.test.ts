/**
 * Loading a model (layers/onnx/session.ts): the model file must be the one its manifest names by checksum, checked
 * while onnxruntime builds the session, and a session is only handed out when it is.
 */
import { describe, test } from '@jest/globals';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { loadModel } from '../layers/onnx/session';
import { writeTinyModel } from './helpers/tiny-model';

const manifestOf = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as { file: string; sha256: string };

describe('loadModel', () => {
  test('loads a model whose file matches its manifest, and runs it', async () => {
    const manifest = writeTinyModel(mkdtempSync(join(tmpdir(), 'cxr-session-')), { size: 16 });
    const model = await loadModel(manifest, { threads: 1 });
    try {
      const out = await model.run(new Float32Array(16 * 16).fill(0.5), 1);
      assert.equal(out.length, 3 * 16 * 16);
    } finally {
      await model.release();
    }
  });

  test('refuses a valid model file that is not the manifest\'s, naming both checksums', async () => {
    const manifest = writeTinyModel(mkdtempSync(join(tmpdir(), 'cxr-session-')), { size: 16 });
    const other = writeTinyModel(mkdtempSync(join(tmpdir(), 'cxr-session-')), { size: 16, lungBelow: 0.7 });
    const m = manifestOf(manifest);
    // A model onnxruntime loads without complaint, but another one than the manifest's checksum names.
    const swapped = readFileSync(join(dirname(other), manifestOf(other).file));
    writeFileSync(join(dirname(manifest), m.file), swapped);
    const got = createHash('sha256').update(swapped).digest('hex');
    assert.notEqual(got, m.sha256);
    await assert.rejects(loadModel(manifest, { threads: 1 }), (e: Error) => {
      assert.match(e.message, /does not match its manifest/);
      assert.ok(e.message.includes(`sha256 ${got}, expected ${m.sha256}`), e.message);
      return true;
    });
  });

  test('a damaged model file is reported as not the manifest\'s, not as onnxruntime\'s parse error', async () => {
    const manifest = writeTinyModel(mkdtempSync(join(tmpdir(), 'cxr-session-')), { size: 16 });
    const file = join(dirname(manifest), manifestOf(manifest).file);
    writeFileSync(file, readFileSync(file).subarray(0, 100));
    await assert.rejects(loadModel(manifest, { threads: 1 }), /does not match its manifest.*re-export the model or fix the manifest/);
  });
});
