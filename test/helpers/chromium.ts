/**
 * Opens a page in a real headless Chromium (Debian's `chromium`) over the DevTools protocol on a pipe
 * (--remote-debugging-pipe: requests on fd 3, replies on fd 4, each a NUL-terminated JSON message),
 * and reports what a person would have seen go wrong: console errors, uncaught exceptions, log
 * entries of level error (failed loads, CSP refusals), images that did not load; plus a full-page
 * screenshot. No driver library: the protocol is a few messages.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';

/** The Chromium executable ($CHROMIUM, else `chromium` or `chromium-browser` on PATH), or undefined. */
export function findChromium(): string | undefined {
  for (const c of [process.env.CHROMIUM, 'chromium', 'chromium-browser'].filter(Boolean) as string[]) {
    if (spawnSync(c, ['--version'], { encoding: 'utf8', timeout: 30_000 }).status === 0) return c;
  }
  return undefined;
}

export interface PageReport {
  errors: string[];
  images: Array<{ src: string; naturalWidth: number; complete: boolean }>;
  /** What the page's own script reports back (Runtime.evaluate of `probe`). */
  probe?: unknown;
  title: string;
}

export async function inspectPage(chromium: string, file: string, screenshot: string, opts: { width?: number; probe?: string; timeoutMs?: number } = {}): Promise<PageReport> {
  const profile = mkdtempSync(join(tmpdir(), 'cxr-chromium-'));
  const proc = spawn(chromium, [
    '--headless', '--disable-gpu', '--no-sandbox', '--no-first-run', '--no-default-browser-check', '--disable-extensions',
    '--remote-debugging-pipe', `--user-data-dir=${profile}`, 'about:blank',
  ], { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d) => { stderr += d; });
  const toBrowser = proc.stdio[3] as Writable;
  const fromBrowser = proc.stdio[4] as Readable;
  let nextId = 1;
  /* eslint-disable @typescript-eslint/no-explicit-any -- DevTools protocol messages are untyped JSON */
  const pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
  const listeners: Array<(m: any) => void> = [];
  /* eslint-enable @typescript-eslint/no-explicit-any */
  let buf = '';
  fromBrowser.on('data', (d: Buffer) => {
    buf += d.toString('utf8');
    let i: number;
    while ((i = buf.indexOf('\0')) >= 0) {
      const msg = JSON.parse(buf.slice(0, i));
      buf = buf.slice(i + 1);
      if (msg.id !== undefined && pending.has(msg.id)) {
        const p = pending.get(msg.id)!;
        pending.delete(msg.id);
        if (msg.error) p.reject(new Error(`${msg.error.message} (${JSON.stringify(msg.error.data ?? '')})`));
        else p.resolve(msg.result);
      } else {
        for (const l of listeners) l(msg);
      }
    }
  });
  const exited = new Promise<void>((resolve) => proc.on('exit', () => {
    for (const p of pending.values()) p.reject(new Error(`chromium exited: ${stderr.slice(-2000)}`));
    resolve();
  }));
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- DevTools protocol results are untyped JSON
  const send = (method: string, params: object = {}, sessionId?: string): Promise<any> => new Promise((resolve, reject) => {
    const id = nextId++;
    pending.set(id, { resolve, reject });
    toBrowser.write(`${JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) })}\0`);
  });
  const timeout = setTimeout(() => proc.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
  try {
    const errors: string[] = [];
    const { targetId } = await send('Target.createTarget', { url: 'about:blank' });
    const { sessionId } = await send('Target.attachToTarget', { targetId, flatten: true });
    let loaded!: () => void;
    const loadFired = new Promise<void>((r) => { loaded = r; });
    listeners.push((m) => {
      if (m.sessionId !== sessionId) return;
      if (m.method === 'Runtime.consoleAPICalled' && ['error', 'assert'].includes(m.params.type)) {
        // eslint-disable-next-line @typescript-eslint/no-explicit-any -- DevTools protocol values are untyped JSON
        errors.push(`console.${m.params.type}: ${m.params.args.map((a: any) => a.value ?? a.description).join(' ')}`);
      } else if (m.method === 'Runtime.exceptionThrown') {
        errors.push(`exception: ${m.params.exceptionDetails.exception?.description ?? m.params.exceptionDetails.text}`);
      } else if (m.method === 'Log.entryAdded' && m.params.entry.level === 'error') {
        errors.push(`log (${m.params.entry.source}): ${m.params.entry.text} ${m.params.entry.url ?? ''}`.trim());
      } else if (m.method === 'Page.loadEventFired') {
        loaded();
      }
    });
    await Promise.all(['Runtime.enable', 'Log.enable', 'Page.enable'].map((m) => send(m, {}, sessionId)));
    const width = opts.width ?? 1280;
    await send('Emulation.setDeviceMetricsOverride', { width, height: 900, deviceScaleFactor: 1, mobile: false }, sessionId);
    await send('Page.navigate', { url: pathToFileURL(file).href }, sessionId);
    await loadFired;
    const evaluate = async (expression: string) => {
      const r = await send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true }, sessionId);
      if (r.exceptionDetails) throw new Error(`evaluate failed: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
      return r.result.value;
    };
    // Every image decoded (load fired after them, but decode() also waits for lazy ones to settle).
    const images = await evaluate(`Promise.all([...document.images].map((i) => i.decode().catch(() => null)))
      .then(() => [...document.images].map((i) => ({ src: i.currentSrc.slice(0, 120), naturalWidth: i.naturalWidth, complete: i.complete })))`);
    const probe = opts.probe ? await evaluate(opts.probe) : undefined;
    const title = await evaluate('document.title');
    const height = await evaluate('Math.ceil(document.documentElement.scrollHeight)');
    await send('Emulation.setDeviceMetricsOverride', { width, height: Math.min(height, 16_000), deviceScaleFactor: 1, mobile: false }, sessionId);
    const shot = await send('Page.captureScreenshot', { format: 'png' }, sessionId);
    writeFileSync(screenshot, Buffer.from(shot.data, 'base64'));
    await send('Browser.close').catch(() => undefined);
    await exited;
    return { errors, images, probe, title };
  } finally {
    clearTimeout(timeout);
    if (proc.exitCode === null) proc.kill('SIGKILL');
    rmSync(profile, { recursive: true, force: true });
  }
}
