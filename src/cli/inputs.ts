/** Expands the paths given on the command line into the image files to analyse. */
import { createHash } from 'node:crypto';
import { readdirSync, realpathSync, statSync, type Stats } from 'node:fs';
import { basename, extname, join, relative, resolve } from 'node:path';

/** The file names taken as images (DICOM often has no extension). */
export const IMAGE_EXTENSIONS = new Set(['.dcm', '.dicom', '.dic', '.png', '.jpg', '.jpeg', '']);

export interface InputFile {
  path: string;
  /** A short, unique, file-system-safe name for outputs (relative path with '/' replaced). */
  name: string;
}

export interface CollectOptions {
  /**
   * Folders never walked into (the run's own output folder: given a folder that holds it, a second run would
   * otherwise analyse the first run's overlays and masks as films).
   */
  exclude?: string[];
}

/**
 * The image files under `paths` (files as given; folders walked, hidden entries skipped, each folder once even
 * through symbolic links). An entry that cannot be examined (a dangling link, a link loop, no permission) or is not a
 * regular file (a named pipe, a device, a socket) is kept when its name is an image's, so that the run reports it as
 * not analysed with the reason (checkRegularFile), rather than abort the whole folder or drop it silently; others are
 * skipped.
 * @throws Error when a path given does not exist.
 */
export function collectInputs(paths: string[], opts: CollectOptions = {}): InputFile[] {
  const files: { path: string; rel: string }[] = [];
  const excluded = new Set((opts.exclude ?? []).map((d) => realOrResolved(d)));
  const visited = new Set<string>();
  const isImageName = (name: string) => IMAGE_EXTENSIONS.has(extname(name).toLowerCase());
  const walk = (dir: string, root: string) => {
    const real = realOrResolved(dir);
    if (excluded.has(real) || visited.has(real)) return;
    visited.add(real);
    let entries: string[];
    try {
      entries = readdirSync(dir).sort();
    } catch {
      return; // an unreadable folder below a path given: nothing in it can be read either
    }
    for (const entry of entries) {
      if (entry.startsWith('.')) continue;
      const p = join(dir, entry);
      let st: Stats | undefined;
      try {
        st = statSync(p);
      } catch {
        st = undefined; // dangling link, link loop, no permission
      }
      if (st?.isDirectory()) walk(p, root);
      // Kept whatever it is (a named pipe, a device): the run reports it as not analysed (checkRegularFile).
      else if (isImageName(entry)) files.push({ path: p, rel: relative(root, p) });
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

/** The folder's real path (links resolved), or its absolute path when it does not exist (yet). */
function realOrResolved(dir: string): string {
  try {
    return realpathSync(dir);
  } catch {
    return resolve(dir);
  }
}

/**
 * Throws when an input is not a regular file, naming what it is: reading a named pipe would wait for a writer
 * forever, and a device or socket holds no image. Call it before reading an input (stat follows links, as the
 * read would). Errors of the stat itself (a dangling link, no permission) are thrown as they are, for
 * inputErrorReason to put in words.
 */
export function checkRegularFile(input: InputFile): void {
  const st = statSync(input.path);
  if (st.isFile()) return;
  const what = st.isFIFO() ? 'a named pipe (FIFO)' : st.isSocket() ? 'a socket' : st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : st.isDirectory() ? 'a folder' : 'not a file';
  throw new Error(`not a regular file but ${what}: copy the image into the folder as a file and run again`);
}

/** What a file-system error code means for an input file, in words. */
const FILE_ERRORS: Record<string, string> = {
  ENOENT: 'the file does not exist (a broken link, or moved away during the run)',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  ELOOP: 'a loop of symbolic links',
  EISDIR: 'a folder, not a file',
  EIO: 'the disk reported an I/O error',
  ENOSPC: 'the disk is full',
  EMFILE: 'too many open files',
};

/**
 * Why an input was not analysed, for the run's table, results.csv and report.html, without its path: Node's
 * file-system errors name the full path (often the patient's name in a file name), which those files never hold
 * unless KEEP_SOURCE_KEYS=true; the input is named by its row.
 */
export function inputErrorReason(e: unknown, input: InputFile): string {
  const err = e as NodeJS.ErrnoException;
  if (err?.code && FILE_ERRORS[err.code]) return `${FILE_ERRORS[err.code]} (${err.code}${err.syscall ? ` on ${err.syscall}` : ''})`;
  if (err?.code && err.syscall) return `${err.syscall} failed (${err.code})`;
  const message = e instanceof Error ? e.message : String(e);
  return [input.path, resolve(input.path)].reduce((m, p) => m.split(p).join(input.name), message);
}
