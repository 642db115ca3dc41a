/** Runs a command-line entry point in-process, capturing what it prints (stdout lines) and silencing stderr. */
export async function capture(fn: () => Promise<number>): Promise<{ code: number; out: string }> {
  const out: string[] = [];
  const log = console.log;
  const err = process.stderr.write.bind(process.stderr);
  console.log = (...a: unknown[]) => { out.push(a.join(' ')); };
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    return { code: await fn(), out: out.join('\n') };
  } finally {
    console.log = log;
    process.stderr.write = err;
  }
}
