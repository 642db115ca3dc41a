/**
 * Keyed pseudonyms for patient and study identifiers and for upload keys (file names): HMAC-SHA256
 * under a secret key, so the same patient always gets the same key (an analyst can follow a patient
 * over time) but the identifier cannot be recovered or brute-forced without the key. The raw
 * identifier is never stored or logged.
 */
import { createHmac } from 'node:crypto';

export type PseudonymKind = 'patient' | 'study' | 'source';

const PREFIX: Record<PseudonymKind, string> = { patient: 'pt', study: 'st', source: 'src' };

export function pseudonymise(secret: string, kind: PseudonymKind, id: string | undefined): string | undefined {
  const clean = id?.trim();
  if (!clean) return undefined;
  if (secret.length < 16) throw new Error('pseudonym key must be at least 16 characters');
  const mac = createHmac('sha256', secret).update(`${kind}\u0000${clean}`).digest('base64url');
  return `${PREFIX[kind]}_${mac.slice(0, 22)}`;
}

/** Whether `value` has the form of a pseudonym of this kind (what a message may carry in place of an id). */
export function isPseudonym(kind: PseudonymKind, value: string): boolean {
  return new RegExp(`^${PREFIX[kind]}_[A-Za-z0-9_-]{22}$`).test(value);
}

/**
 * A keyed pseudonym of a DICOM UID, itself a valid UID (`2.25.` + the first 128 bits of the HMAC as a
 * decimal integer, PS3.5 B.2): the same UID always maps to the same pseudonym under one key, so objects
 * de-identified with the same key still reference each other. `scope` keeps distinct uses apart.
 */
export function pseudonymUid(secret: string, uid: string, scope = 'uid'): string {
  if (secret.length < 16) throw new Error('pseudonym key must be at least 16 characters');
  const mac = createHmac('sha256', secret).update(`${scope}\u0000${uid.trim()}`).digest();
  return `2.25.${BigInt(`0x${mac.subarray(0, 16).toString('hex')}`).toString(10)}`;
}
