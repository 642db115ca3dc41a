/**
 * Tag text that may leave the decoder (in ImageMeta or an error message) goes through here: enumerated
 * tags only as one of the values DICOM defines for them (else OTHER), and anything that must stay free
 * text stripped of control characters and length-limited. Raw tag text is attacker-controlled: escape
 * sequences and CR LF in it would otherwise reach result items, logs and terminals (log-line forgery),
 * and free text can carry identifiers.
 */

/** What an enumerated tag becomes when its value is not one DICOM defines. */
export const OTHER = 'OTHER';
/** How an unrecognised value is named in error messages (the value itself is never echoed). */
export const UNRECOGNISED = '(unrecognised value)';

/** Modality defined terms, PS3.3 C.7.3.1.1.1 (current and retired). */
const MODALITIES = new Set(('ANN AR ASMT AU BDUS BI BMD CFM CR CT CTPROTOCOL DMS DG DOC DX ECG EEG EMG EOG EPS ES FID GM HC HD IO IOL '
  + 'IVOCT IVUS KER KO LEN LS MG MR M3D NM OAM OCT OP OPM OPT OPTBSV OPTENF OPV OSS OT PA PLAN POS PR PT PX REG RESP RF RG '
  + 'RTDOSE RTIMAGE RTINTENT RTPLAN RTRAD RTRECORD RTSEGANN RTSTRUCT RWV SEG SM SMR SR SRF STAIN TEXTUREMAP TG US VA XA '
  + 'XAPROTOCOL XC AS CD CF CP CS DD DF DM DS EC FA FS LP MA MS OPR ST VF').split(' '));

/** ViewPosition defined terms (PS3.3 C.8.11.5.1.1) and the variants writers commonly use. */
const VIEW_POSITIONS = new Set('AP PA LL RL RLD LLD RLO LLO LPO RPO LAO RAO LAT LATERAL OBL OBLIQUE'.split(' '));

/** PhotometricInterpretation defined terms (PS3.3 C.7.6.3.1.2, current and retired). */
const PHOTOMETRICS = new Set(['MONOCHROME1', 'MONOCHROME2', 'PALETTE COLOR', 'RGB', 'YBR_FULL', 'YBR_FULL_422',
  'YBR_PARTIAL_422', 'YBR_PARTIAL_420', 'YBR_ICT', 'YBR_RCT', 'XYB', 'HSV', 'ARGB', 'CMYK']);

/** Samples per pixel each photometric interpretation requires. */
export const SAMPLES_FOR_PHOTOMETRIC: Record<string, number> = {
  'MONOCHROME1': 1, 'MONOCHROME2': 1, 'PALETTE COLOR': 1, 'RGB': 3, 'YBR_FULL': 3, 'YBR_FULL_422': 3,
  'YBR_PARTIAL_422': 3, 'YBR_PARTIAL_420': 3, 'YBR_ICT': 3, 'YBR_RCT': 3, 'XYB': 3, 'HSV': 3, 'ARGB': 4, 'CMYK': 4,
};

function enumerated(allowed: Set<string>, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const v = value.trim().toUpperCase();
  if (v === '') return undefined;
  return allowed.has(v) ? v : OTHER;
}

export const modalityTerm = (v: string | undefined) => enumerated(MODALITIES, v);
export const viewPositionTerm = (v: string | undefined) => enumerated(VIEW_POSITIONS, v);
export const photometricTerm = (v: string | undefined) => enumerated(PHOTOMETRICS, v);

/** An enumerated term for a message: the term itself, or UNRECOGNISED for OTHER. */
export function termForMessage(term: string | undefined): string {
  return term === undefined ? '(missing)' : term === OTHER ? UNRECOGNISED : term;
}

/**
 * Free text (e.g. a codec's or libvips' error message) made safe to show: control characters (C0, DEL,
 * C1, and the Unicode line/paragraph separators and bidi controls) become spaces, runs of spaces
 * collapse, and the result is cut to `max` characters.
 */
export function safeText(s: string, max = 120): string {
  // eslint-disable-next-line no-control-regex
  const clean = s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, ' ').replace(/\s+/g, ' ').trim();
  return clean.length > max ? `${clean.slice(0, max - 1)}…` : clean;
}
