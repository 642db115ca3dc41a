/**
 * The import graph keeps its levels:
 *  - the library (src/core, src/pipeline, src/aws) and the applications on it (src/local, src/cli, src/eval,
 *    src/export) never import a deployed function (functions/): what both need lives in src/;
 *  - no function imports another function (functions/<a>/ from functions/<b>/);
 *  - the functional core and the pipeline (src/core, src/pipeline) depend on ports, not on AWS: they import
 *    neither src/aws nor the AWS SDK, Powertools or the Lambda types (the adapters live in src/aws);
 *  - bench/ does not import test/;
 *  - `cxr-opacity analyze` (src/cli/analyze.ts) loads no S3/DynamoDB stand-in, no AWS client and no handler.
 * Import specifiers are read with TypeScript's own pre-parser (ts.preProcessFile: import/export-from, import(),
 * require()), not a regular expression.
 */
import { describe, test } from '@jest/globals';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

const ROOT = join(__dirname, '..');

const walk = (dir: string): string[] => readdirSync(dir).flatMap((n) => {
  const p = join(dir, n);
  return statSync(p).isDirectory() ? (n === 'node_modules' || n === 'results' ? [] : walk(p)) : /\.tsx?$/.test(n) && !n.endsWith('.d.ts') ? [p] : [];
});

const specifiersOf = (file: string): string[] =>
  ts.preProcessFile(readFileSync(file, 'utf8'), true, true).importedFiles.map((f) => f.fileName);

/** A relative specifier as the repository-relative file it loads (TypeScript or JSON), or undefined for a package. */
function resolveLocal(from: string, spec: string): string | undefined {
  if (!spec.startsWith('.')) return undefined;
  const base = resolve(dirname(from), spec);
  for (const candidate of [base, `${base}.ts`, join(base, 'index.ts')]) {
    if (existsSync(candidate) && statSync(candidate).isFile()) return relative(ROOT, candidate).split(sep).join('/');
  }
  assert.fail(`${relative(ROOT, from)} imports '${spec}', which resolves to no file`);
}

/** Every (importer, imported) pair of relative imports under these folders. */
function edges(...dirs: string[]): { from: string; to: string }[] {
  return dirs.flatMap((d) => walk(join(ROOT, d))).flatMap((file) => specifiersOf(file).flatMap((s) => {
    const to = resolveLocal(file, s);
    return to ? [{ from: relative(ROOT, file).split(sep).join('/'), to }] : [];
  }));
}

describe('import graph', () => {
  test('nothing under src/ imports from functions/', () => {
    const up = edges('src').filter((e) => e.to.startsWith('functions/')).map((e) => `${e.from} -> ${e.to}`);
    assert.deepEqual(up, [], `move what src/ needs out of functions/ (into src/pipeline or src/aws):\n${up.join('\n')}`);
  });

  test('no function imports another function', () => {
    const fn = (p: string) => (p.startsWith('functions/') && p.split('/').length > 2 ? p.split('/')[1] : undefined);
    const crossings = edges('functions').filter((e) => fn(e.to) && fn(e.to) !== fn(e.from)).map((e) => `${e.from} -> ${e.to}`);
    assert.deepEqual(crossings, [], `move what both need into src/:\n${crossings.join('\n')}`);
  });

  test('src/core and src/pipeline import neither src/aws nor an AWS package', () => {
    const isAws = (p: string) => p.startsWith('@aws-sdk/') || p.startsWith('@aws-lambda-powertools/') || p === 'aws-lambda' || p.startsWith('aws-lambda/');
    const found = ['src/core', 'src/pipeline'].flatMap((d) => walk(join(ROOT, d))).flatMap((file) => specifiersOf(file).flatMap((s) => {
      const to = resolveLocal(file, s);
      const from = relative(ROOT, file).split(sep).join('/');
      return (to ? to.startsWith('src/aws/') || to.startsWith('functions/') : isAws(s)) ? [`${from} -> ${to ?? s}`] : [];
    }));
    assert.deepEqual(found, [], `put AWS code behind a port (src/pipeline/ports.ts) with its adapter in src/aws:\n${found.join('\n')}`);
  });

  test('bench/ does not import test/', () => {
    const into = edges('bench').filter((e) => e.to.startsWith('test/')).map((e) => `${e.from} -> ${e.to}`);
    assert.deepEqual(into, [], into.join('\n'));
  });

  test('cxr-opacity analyze loads no S3/DynamoDB stand-in, no AWS client and no handler', () => {
    const files = new Set<string>();
    const packages = new Set<string>();
    const visit = (file: string) => {
      if (files.has(file) || !file.endsWith('.ts')) return;
      files.add(file);
      for (const s of specifiersOf(join(ROOT, file))) {
        const to = resolveLocal(join(ROOT, file), s);
        if (to) visit(to);
        else packages.add(s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : s.split('/')[0]!);
      }
    };
    visit('src/cli/analyze.ts');
    assert.ok(files.has('src/pipeline/in-memory.ts'), 'the CLI runs the stages in memory');
    const loaded = [...files].filter((f) => f.startsWith('functions/') || f.startsWith('src/aws/') || f === 'src/local/stack.ts' || f === 'src/local/pipeline.ts');
    assert.deepEqual(loaded, [], 'the CLI loads no handler, AWS adapter or local stand-in');
    const aws = [...packages].filter((p) => ['s3rver', 'dynalite', 'aws-lambda'].includes(p) || p.startsWith('@aws-sdk/') || p.startsWith('@aws-lambda-powertools/'));
    assert.deepEqual(aws, [], 'the CLI loads no AWS SDK, Powertools or stand-in package');
  });
});
