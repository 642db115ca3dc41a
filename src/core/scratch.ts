/**
 * Reusable scratch memory for the large short-lived buffers of one image: the full-size masks that sharp encodes
 * as PNGs (core/render.ts). Each lives only until sharp's promise settles.
 *
 * Why a pool: a fresh 4-15 MB typed array costs more to touch for the first time (the kernel maps and zeroes
 * its pages) than the work done in it; on this project's reference machine, writing a 2500x3000 film's 16-bit copy
 * took ~10 ms in reused memory and ~60 ms in new memory (bench/: "New memory"), and a film writes four full-size
 * masks. No library in the dependency set pools typed arrays, and the policy is small: a buffer is handed out
 * whole to one user at a time (concurrent images each get their own), given back when the user is done, and at
 * most MAX_KEPT buffers of at most MAX_KEPT_BYTES each and MAX_KEPT_TOTAL_BYTES in all are kept, so the memory
 * held between images is bounded.
 */

/** Buffers kept between uses (an image encodes 4 full-size masks at once; two images at once 8). */
export const MAX_KEPT = 8;
/** Larger buffers are not kept (a 5000x6000 film's mask is 30 MB; anything larger is allocated each time). */
export const MAX_KEPT_BYTES = 32 * 1024 * 1024;
/** All kept buffers together at most (a 2500x3000 film's four masks are 30 MB). */
export const MAX_KEPT_TOTAL_BYTES = 96 * 1024 * 1024;

const kept: ArrayBuffer[] = [];

/** `bytes` bytes out of the pool (contents undefined), or new memory when no kept buffer is large enough. */
function takeScratch(bytes: number): ArrayBuffer {
  if (!Number.isInteger(bytes) || bytes < 0) throw new RangeError(`scratch memory: bytes must be a non-negative integer, got ${bytes}`);
  // The smallest kept buffer that is large enough, so a small image does not take the large one.
  let best = -1;
  for (let i = 0; i < kept.length; i++) {
    if (kept[i].byteLength >= bytes && (best < 0 || kept[i].byteLength < kept[best].byteLength)) best = i;
  }
  return best >= 0 ? kept.splice(best, 1)[0] : new ArrayBuffer(bytes);
}

/** Memory from takeScratch back to the pool. */
function giveScratch(memory: ArrayBuffer): void {
  if (memory.byteLength > MAX_KEPT_BYTES || kept.includes(memory)) return;
  kept.push(memory);
  // Over a cap: drop the smallest (the large ones are the expensive ones to map again).
  while (kept.length > MAX_KEPT || scratchHeld().bytes > MAX_KEPT_TOTAL_BYTES) {
    let smallest = 0;
    for (let i = 1; i < kept.length; i++) if (kept[i].byteLength < kept[smallest].byteLength) smallest = i;
    kept.splice(smallest, 1);
  }
}

/**
 * Calls fn with `bytes` bytes of scratch memory (takeScratch) and returns its result; the memory goes back to the
 * pool when fn's promise settles, so fn must not keep a view of it.
 * @throws RangeError (as a rejection) when bytes is not a non-negative integer
 */
export async function withScratch<T>(bytes: number, fn: (memory: ArrayBuffer) => Promise<T>): Promise<T> {
  const memory = takeScratch(bytes);
  try {
    return await fn(memory);
  } finally {
    giveScratch(memory);
  }
}

/** How many buffers and bytes the pool holds now (for tests and diagnostics). */
export function scratchHeld(): { buffers: number; bytes: number } {
  return { buffers: kept.length, bytes: kept.reduce((n, b) => n + b.byteLength, 0) };
}
