/**
 * Shared data types of the functional core. Nothing here imports AWS: the core is plain functions
 * over these values, and the Lambda handlers / local runner / CLI are thin edges around it.
 */

/** The kinds of input the decoder recognises (by content, never by file name). */
export type InputFormat = 'dicom' | 'png' | 'jpeg';

/** Non-identifying acquisition facts read from the input. Never holds names, IDs or dates of birth. */
export interface ImageMeta {
  format: InputFormat;
  /** DICOM Transfer Syntax UID, for DICOM inputs (always one of the supported syntaxes). */
  transferSyntaxUid?: string;
  /** DICOM Modality defined term (CR, DX, ...), or 'OTHER' for any other text: tag text is never copied. */
  modality?: string;
  /** DICOM ViewPosition defined term (PA, AP, LL, ...) when present, or 'OTHER' for any other text. */
  viewPosition?: string;
  /** DICOM PhotometricInterpretation defined term (MONOCHROME2, RGB, ...), or 'OTHER'. */
  photometricInterpretation?: string;
  bitsStored?: number;
  /** Row and column spacing in mm (PixelSpacing, else ImagerPixelSpacing), when the DICOM gives it. */
  pixelSpacingMm?: [number, number];
  /** How the display window was chosen: from the DICOM tags, a percentile fallback, or none (8-bit raster). */
  window?: { center: number; width: number; source: 'dicom' | 'percentile' };
  /** Study / acquisition date-time (ISO 8601) when the input has one; used to order a patient's images. */
  acquiredAt?: string;
}

/**
 * Identifiers as found in the input. They are only ever passed to the pseudonymiser
 * (core/pseudonym.ts) and never logged or stored as they are.
 */
export interface RawIdentifiers {
  patientId?: string;
  studyInstanceUid?: string;
}

/**
 * A decoded grayscale image: row-major, 0 = black (air), white (bone) at the top of the range. Either floats in
 * [0, 1], or 16-bit display values (value / 65535 in [0, 1]), which is what the decoders produce: half the memory
 * of floats (a 2500x3000 film is 15 MB, not 30), and exactly what the model's 16-bit resize reads
 * (core/preprocess.ts), so nothing is lost. core/gray.ts reads either.
 */
export interface GrayImage {
  width: number;
  height: number;
  data: Float32Array | Uint16Array;
  /**
   * Colour inputs only: the share of pixels with colour other than the image's one tint (coloured marks: an overlay,
   * annotations), measured by the decoder before the image became gray; core/guard.ts judgeColourMarks refuses a
   * chest film carrying too many.
   */
  colourMarkedShare?: number;
}

export interface DecodedImage extends GrayImage {
  meta: ImageMeta;
  identifiers: RawIdentifiers;
  /** DICOM inputs only: what the DICOM SEG/SR writers (core/dicom-out) need. Holds identifiers. */
  dicomSource?: DicomSourceRefs;
}

/**
 * What core/dicom-out needs of a DICOM source to write a SEG and an SR that line up with it: its
 * references and geometry, and (for the `linked` and `deidentified` identity modes) its Patient and
 * General Study module attributes as found. It holds identifiers (UIDs, names, ids, dates): it is only
 * ever handed to core/dicom-out, and never logged, put in a stage message or stored in a result item.
 */
export interface DicomSourceRefs {
  sopClassUid: string;
  sopInstanceUid: string;
  seriesInstanceUid: string;
  studyInstanceUid: string;
  frameOfReferenceUid?: string;
  rows: number;
  columns: number;
  /** PixelSpacing (else ImagerPixelSpacing), row then column spacing in mm, when the source gives it. */
  pixelSpacingMm?: [number, number];
  /** SliceThickness in mm, when the source gives one (projection radiographs rarely do). */
  sliceThicknessMm?: number;
  /** PatientOrientation (row and column directions, e.g. ['L', 'F']), when the source gives it. */
  patientOrientation?: [string, string];
  /** Patient and General Study module attributes (dcmjs naturalized keyword -> value), as found. */
  patientStudy: Record<string, unknown>;
}

/** A binary mask (0 or 1 per pixel), row-major. */
export interface Mask {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Interleaved 8-bit RGB pixels, row-major (the overlay picture). */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/**
 * The three masks the model contract produces, all of one size: the working grid as segmentImage returns them
 * (core/postprocess.ts), the image's size after upsampleMasks (core/upsample.ts). Sides are the patient's.
 */
export interface SegmentationMasks {
  lungRight: Mask;
  lungLeft: Mask;
  opacity: Mask;
}

/** Model manifest: models/<name>.json, written by models/training/export.py. */
export interface ModelManifest {
  name: string;
  version: string;
  /** File name of the .onnx, relative to the manifest. */
  file: string;
  /** sha256 (hex) of the .onnx file; checked when the session loads. */
  sha256: string;
  input: {
    name: string; // "image"
    size: number; // S: the model takes [N,1,S,S]
    /** 'stretch': the whole image is resized to SxS ignoring aspect ratio (as in training). */
    resize: 'stretch';
    /** x = (pixel in [0,1] - mean) / std */
    normalization: { mean: number; std: number };
  };
  output: {
    name: string; // "probabilities"
    /** Channel order of the [N,3,S,S] output: always lung_right, lung_left, opacity. */
    channels: ['lung_right', 'lung_left', 'opacity'];
    /** The output already holds probabilities (sigmoid applied inside the graph). */
    activation: 'sigmoid';
  };
  thresholds: { lung_right: number; lung_left: number; opacity: number };
  /** Guard manifest file name, relative to this manifest (e.g. "cxr-guard.json"); loaded with the model. */
  guard?: string;
  /** Free-form provenance: data sets, counts, licences, split file, commit, metrics. */
  training: Record<string, unknown>;
}

/** Per-side triple used throughout the score. `right`/`left` are the patient's lungs. */
export interface Sides<T> {
  total: T;
  right: T;
  left: T;
}

/** Radiologist-style six-zone score: each lung split into upper/middle/lower thirds of its height, 0-3 each. */
export interface ZoneScores {
  total: number; // 0-18
  right: { upper: number; middle: number; lower: number };
  left: { upper: number; middle: number; lower: number };
}

/** What score.ts computes from the masks (plus models/severity.json). */
export interface OpacityScore {
  lungAreaPx: Sides<number>;
  opacityAreaPx: Sides<number>;
  /** Only when the DICOM gives a pixel spacing. */
  lungAreaMm2?: Sides<number>;
  opacityAreaMm2?: Sides<number>;
  /** Opacity area as % of lung area (0-100); null where that lung area is 0. */
  opacityPct: Sides<number | null>;
  /** Geographic extent 0-8 (each lung 0-4 by involved share: 0, <25%, 25-50%, 50-75%, >75%). */
  geographicExtent: Sides<number>;
  zones: ZoneScores;
  /** Severity grade from models/severity.json cut-offs on total opacity %. */
  grade: { label: string; index: number };
  /** Calibrated outcome risk (probability 0-1) from the logistic models in models/severity.json. */
  risk: { icu: number | null; mortality: number | null };
  severityVersion: string;
}

/** Guard manifest: models/cxr-guard.json, written by models/training/guard.py. */
export interface GuardManifest {
  name: string;
  version: string;
  file: string;
  sha256: string;
  /** The same input tensor as the segmentation model (same size and normalisation). */
  input: ModelManifest['input'] & { note?: string };
  output: {
    name: string;
    classes: ['frontal_cxr', 'frontal_cxr_mirrored', 'not_frontal_cxr'];
    activation: 'softmax';
    /** The autoencoder's reconstruction-error output (out-of-distribution check), when the graph has one. */
    reconstruction?: { name: string; description?: string };
  };
  /** Refuse when P(not_frontal_cxr) reaches `not_frontal_cxr`, or the reconstruction error exceeds its threshold. */
  thresholds: { not_frontal_cxr: number; reconstruction_error?: number };
  training: Record<string, unknown>;
}

/** What the guard says about n images: [n,3] class probabilities and, when it has one, [n] reconstruction errors. */
export interface GuardOutput {
  classes: Float32Array;
  reconstructionError?: Float32Array;
}

/** A loaded guard (layers/onnx): input [n,1,S,S] like the segmentation model. */
export interface GuardModel {
  readonly manifest: GuardManifest;
  run(input: Float32Array, n: number): Promise<GuardOutput>;
}

/** Something about a usable result that a reader should check (it was still measured). */
export interface QualityWarning {
  code: 'ASYMMETRIC_LUNGS' | 'LUNGS_CUT_OFF' | 'POSSIBLY_MIRRORED' | 'ATYPICAL_IMAGE';
  message: string;
}

/** What the refusal checks saw on an image they let through (src/core/guard.ts). */
export interface QualityReport {
  /** The guard's class probabilities (and reconstruction error, when it has one), when the model has a guard. */
  guard?: { frontal: number; mirrored: number; notChest: number; reconstructionError?: number };
  warnings: QualityWarning[];
}

/** A loaded segmentation model (implemented over onnxruntime-node in layers/onnx). */
export interface SegmentationModel {
  readonly manifest: ModelManifest;
  /** The non-chest guard shipped with the model (models/cxr-guard.json), when the manifest names one. */
  readonly guard?: GuardModel;
  /** Input [n,1,S,S] normalised; returns probabilities [n,3,S,S]. */
  run(input: Float32Array, n: number): Promise<Float32Array>;
  release(): Promise<void>;
}
