/**
 * Which model manifest (in models/) everything loads by default, in one place: the CLI, `npm start`, the
 * evaluation and severity fitting (through layers/onnx/session.ts), the Lambda and SageMaker images' MODEL_MANIFEST
 * (cdk/lib), and the Dockerfiles' defaults (test/cdk-docker.test.ts checks they agree). No onnxruntime import here,
 * so the CDK app can read it.
 *
 * The default is the int8 model (issue 12: 1.7x faster inference, cold start 1.0 s against 1.8 s; every external22
 * metric inside the fp32 model's 95% CI, models/MODEL_CARD.md). The fp32 model it was quantised from stays
 * selectable (`--model models/cxr-unet-r18.json`, MODEL_MANIFEST) and is what training exports.
 */
export const MODEL_FILES = {
  /** int8 QDQ (models/quantize): the default. */
  int8: 'cxr-unet-r18-int8.json',
  /** fp32, as trained (models/training/export.py). */
  fp32: 'cxr-unet-r18.json',
} as const;

/** The manifest loaded when none is named. */
export const DEFAULT_MODEL_FILE: string = MODEL_FILES.int8;
