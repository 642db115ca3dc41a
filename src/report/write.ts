/**
 * Writes a run's report next to its outputs: DIR/results.csv and DIR/report.html. The edge around the
 * pure csv/html renderers: reads each overlay once to make its inline thumbnail (sharp), and the
 * severity grades so that the distribution shows every grade. Both entry points (npm start, analyze) call it.
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { loadSeverityConfig } from '../core/severity';
import { resultsCsv } from './csv';
import { reportHtml } from './html';
import type { ReportRow } from './rows';

export const RESULTS_CSV = 'results.csv';
export const REPORT_HTML = 'report.html';
/** Thumbnail width in pixels (twice the 120 CSS pixels it is shown at, for high-density screens). */
const THUMB_WIDTH = 240;

export interface WriteReportOptions {
  /** Whether the run keeps file names (KEEP_SOURCE_KEYS=true): only then does results.csv name inputs. */
  fileNames?: boolean;
  title?: string;
}

/** A small JPEG of DIR/<input>/overlay.png as a data: URI, or undefined when there is none to read. */
async function thumbnail(dir: string, input: string): Promise<string | undefined> {
  try {
    const jpeg = await sharp(readFileSync(join(dir, input, 'overlay.png')))
      .resize({ width: THUMB_WIDTH, height: THUMB_WIDTH, fit: 'inside', withoutEnlargement: true })
      .jpeg({ quality: 72 }).toBuffer();
    return `data:image/jpeg;base64,${jpeg.toString('base64')}`;
  } catch {
    return undefined;
  }
}

export async function writeReport(dir: string, rows: ReportRow[], opts: WriteReportOptions = {}): Promise<{ csv: string; html: string }> {
  mkdirSync(dir, { recursive: true });
  const csv = join(dir, RESULTS_CSV);
  writeFileSync(csv, resultsCsv(rows, { fileNames: opts.fileNames }));
  const thumbnails = new Map<string, string>();
  for (const r of rows) {
    if (!r.item?.keys) continue;
    const t = await thumbnail(dir, r.input);
    if (t) thumbnails.set(r.input, t);
  }
  let grades: string[] | undefined;
  try {
    grades = loadSeverityConfig().grades.bins.map((b) => b.label);
  } catch {
    grades = undefined; // the distribution then shows the grades seen
  }
  const html = join(dir, REPORT_HTML);
  writeFileSync(html, reportHtml(rows, { thumbnails, grades, title: opts.title }));
  return { csv, html };
}
