/** Expands the paths given on the command line into the image files to analyse. */
import { createHash } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { basename, extname, join, relative } from 'node:path';

/** The file names taken as images (DICOM often has no extension). */
export const IMAGE_EXTENSIONS = new Set(['.dcm', '.dicom', '.dic', '.png', '.jpg', '.jpeg', '']);

export interface InputFile {
  path: string;
  /** A short, unique, file-system-safe name for outputs (relative path with '/' replaced). */
  name: string;
}

export function collectInputs(paths: string[]): InputFile[] {
  const files: { path: string; rel: string }[] = [];
  const walk = (dir: string, root: string) => {
    for (const entry of readdirSync(dir).sort()) {
      if (entry.startsWith('.')) continue;
      const p = join(dir, entry);
      const st = statSync(p);
      if (st.isDirectory()) walk(p, root);
      else if (IMAGE_EXTENSIONS.has(extname(entry).toLowerCase())) files.push({ path: p, rel: relative(root, p) });
    }
  };
  for (const p of paths) {
    let st;
    try {
      st = statSync(p);
    } catch {
      throw new Error(`${p}: no such file or folder`);
    }
    if (st.isDirectory()) walk(p, p);
    else files.push({ path: p, rel: basename(p) });
  }
  const seen = new Map<string, number>();
  return files.map((f) => {
    const flat = f.rel.replace(/[\\/]/g, '__');
    const n = seen.get(flat) ?? 0;
    seen.set(flat, n + 1);
    return { path: f.path, name: outputName(n > 0 ? `${flat}_${n}` : flat) };
  });
}

/**
 * Output folders are named after the input, but a file-system name is at most 255 bytes and a
 * flattened relative path can be longer: such names keep their first 200 bytes plus a hash of the
 * whole, so every input still gets its own folder (and `uploads/<name>` stays far below S3's key limit).
 */
export const MAX_OUTPUT_NAME_BYTES = 255;

export function outputName(name: string): string {
  if (Buffer.byteLength(name, 'utf8') <= MAX_OUTPUT_NAME_BYTES) return name;
  let head = '';
  for (const ch of name) {
    if (Buffer.byteLength(head + ch, 'utf8') > 200) break;
    head += ch;
  }
  return `${head}~${createHash('sha256').update(name).digest('hex').slice(0, 16)}`;
}
