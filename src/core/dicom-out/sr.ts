/**
 * TID 1500 Measurement Report (Comprehensive SR) of one scored radiograph: per lung, the lung area (mm²,
 * when the pixel spacing is known); per lung and in total, the opacity area, the opacity %, the geographic
 * extent and the zone score; in total the grade. Each measurement group (TID 1410 Planar ROI Measurements)
 * references its SEG segment (Referenced Segmentation Frame, with the source image it segments), and each
 * measurement names the algorithm (TID 4019).
 *
 * The content tree is written here and encoded by dcmjs (DicomDict). dcmjs's sr.templates are not used:
 * in 0.52 ReferencedSegmentation/ReferencedSegmentationFrame read `options.sopClassUid` after checking
 * `options.sopClassUID` (so the reference is written empty), ReferencedSegmentationFrame calls a class
 * without `new`, PlanarROIMeasurementsAndQualitativeEvaluations always passes `referencedRegions: [undefined]`
 * and so refuses any referencedSegmentation, and the measurement group calls console.log on every
 * measurement (we never log).
 */
import type { OpacityScore } from '../types';
import { CODES, CODING_SCHEME_IDENTIFICATION, type Code, SOP_CLASS, dateTime, equipment, ourUids, toPart10 } from './common';
import { identityAttributes, sourceUid } from './identity';
import { SEGMENTS, type DicomOutInput, type SegRef } from './seg';

type Item = Record<string, unknown>;

const concept = (c: Code) => [c];
const container = (rel: string | undefined, name: Code, children: Item[], extra: Item = {}): Item => ({
  ...(rel ? { RelationshipType: rel } : {}), ValueType: 'CONTAINER', ConceptNameCodeSequence: concept(name),
  ContinuityOfContent: 'SEPARATE', ...extra, ContentSequence: children,
});
const text = (rel: string, name: Code, value: string): Item => ({ RelationshipType: rel, ValueType: 'TEXT', ConceptNameCodeSequence: concept(name), TextValue: value.slice(0, 1024) });
const codeItem = (rel: string, name: Code, value: Code): Item => ({ RelationshipType: rel, ValueType: 'CODE', ConceptNameCodeSequence: concept(name), ConceptCodeSequence: [value] });
const uidref = (rel: string, name: Code, value: string): Item => ({ RelationshipType: rel, ValueType: 'UIDREF', ConceptNameCodeSequence: concept(name), UID: value });
const image = (rel: string, name: Code | undefined, ref: Item): Item => ({
  RelationshipType: rel, ValueType: 'IMAGE', ...(name ? { ConceptNameCodeSequence: concept(name) } : {}), ReferencedSOPSequence: [ref],
});

const c = (CodeValue: string, CodingSchemeDesignator: string, CodeMeaning: string): Code => ({ CodeValue, CodingSchemeDesignator, CodeMeaning });
const SR = {
  report: c('126000', 'DCM', 'Imaging Measurement Report'),
  language: c('121049', 'DCM', 'Language of Content Item and Descendants'),
  english: c('en-US', 'RFC5646', 'English (United States)'),
  observerType: c('121005', 'DCM', 'Observer Type'),
  device: c('121007', 'DCM', 'Device'),
  deviceUid: c('121012', 'DCM', 'Device Observer UID'),
  deviceName: c('121013', 'DCM', 'Device Observer Name'),
  deviceModel: c('121015', 'DCM', 'Device Observer Model Name'),
  procedure: c('121058', 'DCM', 'Procedure reported'),
  chestXray: c('399208008', 'SCT', 'Plain chest X-ray'),
  imageLibrary: c('111028', 'DCM', 'Image Library'),
  imageLibraryGroup: c('126200', 'DCM', 'Image Library Group'),
  measurements: c('126010', 'DCM', 'Imaging Measurements'),
  group: c('125007', 'DCM', 'Measurement Group'),
  trackingId: c('112039', 'DCM', 'Tracking Identifier'),
  trackingUid: c('112040', 'DCM', 'Tracking Unique Identifier'),
  finding: c('121071', 'DCM', 'Finding'),
  findingSite: c('363698007', 'SCT', 'Finding Site'),
  segFrame: c('121214', 'DCM', 'Referenced Segmentation Frame'),
  sourceForSeg: c('121233', 'DCM', 'Source image for segmentation'),
  algorithmName: c('111001', 'DCM', 'Algorithm Name'),
  algorithmVersion: c('111003', 'DCM', 'Algorithm Version'),
};

/** NumericValue (DS, at most 16 characters) of a measurement, rounded to `digits` decimals. */
function dsValue(v: number, digits: number): string {
  return String(Number(v.toFixed(digits)));
}

export function buildSr(input: DicomOutInput, score: OpacityScore, seg: SegRef): Uint8Array {
  const { source: src, identity, secret, seed, model } = input;
  const uids = ourUids(secret, seed);
  const ids = identityAttributes(identity, src, secret, seed, input.patientKey);
  const ref = (uid: string) => sourceUid(identity, secret, uid);
  const { date, time } = dateTime(input.now);
  const sourceRef = { ReferencedSOPClassUID: src.sopClassUid, ReferencedSOPInstanceUID: ref(src.sopInstanceUid) };
  const algorithm = [
    text('HAS CONCEPT MOD', SR.algorithmName, model.name),
    text('HAS CONCEPT MOD', SR.algorithmVersion, model.version),
  ];
  const num = (name: Code, value: number, digits: number, unit: Code): Item => ({
    RelationshipType: 'CONTAINS', ValueType: 'NUM', ConceptNameCodeSequence: concept(name),
    MeasuredValueSequence: [{ NumericValue: dsValue(value, digits), MeasurementUnitsCodeSequence: [unit] }],
    ContentSequence: algorithm,
  });
  const segNumber = (key: 'lungRight' | 'lungLeft' | 'opacity') => SEGMENTS.find((s) => s.key === key)!.number;
  /** A TID 1410 group: tracking ids, finding (and site), the SEG frame of its segment and the source image, measurements. */
  const group = (id: string, finding: Code, site: Code | undefined, segment: number, measurements: Item[]): Item =>
    container('CONTAINS', SR.group, [
      text('HAS OBS CONTEXT', SR.trackingId, id),
      uidref('HAS OBS CONTEXT', SR.trackingUid, uids.tracking(id)),
      codeItem('CONTAINS', SR.finding, finding),
      ...(site ? [codeItem('HAS CONCEPT MOD', SR.findingSite, site)] : []),
      image('CONTAINS', SR.segFrame, {
        ReferencedSOPClassUID: seg.sopClassUid, ReferencedSOPInstanceUID: seg.sopInstanceUid,
        // Frame n of our SEG holds exactly segment n (seg.ts SEGMENTS): the frame names the segment, and
        // PS3.3 C.17.3.3 forbids ReferencedSegmentNumber beside ReferencedFrameNumber.
        ReferencedFrameNumber: [segment],
      }),
      image('CONTAINS', SR.sourceForSeg, sourceRef),
      ...measurements,
    ], { ContentTemplateSequence: [{ MappingResource: 'DCMR', TemplateIdentifier: '1410' }] });

  const mm = !!score.lungAreaMm2 && !!score.opacityAreaMm2;
  const side = (s: 'right' | 'left'): Item[] => {
    const zones = score.zones[s];
    return [
      ...(mm ? [num(CODES.area, score.opacityAreaMm2![s], 1, CODES.mm2)] : []),
      ...(score.opacityPct[s] !== null ? [num(CODES.opacityPct, score.opacityPct[s]!, 2, CODES.percent)] : []),
      num(CODES.geographicExtent, score.geographicExtent[s], 0, CODES.score),
      num(CODES.zoneScore, zones.upper + zones.middle + zones.lower, 0, CODES.score),
    ];
  };
  const groups = [
    group('Right lung', CODES.rightLung, undefined, segNumber('lungRight'), mm ? [num(CODES.area, score.lungAreaMm2!.right, 1, CODES.mm2)] : []),
    group('Left lung', CODES.leftLung, undefined, segNumber('lungLeft'), mm ? [num(CODES.area, score.lungAreaMm2!.left, 1, CODES.mm2)] : []),
    group('Opacity, right lung', CODES.opacity, CODES.rightLung, segNumber('opacity'), side('right')),
    group('Opacity, left lung', CODES.opacity, CODES.leftLung, segNumber('opacity'), side('left')),
    group('Opacity, both lungs', CODES.opacity, CODES.lung, segNumber('opacity'), [
      ...(mm ? [num(CODES.area, score.opacityAreaMm2!.total, 1, CODES.mm2)] : []),
      ...(score.opacityPct.total !== null ? [num(CODES.opacityPct, score.opacityPct.total, 2, CODES.percent)] : []),
      num(CODES.geographicExtent, score.geographicExtent.total, 0, CODES.score),
      num(CODES.zoneScore, score.zones.total, 0, CODES.score),
      text('CONTAINS', CODES.grade, score.grade.label),
    ]),
  ];

  const root = container(undefined, SR.report, [
    codeItem('HAS CONCEPT MOD', SR.language, SR.english),
    codeItem('HAS OBS CONTEXT', SR.observerType, SR.device),
    uidref('HAS OBS CONTEXT', SR.deviceUid, uids.tracking('device')),
    text('HAS OBS CONTEXT', SR.deviceName, 'cxr-opacity'),
    text('HAS OBS CONTEXT', SR.deviceModel, model.name),
    codeItem('HAS CONCEPT MOD', SR.procedure, SR.chestXray),
    container('CONTAINS', SR.imageLibrary, [
      container('CONTAINS', SR.imageLibraryGroup, [image('CONTAINS', undefined, sourceRef)]),
    ]),
    container('CONTAINS', SR.measurements, groups),
  ], { ContentTemplateSequence: [{ MappingResource: 'DCMR', TemplateIdentifier: '1500' }] });

  // Evidence: the source image and our SEG, each under its own study.
  const evidence = new Map<string, Item[]>();
  const addEvidence = (study: string, series: string, cls: string, inst: string) => {
    const list = evidence.get(study) ?? [];
    list.push({ SeriesInstanceUID: series, ReferencedSOPSequence: [{ ReferencedSOPClassUID: cls, ReferencedSOPInstanceUID: inst }] });
    evidence.set(study, list);
  };
  addEvidence(ref(src.studyInstanceUid), ref(src.seriesInstanceUid), src.sopClassUid, ref(src.sopInstanceUid));
  addEvidence(seg.studyInstanceUid, seg.seriesInstanceUid, seg.sopClassUid, seg.sopInstanceUid);

  const { ValueType, ConceptNameCodeSequence, ContinuityOfContent, ContentTemplateSequence, ContentSequence } = root;
  const dataset: Item = {
    SOPClassUID: SOP_CLASS.comprehensiveSR,
    SOPInstanceUID: uids.srInstance,
    ...ids,
    Modality: 'SR',
    SeriesInstanceUID: uids.srSeries,
    SeriesNumber: '902',
    SeriesDescription: 'cxr-opacity measurements',
    InstanceNumber: '1',
    ReferencedPerformedProcedureStepSequence: [],
    ...equipment(model),
    InstanceCreationDate: date,
    InstanceCreationTime: time,
    ContentDate: date,
    ContentTime: time,
    CompletionFlag: 'COMPLETE',
    VerificationFlag: 'UNVERIFIED',
    PerformedProcedureCodeSequence: [],
    CurrentRequestedProcedureEvidenceSequence: [...evidence].map(([StudyInstanceUID, ReferencedSeriesSequence]) => ({ StudyInstanceUID, ReferencedSeriesSequence })),
    CodingSchemeIdentificationSequence: CODING_SCHEME_IDENTIFICATION,
    ValueType, ConceptNameCodeSequence, ContinuityOfContent, ContentTemplateSequence, ContentSequence,
  };
  return toPart10(dataset);
}
