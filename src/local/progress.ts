/**
 * npm start's progress: on a terminal a cli-progress bar (count, rate, ETA, tallies) with one line per
 * finished image printed above it; elsewhere (a pipe, a CI log) one plain line per finished image that
 * carries the same count, rate and ETA. Rate and ETA count images finished by this run's processing
 * since the first one started, so images reused from an earlier run do not inflate the rate.
 */
import { MultiBar, Presets, type SingleBar } from 'cli-progress';

export interface Tally { scored: number; failed: number; lost: number; reused: number }

/** "1h02m", "4m05s", "12s". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}

export class Progress {
  readonly tally: Tally = { scored: 0, failed: 0, lost: 0, reused: 0 };
  private done = 0;
  private computed = 0;
  private firstStart?: number;
  private readonly multi?: MultiBar;
  private readonly bar?: SingleBar;

  constructor(private total: number, opts: { tty?: boolean; stream?: NodeJS.WriteStream } = {}) {
    const stream = opts.stream ?? process.stderr;
    if (opts.tty ?? stream.isTTY) {
      this.multi = new MultiBar({
        stream, hideCursor: true, clearOnComplete: false, stopOnComplete: false, etaBuffer: 20,
        // {eta} is cli-progress's own (counting reused images too): ours is {remaining}.
        format: '{bar} {value}/{total} | {rate} img/s | ETA {remaining} | {scored} scored, {failed} failed, {lost} lost, {reused} reused',
      }, Presets.shades_classic);
      this.bar = this.multi.create(total, 0, this.payload());
    }
  }

  /** The first image went into processing (rate and ETA count from here). */
  started(): void {
    this.firstStart ??= Date.now();
  }

  /** More inputs (--watch). */
  grow(by = 1): void {
    this.total += by;
    this.bar?.setTotal(this.total);
  }

  /** One input finished; `line` describes it. */
  finish(kind: 'scored' | 'failed' | 'lost', line: string, reused = false): void {
    this.done++;
    if (reused) this.tally.reused++;
    else this.computed++;
    this.tally[kind]++;
    const text = `[${this.done}/${this.total}] ${line}`;
    if (this.multi && this.bar) {
      this.multi.log(`${text}\n`);
      this.bar.update(this.done, this.payload());
    } else {
      console.log(`${text}  (${this.rateText()} img/s, ETA ${formatDuration(this.etaSeconds())})`);
    }
  }

  stop(): void {
    // MultiBar.log() buffers lines until the next redraw; draw once more so the last lines are not lost.
    this.multi?.update();
    this.multi?.stop();
  }

  private rate(): number {
    if (!this.firstStart || this.computed === 0) return 0;
    return this.computed / Math.max(0.001, (Date.now() - this.firstStart) / 1000);
  }

  private rateText(): string {
    const r = this.rate();
    return r > 0 ? r.toFixed(r >= 10 ? 0 : 2) : '-';
  }

  private etaSeconds(): number {
    const r = this.rate();
    return r > 0 ? (this.total - this.done) / r : NaN;
  }

  private payload() {
    return { rate: this.rateText(), remaining: formatDuration(this.etaSeconds()), ...this.tally };
  }
}
