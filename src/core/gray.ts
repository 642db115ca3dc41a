/**
 * The two representations of a gray image's pixels (core/types.ts GrayImage): [0, 1] floats, or 16-bit display
 * values (value / 65535), which the decoders produce.
 */
import type { GrayImage } from './types';

/** Pixel i of a gray image in [0, 1], whichever representation it has. */
export function grayValue(img: GrayImage, i: number): number {
  return img.data instanceof Uint16Array ? img.data[i] / 65535 : img.data[i];
}

/**
 * The 16-bit display value of a [0, 1] float: round(v * 65535), clamped (written as truncation of v * 65535 + 0.5:
 * the same for the positive values left after clamping, and faster than Math.round in a loop over a film).
 */
export function toDisplay16(v: number): number {
  return v <= 0 ? 0 : v >= 1 ? 65535 : (v * 65535 + 0.5) | 0;
}
