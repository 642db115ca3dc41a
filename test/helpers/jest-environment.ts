/**
 * The jest test environment (jest.config.js): jest's Node environment, with the real typed arrays and the per-test
 * context of test/helpers/test-context.ts.
 *
 * Typed arrays: jest runs each test file in its own V8 context, whose Float32Array, Int32Array, ... are not the
 * ones native code and Node's own modules create and check for. onnxruntime-node rejects a Float32Array made in the
 * test's context (`instanceof Float32Array` fails across contexts), and a tensor's data would not be an instance of
 * the test's Float32Array. jest shares ArrayBuffer, Uint8Array and Buffer already; this shares the rest.
 *
 * Values that Node's own modules and native addons make (fs.readdirSync's array, esbuild's result, a tensor's dims)
 * still belong to the outer context, and node:assert/strict's deepEqual compares prototypes: compare a copy
 * (`[...readdirSync(dir)]`) with a literal.
 *
 * Console: the tests' console is Node's own (writing to process.stdout and process.stderr), as under node --test,
 * not jest's: tests capture what a CLI prints through process.stdout.write or by replacing console.log.
 *
 * Test context: what node:test gave a test as `t` (its name, skip, diagnostic, after): test-context.ts's
 * testContext() reads the running test's state that this environment keeps, runs `after` callbacks when the test
 * function ends (their errors fail the test), and reports a test that called skip() and did not fail as skipped.
 */
import type { Circus } from '@jest/types';
import { TestEnvironment as NodeEnvironment } from 'jest-environment-node';
import { CONTEXT_KEY, type TestState } from './test-context';

const SHARED_GLOBALS = [
  'ArrayBuffer', 'SharedArrayBuffer', 'DataView',
  'Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array',
  'Float32Array', 'Float64Array', 'BigInt64Array', 'BigUint64Array',
] as const;

/** "describe > ... > test" as jest prints it. */
function fullName(test: Circus.TestEntry): string {
  const names: string[] = [test.name];
  for (let b: Circus.DescribeBlock | undefined = test.parent; b && b.parent; b = b.parent) names.unshift(b.name);
  return names.join(' › ');
}

export default class Environment extends NodeEnvironment {
  constructor(...args: ConstructorParameters<typeof NodeEnvironment>) {
    super(...args);
    const g = this.global as unknown as Record<string, unknown>;
    for (const name of SHARED_GLOBALS) g[name] = globalThis[name];
  }

  override async setup(): Promise<void> {
    await super.setup();
    // jest-runner has installed its own console on the test's global by now.
    this.global.console = console;
  }

  private get state(): TestState | undefined {
    return (this.global as unknown as Record<symbol, TestState | undefined>)[CONTEXT_KEY];
  }

  private set state(s: TestState | undefined) {
    (this.global as unknown as Record<symbol, TestState | undefined>)[CONTEXT_KEY] = s;
  }

  async handleTestEvent(event: Circus.Event): Promise<void> {
    switch (event.name) {
      case 'test_start':
        this.state = { name: event.test.name, fullName: fullName(event.test), skipped: undefined, cleanups: [] };
        break;
      case 'test_fn_success':
      case 'test_fn_failure': {
        const s = this.state;
        if (!s) break;
        // node:test runs a test's `after` callbacks once the test function has finished, pass or fail.
        for (const fn of s.cleanups.splice(0)) {
          try {
            await fn();
          } catch (e) {
            event.test.errors.push(e);
          }
        }
        break;
      }
      case 'test_done': {
        const s = this.state;
        if (s?.skipped !== undefined && event.test.errors.length === 0) event.test.status = 'skip';
        this.state = undefined;
        break;
      }
      default:
        break;
    }
  }
}
