/**
 * DICOM outputs of a scored DICOM input: a binary SEG of the masks (seg.ts) and a TID 1500 SR of the
 * score (sr.ts) that references it (and, for viewers without SEG support, a Secondary Capture of the
 * overlay: sc.ts), with the identity mode the deployer chose (identity.ts). Pure: bytes
 * in memory, no I/O, no logging.
 */
import type { OpacityScore } from '../types';
import { buildSeg, type DicomOutInput } from './seg';
import { buildSr } from './sr';

export { DICOM_IDENTITY_ENV, dicomIdentityFromEnv, IDENTITY_MODES, parseIdentityMode, type IdentityMode } from './identity';
export { readSegFrames, SEGMENTS, type DicomOutInput } from './seg';
export { buildOverlayCapture, type CaptureInput, type RgbImage } from './sc';

export function writeDicomOutputs(input: DicomOutInput, score: OpacityScore): { seg: Uint8Array; sr: Uint8Array } {
  const seg = buildSeg(input);
  return { seg: seg.bytes, sr: buildSr(input, score, seg.ref) };
}
