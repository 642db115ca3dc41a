// jest runs the suite (`npm test` runs tsc --noEmit and ESLint first). Tests use node:assert/strict, and import
// jest's functions from @jest/globals (no injected globals).
/** @type {import('jest').Config} */
module.exports = {
  roots: ['<rootDir>/test'],
  testMatch: ['<rootDir>/test/*.test.ts'],
  // TypeScript to CommonJS with swc (types are checked by tsc --noEmit, not here).
  transform: {
    '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' } }],
    // An ES-module-only dependency (of openapi-backend) that Node 20 requires natively but jest (before Node 24.9) cannot.
    '/node_modules/@apidevtools/json-schema-ref-parser/.+\\.js$': ['@swc/jest', { jsc: { parser: { syntax: 'ecmascript' }, target: 'es2022' }, module: { type: 'commonjs' } }],
  },
  transformIgnorePatterns: ['/node_modules/(?!@apidevtools/json-schema-ref-parser/)'],
  // jest's Node environment with the real typed arrays (onnxruntime-node checks them), Node's own console, and the
  // running test's context (t.skip, t.diagnostic, t.after: test/helpers/test-context.ts).
  testEnvironment: '<rootDir>/test/helpers/jest-environment.ts',
  injectGlobals: false,
  // Two test files at a time (the machines have 2+ cores; the heavy tests run the local pipeline and the model).
  maxWorkers: 2,
  // Tests that can take long name their own timeout; this one only catches a hang.
  testTimeout: 300_000,
  verbose: true,
};
