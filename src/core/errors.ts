/**
 * An input we cannot analyse, with a reason the uploader can act on. The pipeline records it as a
 * FAILED result (it is not retried: the same bytes would fail again); anything that is not an
 * InputError is treated as transient and retried, then dead-lettered.
 */
export type InputErrorCode =
  | 'EMPTY'
  | 'UNRECOGNISED_FORMAT'
  | 'TRUNCATED'
  | 'CORRUPT'
  | 'TOO_LARGE'
  | 'UNSUPPORTED_TRANSFER_SYNTAX'
  | 'UNSUPPORTED_IMAGE'
  | 'NOT_FRONTAL'
  | 'NO_LUNGS_FOUND'
  /** The image is not a frontal chest X-ray (the learned guard and/or the lung-mask plausibility check). */
  | 'NOT_A_CHEST_XRAY'
  /** The DICOM structure passes a parsing limit (sequence depth, element count): refused before it is parsed. */
  | 'TOO_COMPLEX'
  /**
   * The header contradicts itself or its pixels, so the image would be read wrongly: pixel data length vs
   * Rows x Columns x samples x bits, SamplesPerPixel vs PhotometricInterpretation, absurd rescale values.
   */
  | 'INVALID_HEADER'
  /** The image is smaller than can be measured (decode MIN_IMAGE_SIDE on its short side). */
  | 'TOO_SMALL';

export class InputError extends Error {
  readonly code: InputErrorCode;
  constructor(code: InputErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InputError';
    this.code = code;
  }
}

export const isInputError = (e: unknown): e is InputError => e instanceof InputError;
