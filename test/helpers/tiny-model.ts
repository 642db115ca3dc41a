// The tiny ONNX models live in fixtures/tiny-model.ts, which bench/ uses too (bench/ does not import test/);
// this re-export keeps the suite's `./helpers/tiny-model` imports.
export * from '../../fixtures/tiny-model';
