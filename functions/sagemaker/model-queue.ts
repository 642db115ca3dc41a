/**
 * Shares one onnxruntime session between concurrent requests. Calls are queued and run one at a time
 * (a session is not run twice at once, so memory stays bounded on the GPU); calls that arrive while one
 * runs are merged into a single [N,1,S,S] batch (up to `maxBatch`), which is where a GPU gains
 * throughput. With maxBatch 1 it is a plain mutex. A full queue refuses new work with QueueFullError.
 */
import type { SegmentationModel } from '../../src/core';

export class QueueFullError extends Error {
  constructor(limit: number) {
    super(`the inference queue is full (${limit} waiting); retry later`);
    this.name = 'QueueFullError';
  }
}

export interface ModelQueueOptions {
  /** Most images merged into one model run (default 1). */
  maxBatch?: number;
  /** Most calls waiting; more are refused (default 64). */
  maxQueued?: number;
}

interface Pending {
  input: Float32Array;
  n: number;
  resolve: (out: Float32Array) => void;
  reject: (e: unknown) => void;
}

export interface QueuedModel extends SegmentationModel {
  /** Calls waiting for the session now. */
  readonly queued: number;
  /** Model runs so far and images they held, for logs and tests. */
  readonly stats: { runs: number; images: number; maxBatchSeen: number };
}

export function queuedModel(model: SegmentationModel, opts: ModelQueueOptions = {}): QueuedModel {
  const maxBatch = Math.max(1, opts.maxBatch ?? 1);
  const maxQueued = Math.max(1, opts.maxQueued ?? 64);
  const S = model.manifest.input.size;
  const plane = S * S;
  const waiting: Pending[] = [];
  const stats = { runs: 0, images: 0, maxBatchSeen: 0 };
  let running = false;

  const pump = async (): Promise<void> => {
    if (running) return;
    running = true;
    try {
      while (waiting.length > 0) {
        const group: Pending[] = [];
        let n = 0;
        while (waiting.length > 0 && (group.length === 0 || n + waiting[0]!.n <= maxBatch)) {
          const p = waiting.shift()!;
          group.push(p);
          n += p.n;
        }
        stats.runs += 1;
        stats.images += n;
        stats.maxBatchSeen = Math.max(stats.maxBatchSeen, n);
        try {
          let input: Float32Array;
          if (group.length === 1) input = group[0]!.input;
          else {
            input = new Float32Array(n * plane);
            let at = 0;
            for (const p of group) {
              input.set(p.input, at);
              at += p.input.length;
            }
          }
          const out = await model.run(input, n);
          const per = out.length / n; // 3 * S * S
          let img = 0;
          for (const p of group) {
            p.resolve(group.length === 1 ? out : out.slice(img * per, (img + p.n) * per));
            img += p.n;
          }
        } catch (e) {
          for (const p of group) p.reject(e);
        }
      }
    } finally {
      running = false;
    }
  };

  return {
    manifest: model.manifest,
    get queued() {
      return waiting.length;
    },
    stats,
    run(input: Float32Array, n: number): Promise<Float32Array> {
      if (input.length !== n * plane) {
        return Promise.reject(new Error(`model input must hold ${n}x1x${S}x${S} values, got ${input.length}`));
      }
      if (waiting.length >= maxQueued) return Promise.reject(new QueueFullError(maxQueued));
      return new Promise<Float32Array>((resolve, reject) => {
        waiting.push({ input, n, resolve, reject });
        void pump();
      });
    },
    release: () => model.release(),
  };
}
