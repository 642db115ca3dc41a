/**
 * Both stages of the pipeline for one image, in this process, over in-memory ports: what the CLI
 * (`cxr-opacity analyze`), the API's synchronous POST /v1/analyze and docs/make-overlay-example.ts run.
 * The same segment and score stages as the deployed pipeline, with nothing stored outside this call.
 */
import type { SeverityConfig } from '../core/severity';
import { FileBackedObjects, MemoryObjects, MemoryResults, MemorySink, silentLogger } from './memory';
import { outputFiles, outputKeysFor, type ResultItem, type SourceRef, type StageMessage } from './messages';
import type { StageLogger } from './ports';
import { runScoreStage } from './score-stage';
import { runSegmentStage, type SegmentStageDeps } from './segment-stage';

/** An image given as bytes (with the ETag that makes its imageId, if any), or as a file read by the segment stage. */
export type InMemoryInput = { bytes: Uint8Array; name?: string; etag?: string } | { path: string };

export interface InMemoryDeps extends Omit<SegmentStageDeps, 'objects' | 'sink' | 'log' | 'resultsBucket'> {
  severity: SeverityConfig;
  log?: StageLogger;
}

export interface InMemoryRun {
  message: StageMessage;
  item: ResultItem;
  /** Every output the stages wrote, by file name (outputFiles: overlay.png, lung.png, ..., result.json, seg.dcm, sr.dcm). */
  outputs: Record<string, Uint8Array>;
}

/** Bucket of the in-memory store (inputs given as bytes, and every output); FILES: inputs read from disk (key = path). */
const BUCKET = 'memory';
const FILES = 'files';

export async function analyzeInMemory(input: InMemoryInput, deps: InMemoryDeps): Promise<InMemoryRun> {
  const { severity, log = silentLogger, ...segment } = deps;
  // A file is read by the segment stage itself, after it has checked the size on stat.
  const objects = 'path' in input ? new FileBackedObjects(FILES) : new MemoryObjects();
  let source: SourceRef;
  if ('path' in input) source = { bucket: FILES, key: input.path };
  else {
    source = { bucket: BUCKET, key: input.name ?? 'input', etag: input.etag };
    await objects.put(BUCKET, source.key, input.bytes, 'application/octet-stream');
  }
  const message = await runSegmentStage(source, { ...segment, objects, sink: new MemorySink(), resultsBucket: BUCKET, log });
  const { item } = await runScoreStage(message, { objects, results: new MemoryResults(), severity, resultsBucket: BUCKET, log, now: deps.now });
  const files = message.status === 'SEGMENTED' ? outputFiles(message.keys) : { 'result.json': outputKeysFor(message.imageId).result };
  const outputs: Record<string, Uint8Array> = {};
  for (const [file, key] of Object.entries(files)) outputs[file] = (await objects.get(BUCKET, key)).body;
  return { message, item, outputs };
}
