/**
 * The one definition of how the CDK app builds its Node.js Lambda functions (api.ts, pipeline.ts, batch.ts):
 * esbuild, CommonJS for the Node.js 22 runtime on arm64, minified, with source maps, and the AWS SDK v3 left
 * out because the runtime provides it.
 *
 * Every such function is a `NodeFunction`, which records its entry and bundling in the template
 * (`Metadata['cxr:bundle']`). test/bundles.test.ts reads that from the synthesised template, bundles each
 * entry with these same options and `require`s the bundle in a folder holding only what the runtime
 * provides, so a function that cannot load fails the tests, not its first invocation.
 */
import * as path from 'node:path';
import type { CfnResource } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import type { Construct } from 'constructs';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');

/** Modules the Lambda Node.js 22 runtime provides: never bundled, never installed. */
export const RUNTIME_PROVIDED_MODULES: readonly string[] = ['@aws-sdk/*'];

/** The esbuild options shared by every Node function (what `nodeBundling()` extends). */
export const NODE_BUNDLING = {
  minify: true,
  sourceMap: true,
  target: 'node22',
  format: nodejs.OutputFormat.CJS,
  externalModules: [...RUNTIME_PROVIDED_MODULES],
} as const satisfies nodejs.BundlingOptions;

export interface NodeBundleOptions {
  /**
   * Modules left out of the bundle that this function must never load (required lazily, on a path that another
   * function serves). They are not installed: loading one fails.
   */
  readonly notLoaded?: string[];
  /** Modules installed next to the bundle from the lock file (natives esbuild cannot bundle). */
  readonly nodeModules?: string[];
  /** Environment of that install (e.g. the platform of the natives). */
  readonly installEnvironment?: Record<string, string>;
}

/** The NodejsFunction `bundling` props: NODE_BUNDLING plus this function's own externals. */
export function nodeBundling(o: NodeBundleOptions = {}): nodejs.BundlingOptions {
  return {
    ...NODE_BUNDLING,
    externalModules: [...NODE_BUNDLING.externalModules, ...(o.notLoaded ?? [])],
    ...(o.nodeModules?.length ? { nodeModules: [...o.nodeModules] } : {}),
    ...(o.installEnvironment ? { environment: { ...o.installEnvironment } } : {}),
  };
}

/** Template metadata key of a NodeFunction's bundle (read by test/bundles.test.ts). */
export const BUNDLE_METADATA_KEY = 'cxr:bundle';

/** What `Metadata['cxr:bundle']` holds. */
export interface BundleMetadata {
  /** The handler module, relative to the repository root. */
  entry: string;
  /** Its exported handler (the function's Handler is `index.<handler>`). */
  handler: string;
  bundling: nodejs.BundlingOptions;
}

export interface NodeFunctionProps extends Omit<nodejs.NodejsFunctionProps,
  'entry' | 'handler' | 'runtime' | 'architecture' | 'projectRoot' | 'depsLockFilePath' | 'bundling'> {
  /** The handler module (absolute, or relative to the repository root); it exports `handler`. */
  readonly entry: string;
  readonly bundle?: NodeBundleOptions;
}

/** A Node.js 22 arm64 Lambda function, bundled with the shared options. */
export class NodeFunction extends nodejs.NodejsFunction {
  constructor(scope: Construct, id: string, props: NodeFunctionProps) {
    const { entry, bundle, ...rest } = props;
    const bundling = nodeBundling(bundle);
    const absolute = path.resolve(REPO_ROOT, entry);
    super(scope, id, {
      ...rest,
      entry: absolute,
      handler: 'handler',
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      projectRoot: REPO_ROOT,
      depsLockFilePath: path.join(REPO_ROOT, 'package-lock.json'),
      bundling,
    });
    const meta: BundleMetadata = { entry: path.relative(REPO_ROOT, absolute).split(path.sep).join('/'), handler: 'handler', bundling };
    (this.node.defaultChild as CfnResource).addMetadata(BUNDLE_METADATA_KEY, meta);
  }
}
