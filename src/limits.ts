/**
 * Limits on what one input may be, in one place: the segment stage (Lambda, SageMaker, local runner,
 * CLI), the API's presigned upload and the CDK stack all import them from here. No dependencies, so
 * the API's storage function and the CDK app can import it without the imaging natives.
 */

/**
 * Largest input file accepted, in bytes, unless the deployer sets MAX_INPUT_BYTES (CDK context
 * `maxInputBytes`, which the stack passes to the functions as that environment variable). A chest
 * X-ray is rarely over 50 MB even as uncompressed 16-bit DICOM; 256 MiB leaves room for large
 * detectors without letting a 1 GB file of zeros be read whole into memory.
 */
export const DEFAULT_MAX_INPUT_BYTES = 256 * 1024 * 1024;

/** The environment variable that overrides DEFAULT_MAX_INPUT_BYTES at run time. */
export const MAX_INPUT_BYTES_ENV = 'MAX_INPUT_BYTES';

/** The most a single S3 PUT may carry (5 GiB): no cap may be above it. */
export const S3_MAX_PUT_BYTES = 5 * 1024 ** 3;

/**
 * Patient and study ids given with an image (POST /v1/uploads, a batch manifest, npm start --manifest), before they
 * are pseudonymised: printable ASCII (ID_TEXT), 1 to MAX_ID_CHARS characters. A DICOM Patient ID (VR LO) and a
 * Study Instance UID (UI) hold at most 64; twice that leaves room for a site prefix.
 */
export const MAX_ID_CHARS = 128;
export const ID_TEXT = /^[\x20-\x7e]+$/;

/** S3 object keys are at most 1024 bytes of UTF-8. */
export const S3_MAX_KEY_BYTES = 1024;

/** Validates a cap (integer bytes, 1 .. 5 GiB); `what` names its source in the error. */
export function checkMaxInputBytes(n: number, what: string): number {
  if (!Number.isSafeInteger(n) || n < 1 || n > S3_MAX_PUT_BYTES) {
    throw new Error(`${what} must be a whole number of bytes from 1 to ${S3_MAX_PUT_BYTES} (5 GiB), got ${JSON.stringify(n)}`);
  }
  return n;
}

/** The cap in force: MAX_INPUT_BYTES from the environment, else DEFAULT_MAX_INPUT_BYTES. */
export function maxInputBytes(env: Record<string, string | undefined> = process.env): number {
  const raw = env[MAX_INPUT_BYTES_ENV];
  if (raw === undefined || raw.trim() === '') return DEFAULT_MAX_INPUT_BYTES;
  return checkMaxInputBytes(Number(raw), `environment variable ${MAX_INPUT_BYTES_ENV}`);
}

/** 1536 -> "1.5 KiB", 268435456 -> "256 MiB". */
export function formatBytes(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} bytes` : `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[u]}`;
}

/** The reason given for an input over the cap: its size, the limit, and what to do. */
export function tooLargeReason(size: number, limit: number): string {
  return `The file is ${formatBytes(size)} (${size} bytes), over the limit of ${formatBytes(limit)} (${limit} bytes) for one image; `
    + `it was not read. Check that it is a single chest X-ray, or downscale it (the operator can raise ${MAX_INPUT_BYTES_ENV}).`;
}

/** UTF-8 length of a string (S3 limits keys in bytes, not characters). */
export const utf8Bytes = (s: string): number => Buffer.byteLength(s, 'utf8');
