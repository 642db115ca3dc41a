/** The functional core: plain functions over images and masks, no AWS imports. */
export * from './types';
export * from './errors';
export { decodeImage } from './decode';
export { segmentImage, type SegmentTimings } from './segment';
export { scoreMasks } from './score';
export { loadSeverityConfig, type SeverityConfig } from './severity';
export { pseudonymise } from './pseudonym';
export { maskToPng, pngToMask, renderOverlay, lungUnion } from './render';
