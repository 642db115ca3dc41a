/**
 * Setting runs of bits in a packed bit array, for the writers of 1-bit pictures: PNG rows (first pixel in the
 * highest bit of a byte, 'msb') and DICOM SEG frames (first pixel in the lowest bit, 'lsb'; PS3.5 8.1.1).
 */

/** Sets bits [from, to) of `bytes` (bit k is in byte k >> 3): the partial bytes bit by bit, the whole ones at once. */
export function setBitRun(bytes: Uint8Array, from: number, to: number, order: 'msb' | 'lsb'): void {
  let k = from;
  const one = order === 'msb' ? (b: number) => 0x80 >> (b & 7) : (b: number) => 1 << (b & 7);
  for (; k < to && (k & 7) !== 0; k++) bytes[k >> 3] |= one(k);
  const whole = (to - k) >> 3;
  if (whole > 0) {
    bytes.fill(0xff, k >> 3, (k >> 3) + whole);
    k += whole << 3;
  }
  for (; k < to; k++) bytes[k >> 3] |= one(k);
}
