/**
 * Image-sized buffers kept from one image for the next.
 *
 * Why: an image's largest buffers (its 16-bit display pixels, 15 MB for a 2500x3000 film; the overlay's RGB
 * pixels, 10.5 MB; the four mask PNGs' rows, 3.8 MB) were new memory for every image. V8 counts such memory and
 * runs a full mark-compact when enough of it has come and gone: about two per DICOM film, ~16 ms of the main thread
 * plus the marking threads that take the second of two cores. Taken from a pool and given back when the image is
 * done, they make almost no garbage: npm run bench, a 2500x3000 DICOM end to end 178 -> 111-124 ms; CPU time per
 * image 239 -> 166-197 ms (separate processes, alternating).
 *
 * Ownership is explicit: take() hands a buffer to one caller, which alone may use it until it gives it back with
 * give(). Whatever still refers to a buffer after give() (a view, an image) must not be read again: the next
 * take() may hand it out. Images analysed side by side take different buffers. Not a general allocator: best fit
 * among the few buffers given back, anything else newly allocated.
 */

/** The most bytes a pool keeps between images (two 2500x3000 films' worth, and room for a larger one). */
export const POOL_MAX_KEPT_BYTES = 96 * 1024 * 1024;

/** take() hands out a free buffer at most this many times the size asked for. */
export const MAX_OVERSIZE = 4;

export class BufferPool {
  private free: ArrayBuffer[] = [];
  private kept = 0;

  constructor(private readonly maxKeptBytes = POOL_MAX_KEPT_BYTES) {
    if (!(Number.isFinite(maxKeptBytes) && maxKeptBytes >= 0)) throw new Error(`BufferPool: maxKeptBytes must be a number >= 0, got ${maxKeptBytes}`);
  }

  /**
   * An ArrayBuffer of at least `bytes` bytes, its contents undefined (the caller writes every byte it reads): the
   * smallest free one that is large enough and at most MAX_OVERSIZE times as large (a mask's rows do not take an
   * image's buffer), else a new one of exactly `bytes`.
   * @throws Error when bytes is not a non-negative integer.
   */
  take(bytes: number): ArrayBuffer {
    if (!(Number.isInteger(bytes) && bytes >= 0)) throw new Error(`BufferPool.take: bytes must be a non-negative integer, got ${bytes}`);
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const n = this.free[i].byteLength;
      if (n >= bytes && n <= MAX_OVERSIZE * bytes && (best < 0 || n < this.free[best].byteLength)) best = i;
    }
    if (best < 0) return new ArrayBuffer(bytes);
    const [buf] = this.free.splice(best, 1);
    this.kept -= buf.byteLength;
    return buf;
  }

  /**
   * As take(), its first `bytes` bytes zero. A new buffer is zero already and is not written here: on a cold start
   * every page written is a page the kernel must first map.
   */
  takeZeroed(bytes: number): ArrayBuffer {
    const kept = this.kept;
    const buf = this.take(bytes);
    if (this.kept !== kept) new Uint8Array(buf, 0, bytes).fill(0);
    return buf;
  }

  /**
   * Gives buffers back for later take()s. Kept largest first while they fit in maxKeptBytes (the large ones are the
   * costly ones to make again); the rest, and any one larger than that, are left to the garbage collector. A buffer
   * given twice is kept once. Nothing given back may be used by its giver again.
   */
  give(...buffers: ArrayBufferLike[]): void {
    const all = [...this.free];
    for (const b of buffers) if (b instanceof ArrayBuffer && b.byteLength > 0 && !all.includes(b)) all.push(b);
    all.sort((a, b) => b.byteLength - a.byteLength);
    this.free = [];
    this.kept = 0;
    for (const b of all) {
      if (this.kept + b.byteLength > this.maxKeptBytes) continue;
      this.free.push(b);
      this.kept += b.byteLength;
    }
  }

  /** Bytes kept for later take()s. */
  get keptBytes(): number {
    return this.kept;
  }
}
