/** The overlay's colours (sRGB 0-255), one definition for the renderer and every legend that explains it. */
export const OPACITY_RGB = [255, 120, 0] as const;
export const OPACITY_ALPHA = 0.45;
/** The patient's right lung outline. */
export const RIGHT_RGB = [0, 220, 255] as const;
/** The patient's left lung outline. */
export const LEFT_RGB = [255, 0, 200] as const;
