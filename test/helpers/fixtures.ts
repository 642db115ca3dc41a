// The synthetic input files live in fixtures/files.ts, which bench/ uses too (bench/ does not import test/);
// this re-export keeps the suite's `./helpers/fixtures` imports.
export * from '../../fixtures/files';
