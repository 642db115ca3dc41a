/**
 * Study dates without the real date. A study date is a HIPAA identifier, but a patient's trend needs
 * the order of their studies and the days between them. Each patient gets a secret shift: a number of
 * days derived from the patient pseudonym by HMAC under the pseudonym key, between SHIFT_MIN_DAYS and
 * SHIFT_MAX_DAYS (about one to five years back). Every study of that patient moves by the same shift,
 * so their order and the intervals between them stay exact; across patients the dates do not line up,
 * and without the key the real date cannot be recovered. Only the day is kept (no time of day): images
 * of one patient on the same day are ordered by imageId.
 *
 * The shift needs a patient: an image without one gets no study date at all (nothing to follow).
 */
import { createHmac } from 'node:crypto';

export const SHIFT_MIN_DAYS = 366;
export const SHIFT_MAX_DAYS = 1826;
const DAY_MS = 86_400_000;

/** The patient's shift in days (positive: dates move back by this much). */
export function dateShiftDays(secret: string, patientKey: string): number {
  if (secret.length < 16) throw new Error('pseudonym key must be at least 16 characters');
  const mac = createHmac('sha256', secret).update(`date-shift\u0000${patientKey}`).digest();
  return SHIFT_MIN_DAYS + (mac.readUInt32BE(0) % (SHIFT_MAX_DAYS - SHIFT_MIN_DAYS + 1));
}

/** The calendar day (UTC midnight, ms) of an ISO 8601 date or date-time as the modality wrote it, if valid. */
export function calendarDay(iso: string | undefined): number | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(iso ?? '');
  if (!m) return undefined;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const t = Date.UTC(y, mo - 1, d);
  const back = new Date(t);
  if (back.getUTCFullYear() !== y || back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d) return undefined;
  return t;
}

/**
 * The shifted study day (YYYY-MM-DD) of an image: its acquisition date moved back by the patient's
 * shift. Undefined without a patient or without a valid acquisition date.
 */
export function shiftedStudyDate(secret: string, patientKey: string | undefined, acquiredAt: string | undefined): string | undefined {
  if (!patientKey) return undefined;
  const day = calendarDay(acquiredAt);
  if (day === undefined) return undefined;
  return new Date(day - dateShiftDays(secret, patientKey) * DAY_MS).toISOString().slice(0, 10);
}
