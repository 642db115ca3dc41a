/**
 * Every function the CDK app deploys loads, bundled as it is deployed, with only what its runtime provides.
 *
 * The functions are read from the synthesised template (bundling skipped, no cdk-nag):
 *  - Node.js (zip) functions carry Metadata['cxr:bundle'] (cdk/lib/bundling.ts NodeFunction): their entry and
 *    the bundling options the CDK gave esbuild. Each is bundled with those options and `require`d in a child
 *    `node`, from a temp folder whose node_modules holds only what the Lambda Node.js 22 runtime provides
 *    (@aws-sdk and @smithy, linked from ours) and the function's declared `nodeModules`.
 *  - Container image functions: their Dockerfile (from the image asset) and command; the Dockerfile's esbuild
 *    step for that command's module is run as written and the bundle loaded with only its `--external:`s.
 *  - The SageMaker serving image runs its sources with tsx: every file they import must be COPY'd into the
 *    image, and every package must be a production dependency.
 * (That no function imports another function is test/layering.test.ts's.)
 */
import { afterAll, describe, test } from '@jest/globals';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { App } from 'aws-cdk-lib';
import { AssetManifestArtifact } from 'aws-cdk-lib/cx-api';
import { buildSync } from 'esbuild';
import type { BundlingOptions } from 'aws-cdk-lib/aws-lambda-nodejs';
import { pinnedContext, STACK_NAME } from '../cdk/lib/app';
import { BUNDLE_METADATA_KEY, NODE_BUNDLING, RUNTIME_PROVIDED_MODULES, type BundleMetadata } from '../cdk/lib/bundling';
import { CxrOpacityStack } from '../cdk/lib/stack';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const ROOT = join(__dirname, '..');
const NODE_MODULES = join(ROOT, 'node_modules');
const work = mkdtempSync(join(tmpdir(), 'cxr-bundles-'));
// The synthesised assembly stages the image build contexts (~90 MB): remove it all afterwards.
afterAll(() => rmSync(work, { recursive: true, force: true }));

// ---- the deployed functions, from the synthesised template ----
const app = new App({ outdir: join(work, 'cdk.out'), context: { ...pinnedContext(), 'aws:cdk:bundling-stacks': [] } });
new CxrOpacityStack(app, STACK_NAME);
const artifact = app.synth().getStackByName(STACK_NAME);
const resources = artifact.template.Resources as Record<string, Json>;
const ofType = (type: string): [string, Json][] => Object.entries(resources).filter(([, r]) => r.Type === type);
const lambdas = ofType('AWS::Lambda::Function');
const nodeFunctions = lambdas.filter(([, r]) => String(r.Properties.Runtime ?? '').startsWith('nodejs'));
const imageFunctions = lambdas.filter(([, r]) => r.Properties.PackageType === 'Image');
/** The stack's container image assets (its asset manifest): Dockerfile and tags. */
const assetManifest = artifact.dependencies.find((d) => d instanceof AssetManifestArtifact);
assert.ok(assetManifest, `${STACK_NAME} has an asset manifest`);
const dockerImages = Object.values((JSON.parse(readFileSync(assetManifest.file, 'utf8')) as Json).dockerImages ?? {}) as Json[];

/** The Dockerfile (repository-relative) of an image URI (the tag of one of the stack's image assets). */
function dockerfileOf(image: unknown): string {
  const uri = JSON.stringify(image);
  const asset = dockerImages.find((a) => Object.values(a.destinations as Record<string, Json>).some((d) => uri.includes(`:${d.imageTag}`)));
  assert.ok(asset, `no container image asset of ${STACK_NAME} matches ${uri}`);
  return (asset.source.dockerFile as string | undefined) ?? 'Dockerfile';
}

/** Environment values as the function would see them: tokens (Ref, GetAtt...) become placeholders. */
function environmentOf(props: Json): Record<string, string> {
  const vars = (props.Environment?.Variables ?? {}) as Record<string, unknown>;
  return Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, typeof v === 'string' ? v
    : k.endsWith('_URL') ? `https://sqs.us-east-1.amazonaws.com/123456789012/${k.toLowerCase()}`
      : k.endsWith('_ARN') ? `arn:aws:secretsmanager:us-east-1:123456789012:secret:${k.toLowerCase()}`
        : `placeholder-${k.toLowerCase()}`]));
}

/**
 * Size budgets of bundles (minified JS, without the source map): the score function runs once per image and
 * imports no imaging code (src/pipeline/score-stage.ts), so its bundle stays small: 219 KB when set.
 */
const BUNDLE_BUDGET_BYTES: Record<string, number> = { 'functions/score/handler.ts': 300 * 1024 };

/** CDK's esbuild arguments for a NodejsFunction's bundling (aws-lambda-nodejs buildEsbuildArgs), as build options. */
function esbuildOptions(b: BundlingOptions) {
  const mirrored = new Set(['minify', 'sourceMap', 'target', 'format', 'externalModules', 'nodeModules', 'environment']);
  for (const k of Object.keys(b)) {
    assert.ok(mirrored.has(k), `bundling option '${k}' is not mirrored here: add it to esbuildOptions() in test/bundles.test.ts`);
  }
  return {
    bundle: true,
    platform: 'node' as const,
    target: b.target,
    format: b.format as 'cjs' | 'esm' | undefined,
    minify: b.minify ?? false,
    sourcemap: b.sourceMap ?? false,
    external: [...(b.externalModules ?? RUNTIME_PROVIDED_MODULES), ...(b.nodeModules ?? [])],
  };
}

/** A folder holding only `node_modules/<name>` links to our node_modules for the given packages or scopes. */
function cleanFolder(name: string, packages: string[]): string {
  const dir = join(work, name);
  mkdirSync(join(dir, 'node_modules'), { recursive: true });
  for (const p of packages) {
    mkdirSync(dirname(join(dir, 'node_modules', p)), { recursive: true });
    symlinkSync(join(NODE_MODULES, p), join(dir, 'node_modules', p), 'dir');
  }
  return dir;
}

/** What the Lambda Node.js 22 runtime provides (the AWS SDK v3 and its @smithy packages). */
const RUNTIME_PACKAGES = ['@aws-sdk', '@smithy'];

/**
 * `require`s `file` in a child node with only `env` (no NODE_PATH, no tsx), from its folder, and returns
 * the type of its `handler` export. Throws with the child's stderr when the module cannot load.
 */
function load(file: string, exportName: string, env: Record<string, string>): string {
  const script = `const m = require(${JSON.stringify(file)}); process.stdout.write(typeof m[${JSON.stringify(exportName)}]); process.exit(0);`;
  const r = spawnSync(process.execPath, ['-e', script], {
    cwd: dirname(file), encoding: 'utf8', timeout: 30_000,
    env: { PATH: process.env.PATH ?? '', AWS_REGION: 'us-east-1', AWS_DEFAULT_REGION: 'us-east-1', ...env, NODE_OPTIONS: env.NODE_OPTIONS ?? '' },
  });
  if (r.status !== 0) {
    throw new Error(`${relative(work, file)} does not load (exit ${r.status}${r.signal ? `, ${r.signal}` : ''}):\n${(r.stderr || r.stdout).trim().split('\n').slice(0, 12).join('\n')}`);
  }
  return r.stdout;
}

describe('the deployed Node.js functions (zip bundles)', () => {
  test('the template deploys Node.js functions, each a NodeFunction (cdk/lib/bundling.ts) with the shared bundling', () => {
    assert.ok(nodeFunctions.length >= 4, `Node.js functions in the template: ${nodeFunctions.map(([id]) => id).join(', ')}`);
    for (const [id, r] of nodeFunctions) {
      const meta = r.Metadata?.[BUNDLE_METADATA_KEY] as BundleMetadata | undefined;
      assert.ok(meta, `${id} deploys Node.js code that no test loads: create it with NodeFunction from cdk/lib/bundling.ts`);
      assert.equal(r.Properties.Handler, `index.${meta.handler}`, `${id} handler`);
      assert.equal(r.Properties.Runtime, 'nodejs22.x', `${id} runtime`);
      for (const [k, v] of Object.entries(NODE_BUNDLING)) {
        if (k !== 'externalModules') assert.deepEqual((meta.bundling as Json)[k], v, `${id} bundling.${k} is the shared one`);
      }
      for (const m of RUNTIME_PROVIDED_MODULES) assert.ok(meta.bundling.externalModules?.includes(m), `${id} leaves ${m} to the runtime`);
    }
  });

  for (const [id, r] of nodeFunctions) {
    const meta = r.Metadata?.[BUNDLE_METADATA_KEY] as BundleMetadata | undefined;
    if (!meta) continue;
    test(`${id} (${meta.entry}) loads with only the runtime's modules and exports ${meta.handler}`, () => {
      const installed = meta.bundling.nodeModules ?? [];
      const dir = cleanFolder(id, [...RUNTIME_PACKAGES, ...installed]);
      const outfile = join(dir, 'index.js');
      const result = buildSync({ ...esbuildOptions(meta.bundling), entryPoints: [join(ROOT, meta.entry)], outfile, absWorkingDir: ROOT, logLevel: 'silent' });
      assert.deepEqual([...result.errors], []); // a copy: esbuild's result comes from its worker thread, in another realm under jest
      assert.equal(load(outfile, meta.handler, environmentOf(r.Properties)), 'function', `${id}: index.js exports ${meta.handler}`);
      const budget = BUNDLE_BUDGET_BYTES[meta.entry];
      if (budget) assert.ok(statSync(outfile).size <= budget, `${meta.entry} bundles to ${statSync(outfile).size} bytes, over its budget of ${budget} (issue 12)`);
    });
  }
});

describe('the deployed container image functions (Dockerfile esbuild bundles)', () => {
  /** Dockerfile instructions with line continuations joined and comments dropped. */
  const instructionsOf = (file: string): string[] => readFileSync(join(ROOT, file), 'utf8').replace(/\\\n/g, ' ').split('\n')
    .map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));

  test('the template deploys image functions', () => {
    assert.ok(imageFunctions.length >= 2, `image functions: ${imageFunctions.map(([id]) => id).join(', ')}`);
  });

  for (const [id, r] of imageFunctions) {
    test(`${id}: the Dockerfile's bundle of its command loads with only the declared externals`, () => {
      const dockerfile = dockerfileOf(r.Properties.Code.ImageUri);
      const instructions = instructionsOf(dockerfile);
      const cmdLine = instructions.filter((l) => l.startsWith('CMD ')).at(-1);
      const command = (r.Properties.ImageConfig?.Command as string[] | undefined) ?? (cmdLine ? JSON.parse(cmdLine.slice(4)) as string[] : []);
      const [module, exportName] = (command[0] ?? '').split('.');
      assert.ok(module && exportName, `${id}: command ${JSON.stringify(command)} is <module>.<export>`);
      const steps = instructions.filter((l) => l.startsWith('RUN npx esbuild ')).map((l) => l.replace(/^RUN npx esbuild /, '').split(/\s+/));
      const step = steps.find((args) => args.some((a) => a.startsWith('--outfile=') && a.endsWith(`/${module}.js`)));
      assert.ok(step, `${dockerfile} has no esbuild step writing ${module}.js, which ${id}'s command ${command[0]} runs`);

      const externals = step.filter((a) => a.startsWith('--external:')).map((a) => a.slice('--external:'.length));
      const dir = cleanFolder(id, externals);
      const outfile = join(dir, `${module}.js`);
      const args = step.map((a) => (a.startsWith('--outfile=') ? `--outfile=${outfile}` : a));
      execFileSync(join(NODE_MODULES, '.bin', 'esbuild'), [...args, '--log-level=error'], { cwd: ROOT, stdio: 'pipe' });
      // The image's own environment (Dockerfile ENV) is not needed to load; the function's is.
      assert.equal(load(outfile, exportName, environmentOf(r.Properties)), 'function', `${id}: ${module}.js exports ${exportName}`);
    });
  }

  test('the SageMaker serving image holds every file its sources import, and only production packages', () => {
    const models = ofType('AWS::SageMaker::Model');
    assert.ok(models.length >= 1, 'a SageMaker model in the template');
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    for (const [id, r] of models) {
      const dockerfile = dockerfileOf(r.Properties.PrimaryContainer?.Image ?? r.Properties.Containers);
      const instructions = instructionsOf(dockerfile);
      const entrypoint = instructions.filter((l) => l.startsWith('ENTRYPOINT ')).at(-1);
      assert.ok(entrypoint, `${dockerfile} has an ENTRYPOINT`);
      const argv = JSON.parse(entrypoint.slice('ENTRYPOINT '.length)) as string[];
      assert.deepEqual(argv.slice(0, 3), ['node', '--import', 'tsx'], `${dockerfile} runs its sources with tsx`);
      assert.ok(pkg.dependencies.tsx, 'tsx is a production dependency (the image installs --omit=dev)');
      const main = argv[3];
      const copied = instructions.filter((l) => /^COPY\s/.test(l) && !/--from=/.test(l))
        .flatMap((l) => l.split(/\s+/).slice(1, -1).filter((p) => !p.startsWith('--')));
      const inImage = (file: string) => copied.some((c) => {
        if (c.includes('*')) return new RegExp(`^${c.replace(/[.]/g, '\\.').replace(/\*/g, '[^/]*')}$`).test(file);
        return file === c || file.startsWith(`${c.replace(/\/$/, '')}/`);
      });
      const { metafile } = buildSync({ entryPoints: [join(ROOT, main)], bundle: true, platform: 'node', packages: 'external', write: false, metafile: true, logLevel: 'silent', absWorkingDir: ROOT });
      const files = Object.keys(metafile.inputs);
      assert.ok(files.includes(main), `${main} is among the inputs`);
      for (const f of files) assert.ok(inImage(f), `${id}: ${main} imports ${f}, which ${dockerfile} does not COPY into the image`);
      const packages = new Set(Object.values(metafile.inputs).flatMap((i) => i.imports.filter((x) => x.external && !x.path.startsWith('node:')).map((x) => x.path)));
      for (const p of packages) {
        const name = p.startsWith('@') ? p.split('/').slice(0, 2).join('/') : p.split('/')[0];
        if (builtinModules.includes(name)) continue;
        assert.ok(pkg.dependencies[name], `${id}: the serving sources import ${p}, which is not a production dependency (package.json "dependencies")`);
      }
    }
  });
});
