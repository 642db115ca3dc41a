/**
 * What the SEG and SR writers share: the coded concepts, our UIDs, the equipment attributes and the
 * Part 10 encoding (dcmjs: denaturalize + DicomDict.write).
 */
import { data as dcmjsData } from 'dcmjs';
import { pseudonymUid } from '../pseudonym';

const { DicomDict, DicomMetaDictionary } = dcmjsData;

export interface Code {
  CodeValue: string;
  CodingSchemeDesignator: string;
  CodeMeaning: string;
}
const code = (CodeValue: string, CodingSchemeDesignator: string, CodeMeaning: string): Code => ({ CodeValue, CodingSchemeDesignator, CodeMeaning });

/** Private coding scheme for the concepts no standard terminology has (declared in CodingSchemeIdentificationSequence). */
export const PRIVATE_SCHEME = '99CXROPACITY';

export const CODES = {
  anatomicalStructure: code('123037004', 'SCT', 'Anatomical Structure'),
  morphologicallyAltered: code('49755003', 'SCT', 'Morphologically Altered Structure'),
  rightLung: code('3341006', 'SCT', 'Right lung'),
  leftLung: code('44029006', 'SCT', 'Left lung'),
  lung: code('39607008', 'SCT', 'Lung'),
  /**
   * DICOM's own 'Opacity' (CID 6104 Abnormal Opacity Finding or Feature): SNOMED CT has no concept for a
   * radiographic opacity that DICOM maps, so the segment type is this DCM code under a SNOMED CT category.
   */
  opacity: code('112001', 'DCM', 'Opacity'),
  segmentation: code('113076', 'DCM', 'Segmentation'),
  sourceForProcessing: code('121322', 'DCM', 'Source image for image processing operation'),
  artificialIntelligence: code('123110', 'DCM', 'Artificial Intelligence'),
  area: code('42798000', 'SCT', 'Area'),
  opacityPct: code('opacity-pct', PRIVATE_SCHEME, 'Opacity area as percentage of lung area'),
  geographicExtent: code('geo-extent', PRIVATE_SCHEME, 'Geographic extent of opacity'),
  zoneScore: code('zone-score', PRIVATE_SCHEME, 'Six-zone opacity score'),
  grade: code('grade', PRIVATE_SCHEME, 'Opacity severity grade'),
  mm2: code('mm2', 'UCUM', 'square millimeter'),
  percent: code('%', 'UCUM', 'percent'),
  score: code('{score}', 'UCUM', 'score'),
};

export const CODING_SCHEME_IDENTIFICATION = [{
  CodingSchemeDesignator: PRIVATE_SCHEME,
  CodingSchemeName: 'cxr-opacity measurement concepts',
  CodingSchemeResponsibleOrganization: 'cxr-opacity project',
}];

export const SOP_CLASS = {
  segmentation: '1.2.840.10008.5.1.4.1.1.66.4',
  comprehensiveSR: '1.2.840.10008.5.1.4.1.1.88.33',
  secondaryCapture: '1.2.840.10008.5.1.4.1.1.7',
};

const EXPLICIT_VR_LE = '1.2.840.10008.1.2.1';
/** Our implementation's UID and name in the file meta group (fixed: it names this software, not an image). */
export const IMPLEMENTATION_CLASS_UID = '2.25.221306409916390735632385917468447402745';
export const IMPLEMENTATION_VERSION = 'CXR_OPACITY_1';

export interface ModelId {
  name: string;
  version: string;
}

/** The UIDs of the objects written for one image: deterministic under the key, so a retried image gets the same objects. */
export function ourUids(secret: string, seed: string) {
  const u = (role: string) => pseudonymUid(secret, seed, `dicom-out/${role}`);
  return {
    segSeries: u('seg-series'), segInstance: u('seg-instance'), dimensionOrganization: u('seg-dimension'),
    srSeries: u('sr-series'), srInstance: u('sr-instance'),
    scSeries: u('sc-series'), scInstance: u('sc-instance'),
    tracking: (group: string) => u(`sr-tracking/${group}`),
  };
}

/** General and Enhanced General Equipment: the device is this software with its model. */
export function equipment(model: ModelId): Record<string, unknown> {
  return {
    Manufacturer: 'cxr-opacity',
    ManufacturerModelName: model.name.slice(0, 64),
    DeviceSerialNumber: 'none',
    SoftwareVersions: `${model.name}@${model.version}`.slice(0, 64),
  };
}

/** DICOM DA and TM of a date (UTC). */
export function dateTime(now: Date): { date: string; time: string } {
  const iso = now.toISOString();
  return { date: iso.slice(0, 10).replace(/-/g, ''), time: iso.slice(11, 19).replace(/:/g, '') };
}

/**
 * A naturalized dataset -> DICOM Part 10 bytes, explicit VR little endian, UTF-8 text. The dataset's Pixel Data
 * (7FE0,0010: the last element of every dataset we write, as tags sort) may be given as [ArrayBuffer | Uint8Array]
 * with _vrMap.PixelData 'OB' or 'OW', of even length. dcmjs encodes every other element; the pixels are appended
 * here as the element dcmjs would write (tag, VR, two reserved bytes, 32-bit length, value), because dcmjs copies
 * a large value several times while its output buffer grows (an RGB overlay of 10.5 MB cost ~100 ms; bench/),
 * and test/dicom-seg.test.ts checks the bytes are the ones dcmjs writes.
 */
export function toPart10(ds: Record<string, unknown>): Uint8Array {
  const { PixelData: pixelData, _vrMap: vrMap, ...rest } = ds as { PixelData?: unknown; _vrMap?: Record<string, string> };
  const { PixelData: pixelVr = 'OW', ...otherVrs } = vrMap ?? {};
  const head = encode({ ...rest, ...(Object.keys(otherVrs).length ? { _vrMap: otherVrs } : {}) });
  if (pixelData === undefined) return head;
  const value = Array.isArray(pixelData) && pixelData.length === 1 && (pixelData[0] instanceof ArrayBuffer || pixelData[0] instanceof Uint8Array)
    ? (pixelData[0] instanceof Uint8Array ? pixelData[0] : new Uint8Array(pixelData[0]))
    : undefined;
  if (!value || value.byteLength % 2 !== 0 || (pixelVr !== 'OB' && pixelVr !== 'OW')) {
    throw new Error('toPart10: PixelData must be one ArrayBuffer or Uint8Array of even length, with _vrMap.PixelData OB or OW');
  }
  const out = new Uint8Array(head.byteLength + 12 + value.byteLength);
  out.set(head, 0);
  const dv = new DataView(out.buffer, head.byteLength, 12);
  dv.setUint16(0, 0x7fe0, true);
  dv.setUint16(2, 0x0010, true);
  out[head.byteLength + 4] = pixelVr.charCodeAt(0);
  out[head.byteLength + 5] = pixelVr.charCodeAt(1);
  dv.setUint32(8, value.byteLength, true);
  out.set(value, head.byteLength + 12);
  return out;
}

/** dcmjs's Part 10 encoding of a naturalized dataset (meta group from its SOP class and instance). */
function encode(ds: Record<string, unknown>): Uint8Array {
  const meta = {
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: ds.SOPClassUID,
    MediaStorageSOPInstanceUID: ds.SOPInstanceUID,
    TransferSyntaxUID: EXPLICIT_VR_LE,
    ImplementationClassUID: IMPLEMENTATION_CLASS_UID,
    ImplementationVersionName: IMPLEMENTATION_VERSION,
  };
  const dict = new DicomDict(DicomMetaDictionary.denaturalizeDataset(meta));
  dict.dict = DicomMetaDictionary.denaturalizeDataset({ SpecificCharacterSet: 'ISO_IR 192', ...ds });
  return new Uint8Array(dict.write());
}

/** sRGB (0-255) -> DICOM CIELab (PS3.3 C.10.7.1.1: L 0-100, a/b -128..127, each scaled to 0-65535), D65. */
export function cielab(r: number, g: number, b: number): [number, number, number] {
  const lin = (c: number) => {
    const v = c / 255;
    return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  };
  const [R, G, B] = [lin(r), lin(g), lin(b)];
  const x = (0.4124 * R + 0.3576 * G + 0.1805 * B) / 0.95047;
  const y = 0.2126 * R + 0.7152 * G + 0.0722 * B;
  const z = (0.0193 * R + 0.1192 * G + 0.9505 * B) / 1.08883;
  const f = (t: number) => (t > 216 / 24389 ? Math.cbrt(t) : (24389 / 27 * t + 16) / 116);
  const L = 116 * f(y) - 16;
  const A = 500 * (f(x) - f(y));
  const Bb = 200 * (f(y) - f(z));
  const clamp = (v: number) => Math.max(0, Math.min(65535, Math.round(v)));
  return [clamp(L / 100 * 65535), clamp((A + 128) / 255 * 65535), clamp((Bb + 128) / 255 * 65535)];
}
