/**
 * The segment function's container image, checked without a Docker daemon: the build context that
 * .dockerignore lets through, the Dockerfile's instructions, and the esbuild bundle step run exactly as the
 * Dockerfile runs it, then loaded with the externals it leaves to node_modules.
 */
import { describe, test } from '@jest/globals';
import { testContext } from './helpers/test-context';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DockerIgnoreStrategy } from 'aws-cdk-lib';
import { DEFAULT_MODEL_FILE, MODEL_FILES } from '../layers/onnx/model-files';

const ROOT = join(__dirname, '..');
const dockerfile = readFileSync(join(ROOT, 'functions', 'segment', 'Dockerfile'), 'utf8');
/** Dockerfile instructions with line continuations joined and comments dropped. */
const instructions = dockerfile.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
const ignorePatterns = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
const ignore = new DockerIgnoreStrategy(ROOT, ignorePatterns);
const ignored = (rel: string): boolean => ignore.ignores(join(ROOT, rel));

describe('segment image build context (.dockerignore)', () => {
  test('lets through what the image build reads', () => {
    for (const p of ['package.json', 'package-lock.json', 'tsconfig.json', 'functions/segment/handler.ts',
      'src/aws/observability.ts', 'src/core/index.ts', 'layers/onnx/session.ts', 'models/severity.json', 'models/cxr-unet-r18.json', 'models/cxr-unet-r18.onnx',
      'models/cxr-unet-r18-int8.json', 'models/cxr-unet-r18-int8.onnx', 'layers/onnx/model-files.ts']) {
      assert.equal(ignored(p), false, `${p} reaches the build`);
    }
  });

  test('keeps out dependencies, build outputs, VCS, training data and tests', () => {
    for (const p of ['node_modules/sharp/package.json', 'functions/node_modules/x.js', 'cdk.out/manifest.json', 'out/a/result.json',
      '.git/HEAD', 'models/training/checkpoints/best.pt', 'models/training/train.py', 'test/cdk.test.ts', 'README.md',
      '.local-data/x', 'src/core/decode.test.ts']) {
      assert.equal(ignored(p), true, `${p} stays out of the build`);
    }
  });

  test('every COPY source from the context exists and is not ignored', () => {
    const copies = instructions.filter((l) => /^COPY\s/.test(l) && !/--from=/.test(l));
    assert.ok(copies.length >= 5);
    for (const line of copies) {
      const parts = line.split(/\s+/).slice(1).filter((p) => !p.startsWith('--'));
      for (const src of parts.slice(0, -1)) {
        assert.ok(existsSync(join(ROOT, src)), `${src} exists`);
        const isDir = statSync(join(ROOT, src)).isDirectory();
        const out = isDir ? ignore.completelyIgnores(join(ROOT, src)) : ignored(src);
        assert.equal(out, false, `${src} is in the context`);
      }
    }
  });
});

describe('segment Dockerfile', () => {
  test('builds on the Lambda Node.js 22 base image, multi-stage, and runs handler.handler', () => {
    const froms = instructions.filter((l) => l.startsWith('FROM '));
    assert.ok(froms.length >= 3, 'build, deps and final stages');
    assert.match(dockerfile, /ARG BASE_IMAGE=public\.ecr\.aws\/lambda\/nodejs:22\b/);
    assert.equal(instructions.at(-1), 'CMD ["handler.handler"]');
  });

  test('skips the onnxruntime-node CUDA download and installs from the lock file', () => {
    assert.match(dockerfile, /ENV ONNXRUNTIME_NODE_INSTALL=skip/);
    assert.ok(instructions.some((l) => /RUN npm ci$/.test(l) || /RUN npm ci\s/.test(l)), 'npm ci in the build stage');
    assert.ok(instructions.some((l) => /npm ci --omit=dev/.test(l)), 'production-only node_modules in the final image');
    assert.ok(!/npm install\b/.test(dockerfile), 'never npm install (not reproducible)');
  });

  test('copies the model and manifests to /var/task/models, where MODEL_MANIFEST points', () => {
    assert.match(dockerfile, /COPY --from=build \/build\/dist\/ \$\{LAMBDA_TASK_ROOT\}\//);
    assert.match(dockerfile, /dist\/models/);
    // The image bakes the default model (layers/onnx/model-files.ts, where the CDK's MODEL_MANIFEST points) and the fp32 one.
    for (const file of Object.values(MODEL_FILES)) assert.ok(dockerfile.includes(`"${file}"`), `the image build copies and checks ${file}`);
    assert.ok(Object.values(MODEL_FILES).includes(DEFAULT_MODEL_FILE as (typeof MODEL_FILES)[keyof typeof MODEL_FILES]));
    const sagemaker = readFileSync(join(ROOT, 'functions', 'sagemaker', 'Dockerfile'), 'utf8');
    assert.match(sagemaker, new RegExp(`ARG MODEL_MANIFEST=models/${DEFAULT_MODEL_FILE.replace(/\./g, '\\.')}\n`), 'the SageMaker image defaults to the same model');
  });

  test('both exported models match their manifests (what the image build checks)', () => {
    const t = testContext();
    for (const name of Object.values(MODEL_FILES)) {
      const manifestPath = join(ROOT, 'models', name);
      if (!existsSync(manifestPath)) {
        t.skip(`models/${name} not exported yet; the image build would stop with a clear message`);
        return;
      }
      const m = JSON.parse(readFileSync(manifestPath, 'utf8')) as { file: string; sha256: string; guard?: string };
      // the segmentation model and the guard it names: both reach the image and match their manifests
      const all = [m, ...(m.guard ? [JSON.parse(readFileSync(join(ROOT, 'models', m.guard), 'utf8')) as { file: string; sha256: string }] : [])];
      assert.ok(m.guard, `${name} names its guard`);
      assert.match(dockerfile, /m\.guard/, 'the image build copies and checks the guard too');
      for (const x of all) {
        const onnx = join(ROOT, 'models', x.file);
        assert.ok(existsSync(onnx), `${x.file} exists`);
        assert.equal(ignored(`models/${x.file}`), false);
        assert.equal(createHash('sha256').update(readFileSync(onnx)).digest('hex'), x.sha256);
      }
    }
  });

  test('the Dockerfile esbuild steps bundle the segment and API handlers, which then load with only the externals', () => {
    const lines = instructions.filter((l) => l.startsWith('RUN npx esbuild '));
    assert.deepEqual(lines.map((l) => l.split(/\s+/)[3]), ['functions/segment/handler.ts', 'functions/api/handler.ts'], 'esbuild steps');
    for (const line of lines) {
      const args = line.replace(/^RUN npx esbuild /, '').split(/\s+/);
      const externals = args.filter((a) => a.startsWith('--external:')).map((a) => a.slice('--external:'.length)).sort();
      assert.deepEqual(externals, ['dcmjs-codecs', 'onnxruntime-node', 'sharp']);
      assert.ok(args.includes('--platform=node') && args.includes('--target=node22') && args.includes('--bundle'));

      const out = mkdtempSync(join(tmpdir(), 'cxr-segment-bundle-'));
      const esbuildArgs = args.map((a) => (a.startsWith('--outfile=') ? `--outfile=${join(out, 'handler.js')}` : a));
      execFileSync(join(ROOT, 'node_modules', '.bin', 'esbuild'), [...esbuildArgs, '--log-level=error'], { cwd: ROOT, stdio: 'pipe' });
      // Load it from outside the repository, resolving only the externals from node_modules (as in the image).
      const loaded = execFileSync(process.execPath, ['-e', `
        const m = require(${JSON.stringify(join(out, 'handler.js'))});
        const resolved = Object.keys(require.cache).filter((k) => k.includes('node_modules')).map((k) => k.split('node_modules/')[1].split('/')[0]);
        process.stdout.write(JSON.stringify({ handler: typeof m.handler, modules: [...new Set(resolved)] }));
      `], { cwd: out, env: { ...process.env, NODE_PATH: join(ROOT, 'node_modules'), NODE_OPTIONS: '', UPLOADS_BUCKET: 'u', RESULTS_BUCKET: 'r', RESULTS_TABLE: 't' }, encoding: 'utf8' });
      const { handler, modules } = JSON.parse(loaded) as { handler: string; modules: string[] };
      assert.equal(handler, 'function');
      // Everything loaded from node_modules at start-up is one of the externals or their own dependencies.
      const allowed = new Set(['sharp', '@img', 'detect-libc', 'semver', 'onnxruntime-node', 'onnxruntime-common', 'dcmjs-codecs', 'dcmjs']);
      for (const m of modules) assert.ok(allowed.has(m), `${m} loaded from node_modules`);
    }
  });
});
