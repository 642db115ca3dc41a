/**
 * A batch manifest: an object under `batches/` in the uploads bucket listing images of that bucket.
 *   JSON: {"images": [{"key": "...", "patientId"?: "...", "studyId"?: "..."}]}
 *   CSV:  header `key,patient_id,study_id` (patient_id and study_id columns optional)
 * Unknown fields or columns, duplicate or unsafe keys, and empty or oversized lists are refused with a
 * message that says what is wrong and where.
 */
import { parse } from 'csv-parse/sync';
import { z } from 'zod';
import { ID_TEXT, MAX_ID_CHARS } from '../limits';
import { BATCH_MANIFEST_PREFIX, RESERVED_BATCH_PREFIXES } from './storage-layout';

export interface BatchImage {
  key: string;
  patientId?: string;
  studyId?: string;
}

export class ManifestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ManifestError';
  }
}

/** Prefixes the router writes to or that are not manifests; never read as a batch. */
export const BATCH_PREFIX = BATCH_MANIFEST_PREFIX;
export const RESERVED_PREFIXES = RESERVED_BATCH_PREFIXES;

const imageKey = z.string().min(1, 'key is empty').max(1024, 'key is longer than 1024 characters')
  .refine((k) => !k.startsWith(BATCH_PREFIX), { message: `key must not be under ${BATCH_PREFIX} (that prefix holds manifests)` })
  .refine((k) => !k.startsWith('/'), { message: 'key must not start with "/"' });
const id = z.string().min(1).max(MAX_ID_CHARS, `at most ${MAX_ID_CHARS} characters`).regex(ID_TEXT, 'printable ASCII only');
const image = z.object({ key: imageKey, patientId: id.optional(), studyId: id.optional() }).strict();

export function manifestSchema(maxImages: number) {
  return z.object({
    images: z.array(image).min(1, 'the manifest lists no images').max(maxImages, `a batch holds at most ${maxImages} images`),
  }).strict();
}

const CSV_COLUMNS: Record<string, keyof BatchImage> = { key: 'key', patient_id: 'patientId', study_id: 'studyId' };

export function manifestFormat(key: string, body: Uint8Array): 'json' | 'csv' | undefined {
  const lower = key.toLowerCase();
  if (lower.endsWith('.json')) return 'json';
  if (lower.endsWith('.csv')) return 'csv';
  const first = Buffer.from(body.subarray(0, 64)).toString('utf8').replace(/^\uFEFF/, '').trimStart();
  if (first.startsWith('{')) return 'json';
  if (/^"?key"?\s*(,|\r?\n|$)/i.test(first)) return 'csv';
  return undefined;
}

export function parseBatchManifest(body: Uint8Array, key: string, maxImages = 10_000): BatchImage[] {
  const format = manifestFormat(key, body);
  if (!format) throw new ManifestError(`${key} is neither a JSON manifest ({"images":[...]}) nor a CSV with header key,patient_id,study_id`);
  const text = Buffer.from(body).toString('utf8').replace(/^\uFEFF/, '');
  let raw: unknown;
  if (format === 'json') {
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new ManifestError(`${key} is not valid JSON: ${(e as Error).message}`);
    }
  } else {
    let rows: string[][];
    try {
      rows = parse(text.replace(/\r\n?/g, '\n'), { skip_empty_lines: true, trim: true }) as string[][];
    } catch (e) {
      throw new ManifestError(`${key} is not a valid CSV: ${(e as Error).message}`);
    }
    const header = (rows.shift() ?? []).map((h) => h.toLowerCase());
    const unknown = header.filter((h) => !(h in CSV_COLUMNS));
    if (unknown.length > 0) {
      throw new ManifestError(`${key}: unknown CSV column(s) ${unknown.map((u) => JSON.stringify(u)).join(', ')}; the header is key,patient_id,study_id`);
    }
    if (!header.includes('key')) throw new ManifestError(`${key}: the CSV header has no "key" column; the header is key,patient_id,study_id`);
    if (new Set(header).size !== header.length) throw new ManifestError(`${key}: the CSV header repeats a column`);
    raw = {
      images: rows.map((row) => {
        const img: Record<string, string> = {};
        header.forEach((h, i) => {
          const v = row[i];
          if (v !== undefined && v !== '') img[CSV_COLUMNS[h]!] = v;
        });
        return img;
      }),
    };
  }
  const r = manifestSchema(maxImages).safeParse(raw);
  if (!r.success) {
    const where = (path: PropertyKey[]) => {
      // images.3.key -> "image 4 (CSV line 5)" so the submitter finds it.
      if (path[0] === 'images' && typeof path[1] === 'number') {
        const n = path[1] + 1;
        return `image ${n}${format === 'csv' ? ` (CSV line ${n + 1})` : ''}${path.length > 2 ? ` field ${path.slice(2).join('.')}` : ''}`;
      }
      return path.length ? path.join('.') : 'manifest';
    };
    const issues = r.error.issues.slice(0, 5).map((i) => `${where(i.path)}: ${i.message}`);
    if (r.error.issues.length > 5) issues.push(`and ${r.error.issues.length - 5} more problems`);
    throw new ManifestError(`${key} is not a valid batch manifest: ${issues.join('; ')}`);
  }
  const seen = new Set<string>();
  for (const [i, img] of r.data.images.entries()) {
    if (seen.has(img.key)) throw new ManifestError(`${key} is not a valid batch manifest: image ${i + 1} repeats key ${img.key}`);
    seen.add(img.key);
  }
  return r.data.images;
}
