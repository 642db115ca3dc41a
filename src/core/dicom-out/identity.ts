/**
 * Identity modes of the DICOM objects we write (seg.dcm, sr.dcm): which patient and study they belong
 * to, and which UIDs they carry. A deployer / CLI setting (DICOM_IDENTITY, --dicom-identity), default `off`.
 *
 * - `off`: no Patient or Study attribute of the source is copied (Patient Name/ID/Birth Date/Sex are
 *   empty); the objects get a study of their own (a new Study Instance UID). The source image is
 *   referenced only by keyed pseudonyms of its UIDs, so no identifier of the source is in them.
 * - `linked`: the objects carry the source's Patient and General Study modules and reference the source
 *   by its real UIDs, so a PACS files them with the study. This puts identifiers (names, ids, dates,
 *   UIDs) in the results bucket / output folder.
 * - `deidentified`: DICOM PS3.15 Basic Application Level Confidentiality Profile applied to those modules:
 *   names, ids, dates and other identifying attributes removed or emptied, Patient ID and Name replaced by
 *   the keyed patient pseudonym (`pt_...`), every UID (study, series, instance, frame of reference)
 *   replaced consistently by a keyed pseudonym UID (core/pseudonym.ts pseudonymUid), so that a research
 *   archive de-identifying the sources under the same key holds sources and our objects together.
 */
import { pseudonymUid } from '../pseudonym';
import type { DicomSourceRefs } from '../types';

export type IdentityMode = 'off' | 'linked' | 'deidentified';
export const IDENTITY_MODES: readonly IdentityMode[] = ['off', 'linked', 'deidentified'];

/**
 * The deployer setting's environment variable: set by CDK (context `dicomIdentity`, cdk/lib/config.ts) on the
 * segment Lambda, the SageMaker model and the analyze function; read by every entry point through
 * dicomIdentityFromEnv, and by the CLI / `npm start` when no option is given.
 */
export const DICOM_IDENTITY_ENV = 'DICOM_IDENTITY';

/**
 * The identity mode an entry point runs with: a command-line `--dicom-identity` when given, else DICOM_IDENTITY,
 * default off; an unknown value fails at start-up.
 */
export const dicomIdentityFromEnv = (env: Record<string, string | undefined>, option?: string): IdentityMode =>
  parseIdentityMode(option ?? env[DICOM_IDENTITY_ENV]);

/** Parses the setting (env DICOM_IDENTITY or --dicom-identity); undefined/empty -> 'off'. */
export function parseIdentityMode(value: string | undefined): IdentityMode {
  const v = value?.trim().toLowerCase();
  if (!v) return 'off';
  if ((IDENTITY_MODES as readonly string[]).includes(v)) return v as IdentityMode;
  throw new Error(`Unknown DICOM identity mode '${v.slice(0, 20)}' (DICOM_IDENTITY / --dicom-identity): use one of ${IDENTITY_MODES.join(', ')}; the default is off.`);
}

/** How a source UID appears in our objects under a mode: itself (linked) or its keyed pseudonym. */
export function sourceUid(mode: IdentityMode, secret: string, uid: string): string {
  return mode === 'linked' ? uid : pseudonymUid(secret, uid);
}

/**
 * The Patient and General Study module attributes of our objects (both objects of one image get the
 * same), and the Study Instance UID they share.
 * @param seed a non-identifying id of the image (the pipeline's imageId) for the `off` mode's new study.
 * @param patientKey the keyed patient pseudonym, used as Patient ID/Name under `deidentified`.
 */
export function identityAttributes(mode: IdentityMode, src: DicomSourceRefs, secret: string, seed: string, patientKey?: string): Record<string, unknown> {
  const emptyPatientStudy = {
    PatientName: '', PatientID: '', PatientBirthDate: '', PatientSex: '',
    StudyDate: '', StudyTime: '', ReferringPhysicianName: '', StudyID: '', AccessionNumber: '',
  };
  if (mode === 'linked') {
    return { ...emptyPatientStudy, ...src.patientStudy, StudyInstanceUID: src.studyInstanceUid, PatientIdentityRemoved: 'NO' };
  }
  if (mode === 'off') {
    return {
      ...emptyPatientStudy,
      StudyInstanceUID: pseudonymUid(secret, seed, 'off-study'),
      PatientIdentityRemoved: 'YES',
      DeidentificationMethod: 'cxr-opacity identity off: no source patient/study',
    };
  }
  // PS3.15 Table E.1-1, Basic Profile: PatientName/ID/BirthDate/Sex, StudyDate/Time, ReferringPhysicianName,
  // StudyID, AccessionNumber: Z (empty or dummy); IssuerOfPatientID, PatientAge/Size/Weight, StudyDescription: X
  // (removed); StudyInstanceUID: U (replaced by a consistent pseudonym UID).
  return {
    ...emptyPatientStudy,
    PatientName: patientKey ? `${patientKey}^` : '',
    PatientID: patientKey ?? '',
    StudyInstanceUID: pseudonymUid(secret, src.studyInstanceUid),
    PatientIdentityRemoved: 'YES',
    DeidentificationMethod: 'PS3.15 Basic Profile; keyed pseudonym UIDs',
    DeidentificationMethodCodeSequence: [{ CodeValue: '113100', CodingSchemeDesignator: 'DCM', CodeMeaning: 'Basic Application Confidentiality Profile' }],
  };
}
