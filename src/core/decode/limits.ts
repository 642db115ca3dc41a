/**
 * The size floor every input passes, DICOM or raster.
 *
 * MIN_IMAGE_SIDE: a chest film whose short side is under 128 pixels cannot be measured. The model sees the
 * image resized to its input size (256-512 px), so a smaller film is upsampled from fewer pixels than the
 * model was trained on, and the score divides each lung into three zones: at 128 px a lung field is about
 * 40 x 80 px, a zone some 25 rows. Below that (the tester's 8 x 8 and 32 x 26 DICOMs were scored) the
 * opacity percentage is a measurement of interpolation, not of the lung. Thumbnails and icons land here.
 */
import { InputError } from '../errors';

export const MIN_IMAGE_SIDE = 128;

export function tooSmall(label: string, width: number, height: number, minSide: number): InputError {
  return new InputError('TOO_SMALL', `The ${label} image is ${width} x ${height} pixels; the smallest image that can be measured has ${minSide} pixels on its short side (a smaller chest film has too few pixels per lung zone). Upload the original, full-resolution image rather than a thumbnail.`);
}
