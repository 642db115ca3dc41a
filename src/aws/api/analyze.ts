/**
 * POST /v1/analyze's work: the same segment and score stages as the pipeline, over in-memory ports
 * (src/pipeline/in-memory.ts).
 * Loaded lazily by app.ts, so the routes that do not analyse never load sharp, the DICOM codecs or
 * onnxruntime (they run in a small Node function; this one runs in the container image).
 */
import { randomUUID } from 'node:crypto';
import sharp from 'sharp';
import type { SegmentationModel, SeverityConfig } from '../../core';
import type { IdentityMode } from '../../core/dicom-out/identity';
import { analyzeInMemory } from '../../pipeline/in-memory';
import type { ResultItem } from '../../pipeline/messages';

export type AnalyzeOutcome =
  /** dicom: the SEG and SR (core/dicom-out) of a DICOM input, with the deployment's identity mode; absent for PNG/JPEG. */
  | { ok: true; item: ResultItem; overlayPng: Uint8Array; dicom?: { seg: Uint8Array; sr: Uint8Array } }
  | { ok: false; code: string; reason: string };

/**
 * The overlay PNG made to take at most maxBytes: as it is when it fits; else the same pixels compressed harder
 * (the pipeline encodes its overlay at zlib level 1 for speed: level 6 is about half the size); else downscaled
 * (by the square root of the size ratio, with a margin, until it fits). The pipeline's overlay is up to 2048 px on
 * its longer side, which for a noisy film can be 3-4 MB of PNG: too much for a synchronous response.
 */
export async function fitOverlay(png: Uint8Array, maxBytes: number): Promise<Uint8Array> {
  if (png.length <= maxBytes) return png;
  let out: Uint8Array = await sharp(png).png({ compressionLevel: 6 }).toBuffer();
  if (out.length <= maxBytes) return out;
  const { width = 1, height = 1 } = await sharp(png).metadata();
  let side = Math.max(width, height);
  for (let i = 0; i < 8 && out.length > maxBytes && side > 64; i++) {
    side = Math.max(64, Math.floor(side * Math.sqrt(maxBytes / out.length) * 0.9));
    out = await sharp(png).resize({ width: side, height: side, fit: 'inside' }).png({ compressionLevel: 9 }).toBuffer();
  }
  return out;
}

export async function analyzeImage(
  bytes: Uint8Array, model: SegmentationModel, severity: SeverityConfig, now: () => Date, identity: IdentityMode = 'off',
  maxOverlayBytes = Infinity,
): Promise<AnalyzeOutcome> {
  // A one-off pseudonym key and ETag: nothing of this request is stored, so no pseudonym needs to be stable (under
  // `off` and `deidentified` the SEG/SR's pseudonym UIDs therefore differ on every call).
  const { message, item, outputs } = await analyzeInMemory({ bytes, name: `analyze/${randomUUID()}`, etag: randomUUID() }, {
    model, severity, pseudonymKey: randomUUID(), path: 'lambda', now, dicomOutputs: { identity, severity },
  });
  if (message.status === 'FAILED') return { ok: false, code: message.error.code, reason: message.error.reason };
  const overlayPng = await fitOverlay(outputs['overlay.png']!, maxOverlayBytes);
  const seg = outputs['seg.dcm'], sr = outputs['sr.dcm'];
  return seg && sr ? { ok: true, item, overlayPng, dicom: { seg, sr } } : { ok: true, item, overlayPng };
}
