/**
 * The running test's context, as node:test passed it to a test function (`t`): its name, skip(reason),
 * diagnostic(message) and after(fn). jest has no such argument, so a test asks for it:
 *
 *     test('needs a tool', () => {
 *       const t = testContext();
 *       if (!hasTool('dcmj2pnm')) { t.skip('dcmj2pnm is not installed'); return; }
 *       ...
 *     });
 *
 * skip() says so loudly (console.warn with the test's name and the reason) and the test is reported as skipped, not
 * passed, unless it then fails. The state lives on the test file's global, kept by test/helpers/jest-environment.ts.
 */

export const CONTEXT_KEY = Symbol.for('cxr-opacity.test-context');

/** What the environment keeps for the running test. */
export interface TestState {
  name: string;
  fullName: string;
  skipped: string | undefined;
  cleanups: (() => unknown)[];
}

export interface TestContext {
  /** The test's own name (without its describe blocks). */
  readonly name: string;
  /** Marks the test skipped, with the reason, loudly. The test function goes on unless it returns. */
  skip(reason?: string): void;
  /** A note in the test output. */
  diagnostic(message: string): void;
  /** Runs fn when the test function has finished, pass or fail; an error it throws fails the test. */
  after(fn: () => unknown): void;
}

export function testContext(): TestContext {
  const state = (globalThis as unknown as Record<symbol, TestState | undefined>)[CONTEXT_KEY];
  if (!state) throw new Error('testContext() is for inside a running test (under test/helpers/jest-environment.ts; see jest.config.js)');
  return {
    name: state.name,
    skip(reason = '') {
      state.skipped = reason;
      console.warn(`SKIPPED: ${state.fullName}${reason ? `: ${reason}` : ''}`);
    },
    diagnostic(message) {
      console.log(`${state.fullName}: ${message}`);
    },
    after(fn) {
      state.cleanups.push(fn);
    },
  };
}
