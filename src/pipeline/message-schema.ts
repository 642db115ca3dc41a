/**
 * Validation of messages between the stages (zod, as Powertools parser uses): a malformed message is
 * rejected with the path of the bad field instead of failing somewhere deep in the score stage.
 */
import { z } from 'zod';
import type { StageMessage } from './messages';

// Only pseudonyms and the shifted study day: a message carrying a raw identifier or a real date-time is refused.
const source = z.object({
  bucket: z.string().min(1), keyPseudonym: z.string().regex(/^src_[A-Za-z0-9_-]{22}$/), key: z.string().min(1).optional(),
  etag: z.string().optional(), size: z.number().optional(),
});
const base = {
  version: z.literal(1),
  imageId: z.string().regex(/^[0-9a-f]{32}$/),
  source,
  patientKey: z.string().regex(/^pt_[A-Za-z0-9_-]{22}$/).optional(),
  studyKey: z.string().regex(/^st_[A-Za-z0-9_-]{22}$/).optional(),
  studyDate: z.string().regex(/^\d{4}-\d{2}-\d{2}$/).optional(),
  receivedAt: z.string(),
  path: z.enum(['lambda', 'sagemaker', 'local']),
  timingsMs: z.record(z.string(), z.number()),
};
const meta = z.object({ format: z.enum(['dicom', 'png', 'jpeg']), pixelSpacingMm: z.tuple([z.number(), z.number()]).optional() }).passthrough();
const keys = z.object({
  lung: z.string(), lungRight: z.string(), lungLeft: z.string(), opacity: z.string(), overlay: z.string(), result: z.string(),
  seg: z.string().optional(), sr: z.string().optional(),
});

const count = z.number().int().nonnegative();
const side = z.object({ lung: count, opacity: count, zoneLung: z.tuple([count, count, count]), zoneOpacity: z.tuple([count, count, count]) });
const counts = z.object({
  width: count, height: count, image: z.object({ width: count, height: count }).optional(),
  lung: count, opacity: count, right: side, left: side,
});
const quality = z.object({
  guard: z.object({ frontal: z.number(), mirrored: z.number(), notChest: z.number(), reconstructionError: z.number().optional() }).optional(),
  warnings: z.array(z.object({
    code: z.enum(['ASYMMETRIC_LUNGS', 'LUNGS_CUT_OFF', 'POSSIBLY_MIRRORED', 'ATYPICAL_IMAGE']), message: z.string().max(400),
  })).max(8),
});

export const stageMessageSchema = z.discriminatedUnion('status', [
  z.object({ ...base, status: z.literal('SEGMENTED'), meta, model: z.object({ name: z.string(), version: z.string() }), keys, counts, quality }),
  z.object({ ...base, status: z.literal('FAILED'), error: z.object({ code: z.string(), reason: z.string() }), meta: meta.optional() }),
]);

export function parseStageMessage(body: string): StageMessage {
  return stageMessageSchema.parse(JSON.parse(body)) as StageMessage;
}
