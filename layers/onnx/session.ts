/**
 * The one place that talks to onnxruntime-node: load a model with its manifest, check it is the file
 * the manifest describes, and run batches through it. Everything else sees `SegmentationModel`.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import { GUARD_CLASSES } from '../../src/core/guard';
import { DEFAULT_MODEL_FILE, MODEL_FILES } from './model-files';
import type { GuardManifest, GuardModel, GuardOutput, ModelManifest, SegmentationModel } from '../../src/core/types';

export type { SegmentationModel };

/** The default model's manifest (model-files.ts: the int8 model): what the CLI, `npm start` and the evaluation load. */
export const DEFAULT_MODEL_MANIFEST = join(__dirname, '..', '..', 'models', DEFAULT_MODEL_FILE);
/** The fp32 model's manifest (what training exports and the int8 model is quantised from). */
export const FP32_MODEL_MANIFEST = join(__dirname, '..', '..', 'models', MODEL_FILES.fp32);

export interface LoadModelOptions {
  /** Intra-op threads; default: the CPUs this process may use (Lambda: 2 at 3 GB memory). */
  threads?: number;
  /** Execution providers in order of preference, e.g. ['cuda', 'cpu'] on a GPU host. */
  executionProviders?: string[];
}

const CHANNELS = ['lung_right', 'lung_left', 'opacity'] as const;

export function validateManifest(m: unknown, source: string): ModelManifest {
  const fail = (why: string): never => {
    throw new Error(`model manifest ${source} is invalid: ${why}`);
  };
  if (typeof m !== 'object' || m === null) fail('not a JSON object');
  const o = m as ModelManifest;
  if (typeof o.name !== 'string' || typeof o.version !== 'string') fail('name and version must be strings');
  if (typeof o.file !== 'string' || !/^[0-9a-f]{64}$/.test(String(o.sha256))) fail('file and a hex sha256 are required');
  if (!o.input || !Number.isInteger(o.input.size) || o.input.size < 8) fail('input.size must be an integer >= 8');
  if (o.input.resize !== 'stretch') fail(`input.resize "${String(o.input.resize)}" is not supported (only "stretch")`);
  const nrm = o.input.normalization;
  if (!nrm || !(nrm.std > 0) || typeof nrm.mean !== 'number') fail('input.normalization needs mean and std > 0');
  if (!o.output || JSON.stringify(o.output.channels) !== JSON.stringify(CHANNELS)) {
    fail(`output.channels must be ${JSON.stringify(CHANNELS)}`);
  }
  if (o.output.activation !== 'sigmoid') fail('output.activation must be "sigmoid" (probabilities out of the graph)');
  for (const c of CHANNELS) {
    const t = o.thresholds?.[c];
    if (!(typeof t === 'number' && t > 0 && t < 1)) fail(`thresholds.${c} must be in (0,1)`);
  }
  return o;
}

export function validateGuardManifest(m: unknown, source: string, model: ModelManifest): GuardManifest {
  const fail = (why: string): never => {
    throw new Error(`guard manifest ${source} is invalid: ${why}`);
  };
  if (typeof m !== 'object' || m === null) fail('not a JSON object');
  const o = m as GuardManifest;
  if (typeof o.file !== 'string' || !/^[0-9a-f]{64}$/.test(String(o.sha256))) fail('file and a hex sha256 are required');
  if (o.input?.size !== model.input.size || o.input.normalization?.mean !== model.input.normalization.mean ||
      o.input.normalization?.std !== model.input.normalization.std) {
    fail('its input (size, normalisation) must be the segmentation model\'s: both read the same tensor');
  }
  if (JSON.stringify(o.output?.classes) !== JSON.stringify(GUARD_CLASSES)) fail(`output.classes must be ${JSON.stringify(GUARD_CLASSES)}`);
  const t = o.thresholds?.not_frontal_cxr;
  if (!(typeof t === 'number' && t > 0 && t < 1)) fail('thresholds.not_frontal_cxr must be in (0,1)');
  const r = o.thresholds.reconstruction_error;
  if (o.output.reconstruction && !(typeof r === 'number' && r > 0)) fail('output.reconstruction needs thresholds.reconstruction_error > 0');
  return o;
}

async function createSession(onnxPath: string, sha256: string, opts: LoadModelOptions): Promise<ort.InferenceSession> {
  const bytes = await readFile(onnxPath);
  const digest = createHash('sha256').update(bytes).digest('hex');
  if (digest !== sha256) {
    throw new Error(`model file ${onnxPath} does not match its manifest (sha256 ${digest}, expected ${sha256}); re-export the model or fix the manifest`);
  }
  const threads = opts.threads ?? Math.max(1, availableParallelism());
  return ort.InferenceSession.create(bytes, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    executionProviders: opts.executionProviders ?? ['cpu'],
  });
}

async function loadGuard(manifestPath: string, model: ModelManifest, opts: LoadModelOptions): Promise<GuardModel> {
  const manifest = validateGuardManifest(JSON.parse(await readFile(manifestPath, 'utf8')), manifestPath, model);
  // The guard is small next to the U-Net (a 64x64 CNN and autoencoder): one thread, whatever the model uses.
  const session = await createSession(resolve(dirname(manifestPath), manifest.file), manifest.sha256, { ...opts, threads: 1 });
  const S = manifest.input.size;
  return {
    manifest,
    async run(input: Float32Array, n: number): Promise<GuardOutput> {
      if (input.length !== n * S * S) throw new Error(`guard input must hold ${n}x1x${S}x${S} values, got ${input.length}`);
      const out = await session.run({ [manifest.input.name]: new ort.Tensor('float32', input, [n, 1, S, S]) });
      const t = out[manifest.output.name];
      if (!t || t.dims.length !== 2 || t.dims[0] !== n || t.dims[1] !== 3) throw new Error(`guard output must be [${n},3]`);
      const rec = manifest.output.reconstruction ? out[manifest.output.reconstruction.name] : undefined;
      if (manifest.output.reconstruction && (!rec || rec.dims.length !== 1 || rec.dims[0] !== n)) throw new Error(`guard reconstruction output must be [${n}]`);
      return { classes: t.data as Float32Array, reconstructionError: rec?.data as Float32Array | undefined };
    },
  };
}

export async function loadModel(manifestPath: string, opts: LoadModelOptions = {}): Promise<SegmentationModel> {
  const manifest = validateManifest(JSON.parse(await readFile(manifestPath, 'utf8')), manifestPath);
  const session = await createSession(resolve(dirname(manifestPath), manifest.file), manifest.sha256, opts);
  const guard = manifest.guard ? await loadGuard(resolve(dirname(manifestPath), manifest.guard), manifest, opts) : undefined;
  const S = manifest.input.size;
  return {
    manifest,
    guard,
    async run(input: Float32Array, n: number): Promise<Float32Array> {
      if (input.length !== n * S * S) throw new Error(`model input must hold ${n}x1x${S}x${S} values, got ${input.length}`);
      const feeds = { [manifest.input.name]: new ort.Tensor('float32', input, [n, 1, S, S]) };
      const out = await session.run(feeds);
      const t = out[manifest.output.name];
      if (!t) throw new Error(`model produced no output named ${manifest.output.name}`);
      const dims = t.dims;
      if (dims.length !== 4 || dims[0] !== n || dims[1] !== 3 || dims[2] !== S || dims[3] !== S) {
        throw new Error(`model output has shape [${dims.join(',')}], expected [${n},3,${S},${S}]`);
      }
      return t.data as Float32Array;
    },
    release: () => session.release(),
  };
}
