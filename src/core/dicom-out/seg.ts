/**
 * Binary DICOM Segmentation (PS3.3 A.51) of our three masks over a single-frame DICOM radiograph: one
 * frame per segment (right lung, left lung, opacity), each with the source's rows and columns.
 *
 * The dataset is written here and encoded by dcmjs (DicomDict; the frames are bit-packed here, see buildSeg). dcmjs's own
 * derivations.Segmentation is not used because it does not fit a projection radiograph: it requires a
 * normalised multi-frame source with Shared/Per-frame Functional Groups and a Plane Position per frame
 * (it throws on a DX/CR image, which has neither), indexes frames by ImagePositionPatient (meaningless
 * here), and copies the source's Patient and Study attributes unconditionally, which the identity modes
 * (identity.ts) must decide.
 */
import { data as dcmjsData } from 'dcmjs';
import { setBitRun } from '../bits';
import { forEachUpsampledRow } from '../upsample';
import type { DicomSourceRefs, Mask, SegmentationMasks } from '../types';
import { CODES, type Code, type ModelId, SOP_CLASS, cielab, dateTime, equipment, ourUids, toPart10 } from './common';
import { identityAttributes, sourceUid, type IdentityMode } from './identity';

const { BitArray } = dcmjsData as unknown as { BitArray: { pack(a: Uint8Array): Uint8Array; unpack(a: ArrayBuffer | Uint8Array): Uint8Array } };

export interface SegmentDef {
  number: number;
  key: keyof SegmentationMasks;
  label: string;
  category: Code;
  type: Code;
  rgb: [number, number, number];
}

/** Our segments, in frame order (frame n holds segment n). */
export const SEGMENTS: readonly SegmentDef[] = [
  { number: 1, key: 'lungRight', label: 'Right lung', category: CODES.anatomicalStructure, type: CODES.rightLung, rgb: [0, 170, 255] },
  { number: 2, key: 'lungLeft', label: 'Left lung', category: CODES.anatomicalStructure, type: CODES.leftLung, rgb: [0, 220, 120] },
  { number: 3, key: 'opacity', label: 'Opacity', category: CODES.morphologicallyAltered, type: CODES.opacity, rgb: [255, 60, 40] },
];

export interface DicomOutInput {
  source: DicomSourceRefs;
  /** The masks on any grid (the working grid or the image's size): the frames are these upsampled to the source's size. */
  masks: SegmentationMasks;
  model: ModelId;
  identity: IdentityMode;
  /** The pseudonym key (HMAC secret of core/pseudonym.ts). */
  secret: string;
  /** A non-identifying id of the image (the pipeline's imageId): seeds our UIDs. */
  seed: string;
  /** The keyed patient pseudonym, used as Patient ID/Name under `deidentified`. */
  patientKey?: string;
  now: Date;
}

/** What the SR needs to reference the SEG. */
export interface SegRef {
  sopClassUid: string;
  sopInstanceUid: string;
  seriesInstanceUid: string;
  studyInstanceUid: string;
}

export function buildSeg(input: DicomOutInput): { bytes: Uint8Array; ref: SegRef } {
  const { source: src, masks, identity, secret, seed } = input;
  const { rows, columns } = src;
  for (const s of SEGMENTS) {
    const m = masks[s.key];
    if (m.data.length !== m.width * m.height) throw new Error(`SEG: the ${s.label} mask's data does not match its ${m.width} x ${m.height} size.`);
  }
  const uids = ourUids(secret, seed);
  const ids = identityAttributes(identity, src, secret, seed, input.patientKey);
  const ref = (uid: string) => sourceUid(identity, secret, uid);
  const { date, time } = dateTime(input.now);
  const frame = rows * columns;
  // The frames' bits one after another, first pixel in the lowest bit (PS3.5 8.1.1, as dcmjs's BitArray.pack
  // lays them out; test/dicom-seg.test.ts unpacks them with dcmjs and pydicom), padded to an even length. Packed
  // here from the masks' upsampled rows (core/upsample.ts: the same pixels as the mask PNGs), run by run: the
  // masks may be on the working grid, and no full-size mask (7.5 MB each for a 2500x3000 film) is made.
  const bytes = Math.ceil((frame * SEGMENTS.length) / 8);
  const pixelData = new Uint8Array(bytes + (bytes % 2));
  SEGMENTS.forEach((s, i) => {
    forEachUpsampledRow(masks[s.key], columns, rows, (y, runs, n) => {
      const first = i * frame + y * columns;
      for (let k = 0; k < 2 * n; k += 2) setBitRun(pixelData, first + runs[k], first + runs[k + 1], 'lsb');
    });
  });

  const algorithm = {
    AlgorithmFamilyCodeSequence: [CODES.artificialIntelligence],
    AlgorithmName: input.model.name.slice(0, 64),
    AlgorithmVersion: input.model.version.slice(0, 64),
  };
  const shared: Record<string, unknown> = {
    DerivationImageSequence: [{
      SourceImageSequence: [{
        ReferencedSOPClassUID: src.sopClassUid,
        ReferencedSOPInstanceUID: ref(src.sopInstanceUid),
        PurposeOfReferenceCodeSequence: [CODES.sourceForProcessing],
      }],
      DerivationCodeSequence: [CODES.segmentation],
    }],
  };
  // With a Frame of Reference the Pixel Measures macro needs a Slice Thickness (PS3.3 C.7.6.16.2.1, as
  // dciodvfy checks it), which a projection radiograph rarely has and we must not invent: the source's
  // Frame of Reference is carried only when it gives one. Without Image Position/Orientation (a DX/CR
  // image has none) a Frame of Reference locates nothing; the frames are aligned by the Derivation Image
  // and Referenced Series references and by having the source's rows and columns.
  const frameOfReference = src.frameOfReferenceUid && src.sliceThicknessMm ? src.frameOfReferenceUid : undefined;
  if (src.pixelSpacingMm) {
    shared.PixelMeasuresSequence = [{
      PixelSpacing: src.pixelSpacingMm.map(ds), ...(frameOfReference ? { SliceThickness: ds(src.sliceThicknessMm!) } : {}),
    }];
  }

  const dataset: Record<string, unknown> = {
    SOPClassUID: SOP_CLASS.segmentation,
    SOPInstanceUID: uids.segInstance,
    ...ids,
    Modality: 'SEG',
    SeriesInstanceUID: uids.segSeries,
    SeriesNumber: '901',
    SeriesDescription: 'cxr-opacity lungs and opacity',
    InstanceNumber: '1',
    ...equipment(input.model),
    ...(frameOfReference ? { FrameOfReferenceUID: ref(frameOfReference), PositionReferenceIndicator: '' } : {}),
    ImageType: ['DERIVED', 'PRIMARY'],
    PatientOrientation: src.patientOrientation ?? '',
    ContentDate: date,
    ContentTime: time,
    ContentLabel: 'LUNG_OPACITY',
    ContentDescription: 'Lungs and opacity, automatic',
    ContentCreatorName: '',
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    Rows: rows,
    Columns: columns,
    BitsAllocated: 1,
    BitsStored: 1,
    HighBit: 0,
    PixelRepresentation: 0,
    LossyImageCompression: '00',
    SegmentationType: 'BINARY',
    NumberOfFrames: SEGMENTS.length,
    InstanceCreationDate: date,
    InstanceCreationTime: time,
    DimensionOrganizationSequence: [{ DimensionOrganizationUID: uids.dimensionOrganization }],
    DimensionIndexSequence: [{
      DimensionOrganizationUID: uids.dimensionOrganization,
      DimensionIndexPointer: 0x0062000b, // ReferencedSegmentNumber
      FunctionalGroupPointer: 0x0062000a, // SegmentIdentificationSequence
      DimensionDescriptionLabel: 'Segment',
    }],
    SegmentSequence: SEGMENTS.map((s) => ({
      SegmentNumber: s.number,
      SegmentLabel: s.label,
      SegmentedPropertyCategoryCodeSequence: [s.category],
      SegmentedPropertyTypeCodeSequence: [s.type],
      SegmentAlgorithmType: 'AUTOMATIC',
      SegmentAlgorithmName: input.model.name.slice(0, 64),
      SegmentationAlgorithmIdentificationSequence: [algorithm],
      RecommendedDisplayCIELabValue: cielab(...s.rgb),
    })),
    SharedFunctionalGroupsSequence: [shared],
    PerFrameFunctionalGroupsSequence: SEGMENTS.map((s) => ({
      FrameContentSequence: [{ DimensionIndexValues: [s.number] }],
      SegmentIdentificationSequence: [{ ReferencedSegmentNumber: s.number }],
    })),
    ReferencedSeriesSequence: [{
      SeriesInstanceUID: ref(src.seriesInstanceUid),
      ReferencedInstanceSequence: [{ ReferencedSOPClassUID: src.sopClassUid, ReferencedSOPInstanceUID: ref(src.sopInstanceUid) }],
    }],
    PixelData: [pixelData],
    _vrMap: { PixelData: 'OB' },
  };
  // Common Instance Reference (PS3.3 C.12.2): a source in another study than ours is listed there.
  const sourceStudy = ref(src.studyInstanceUid);
  if (sourceStudy !== ids.StudyInstanceUID) {
    dataset.StudiesContainingOtherReferencedInstancesSequence = [{
      StudyInstanceUID: sourceStudy,
      ReferencedSeriesSequence: dataset.ReferencedSeriesSequence,
    }];
    delete dataset.ReferencedSeriesSequence;
  }
  return {
    bytes: toPart10(dataset),
    ref: {
      sopClassUid: SOP_CLASS.segmentation, sopInstanceUid: uids.segInstance,
      seriesInstanceUid: uids.segSeries, studyInstanceUid: ids.StudyInstanceUID as string,
    },
  };
}

/** A DICOM SEG's frames as masks (frame n -> segment n's mask), read with dcmjs: for tests and tools. */
export function readSegFrames(bytes: Uint8Array): { rows: number; columns: number; frames: Mask[]; dataset: Record<string, unknown> } {
  const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const dict = dcmjsData.DicomMessage.readFile(ab);
  const ds = dcmjsData.DicomMetaDictionary.naturalizeDataset(dict.dict) as Record<string, unknown>;
  const rows = Number(ds.Rows);
  const columns = Number(ds.Columns);
  const n = Number(ds.NumberOfFrames);
  const raw = ds.PixelData as ArrayBuffer[];
  const bits = BitArray.unpack(new Uint8Array(raw[0]));
  const frame = rows * columns;
  const frames: Mask[] = [];
  for (let f = 0; f < n; f++) frames.push({ width: columns, height: rows, data: Uint8Array.from(bits.subarray(f * frame, (f + 1) * frame), (v) => (v ? 1 : 0)) });
  return { rows, columns, frames, dataset: ds };
}

/** DS text of a spacing (at most 16 characters). */
function ds(v: number): string {
  const s = String(v);
  return s.length <= 16 ? s : v.toPrecision(10).replace(/\.?0+$/, '');
}
