/**
 * The request object of the batch (SageMaker async) path: the router writes one per image to the work bucket
 * and invokes the endpoint with its location; the serving container (functions/sagemaker/server.ts) reads it
 * as its `application/json` body; the batch-result function reads it back when the endpoint gave no output,
 * to record a FAILED result. All three take the schema from here, so no function imports another.
 * Imports only zod: the router and batch-result bundles ship no imaging code.
 */
import { z } from 'zod';

export const asyncRequestSchema = z.object({
  source: z.object({
    bucket: z.string().min(3).max(63),
    key: z.string().min(1).max(1024),
    etag: z.string().max(200).optional(),
  }).strict(),
  /** Pseudonyms of the manifest's ids (the router hashes them before writing the request). */
  patientKey: z.string().regex(/^pt_[A-Za-z0-9_-]{22}$/).optional(),
  studyKey: z.string().regex(/^st_[A-Za-z0-9_-]{22}$/).optional(),
  /** What a FAILED result keeps of the source when the endpoint gives no output (batch-result). */
  stored: z.object({
    bucket: z.string().min(3).max(63), keyPseudonym: z.string().regex(/^src_[A-Za-z0-9_-]{22}$/),
    key: z.string().min(1).max(1024).optional(), etag: z.string().max(200).optional(), size: z.number().optional(),
  }).strict().optional(),
  /** Set by the router, for tracing only. */
  batchId: z.string().max(128).optional(),
}).strict();
export type AsyncRequest = z.infer<typeof asyncRequestSchema>;
