/**
 * The overlay picture as a DICOM Secondary Capture (PS3.3 A.8.1, RGB, 8 bits), for viewers and PACS
 * without SEG support: it files beside the source like the SEG and SR, under the same identity mode
 * (identity.ts), and references the source image it was drawn from (Source Image Sequence).
 *
 * Written here and encoded by dcmjs (DicomDict), as the SEG: dcmjs derives no Secondary Capture.
 * A picture, not a measurement: the SEG holds the masks and the SR the numbers.
 */
import { CODES, SOP_CLASS, dateTime, equipment, ourUids, toPart10 } from './common';
import { identityAttributes, sourceUid } from './identity';
import type { DicomOutInput } from './seg';
import type { RgbImage } from '../types';

export type { RgbImage };

/** What the capture needs: everything of the SEG's input but the masks. */
export type CaptureInput = Omit<DicomOutInput, 'masks'>;

export function buildOverlayCapture(input: CaptureInput, rgb: RgbImage): Uint8Array {
  const { source: src, identity, secret, seed } = input;
  if (rgb.data.length !== rgb.width * rgb.height * 3) throw new Error(`SC: ${rgb.data.length} bytes are not ${rgb.width} x ${rgb.height} RGB pixels`);
  const uids = ourUids(secret, seed);
  const ids = identityAttributes(identity, src, secret, seed, input.patientKey);
  const { date, time } = dateTime(input.now);
  // The overlay's own bytes (toPart10 copies them once into the file); an odd count gets its pad byte.
  const pixels = rgb.data.length % 2 ? padded(rgb.data) : rgb.data;
  return toPart10({
    SOPClassUID: SOP_CLASS.secondaryCapture,
    SOPInstanceUID: uids.scInstance,
    ...ids,
    Modality: 'OT',
    BodyPartExamined: 'CHEST',
    SeriesInstanceUID: uids.scSeries,
    SeriesNumber: '903',
    SeriesDescription: 'cxr-opacity overlay (secondary capture)',
    InstanceNumber: '1',
    ...equipment(input.model),
    ConversionType: 'WSD',
    PatientOrientation: src.patientOrientation ?? '',
    ContentDate: date,
    ContentTime: time,
    InstanceCreationDate: date,
    InstanceCreationTime: time,
    ImageType: ['DERIVED', 'SECONDARY'],
    DerivationDescription: `Lungs and opacity of ${input.model.name} ${input.model.version} drawn over the source image`.slice(0, 1024),
    SourceImageSequence: [{
      ReferencedSOPClassUID: src.sopClassUid,
      ReferencedSOPInstanceUID: sourceUid(identity, secret, src.sopInstanceUid),
      PurposeOfReferenceCodeSequence: [CODES.sourceForProcessing],
    }],
    BurnedInAnnotation: 'NO',
    LossyImageCompression: '00',
    SamplesPerPixel: 3,
    PhotometricInterpretation: 'RGB',
    PlanarConfiguration: 0,
    Rows: rgb.height,
    Columns: rgb.width,
    BitsAllocated: 8,
    BitsStored: 8,
    HighBit: 7,
    PixelRepresentation: 0,
    PixelData: [pixels],
    _vrMap: { PixelData: 'OB' },
  });
}

/** The bytes and one zero byte after them (a DICOM value has an even length). */
function padded(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(b.length + 1);
  out.set(b);
  return out;
}
