/** The functional core: plain functions over images and masks, no AWS imports. */
export * from './types';
export * from './errors';
export { decodeImage } from './decode';
export { BufferPool } from './pool';
export { segmentImage, type SegmentTimings } from './segment';
export { assessMasks, judgeGuard, GUARD_CLASSES, PLAUSIBILITY } from './guard';
export { countMasks, opacityPctOf, scoreCounts, scoreMasks, type MaskCounts, type SideCounts } from './score';
export { loadSeverityConfig, type SeverityConfig } from './severity';
export { isPseudonym, pseudonymise } from './pseudonym';
export { dateShiftDays, shiftedStudyDate } from './date-shift';
export { composeOverlay, maskToPng, overlayPng, pngToMask, renderOutputs, renderOverlay, lungUnion, type RenderedOutputs } from './render';
