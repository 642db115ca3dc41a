/**
 * The uploader's side of "no file names in results": results, logs and exports name an image only by
 * its imageId and the keyed pseudonym of its upload key, so whoever ran `npm start` or `cxr-opacity
 * analyze` gets a mapping file in their output folder to find which result belongs to which file.
 * It is written to the output folder only, never to the object store, the table or the export.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ResultItem } from '../pipeline/messages';
import { outputName } from '../cli/inputs';

export const SOURCE_MAPPING_FILE = 'source-mapping.json';

export interface SourceMappingEntry {
  /** The input file as given on the command line. */
  file: string;
  /** Its output folder under the output directory. */
  output: string;
  imageId?: string;
  keyPseudonym?: string;
  status: ResultItem['status'] | 'LOST';
  /** npm start: the result was found from an earlier run over the same data dir and not computed again. */
  reused?: boolean;
}

export function mappingEntry(file: string, output: string, item: ResultItem | undefined, imageId?: string): SourceMappingEntry {
  return {
    file, output, imageId: item?.imageId ?? imageId,
    ...(item?.source.keyPseudonym ? { keyPseudonym: item.source.keyPseudonym } : {}),
    status: item?.status ?? 'LOST',
  };
}

/** Writes DIR/source-mapping.json (readable by its owner only) and returns its path. */
export function writeSourceMapping(dir: string, entries: SourceMappingEntry[]): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, SOURCE_MAPPING_FILE);
  const doc = {
    note: 'file name -> imageId and source-key pseudonym. Kept here only: results, logs and exports do not hold file names. Holds identifiers when the file names do.',
    images: entries,
  };
  // Written whole after every image of a run: through a temporary file, so a Ctrl-C never leaves half of it.
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(doc, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, file);
  return file;
}

/** The entries of DIR/source-mapping.json, or none when there is none (or it cannot be read). */
export function readSourceMapping(dir: string): SourceMappingEntry[] {
  try {
    const doc = JSON.parse(readFileSync(join(dir, SOURCE_MAPPING_FILE), 'utf8')) as { images?: SourceMappingEntry[] };
    return Array.isArray(doc.images) ? doc.images : [];
  } catch {
    return [];
  }
}

/**
 * The output folders of one output directory across runs, so that no run overwrites another image's
 * folder: `chest.png` from a second folder or a later run with different content gets
 * `chest.png~<first 8 of its imageId>` (a pseudonymous suffix). The same image (same imageId), or the
 * same refused file, gets its folder back. What is claimed is read from source-mapping.json and, for
 * folders it does not list, from the folder's result.json.
 */
export class OutputFolders {
  private readonly entries = new Map<string, SourceMappingEntry>();
  /** Folders handed out in this run (finished or not), by folder name. */
  private readonly claimed = new Map<string, { file: string; imageId?: string }>();

  constructor(private readonly dir: string) {
    for (const e of readSourceMapping(dir)) this.entries.set(e.output, e);
  }

  /** The folder name for an input named `name`; `imageId` undefined for inputs refused before upload. */
  claim(name: string, file: string, imageId: string | undefined): string {
    const same = (e: { file: string; imageId?: string }) => (imageId ? e.imageId === imageId : !e.imageId && resolve(e.file) === resolve(file));
    const free = (folder: string) => {
      const c = this.claimed.get(folder) ?? this.entries.get(folder);
      if (c) return same(c);
      if (!existsSync(join(this.dir, folder))) return true;
      try {
        const r = JSON.parse(readFileSync(join(this.dir, folder, 'result.json'), 'utf8')) as { imageId?: string };
        return r.imageId !== undefined && r.imageId === imageId;
      } catch {
        return false; // a folder we cannot tell about is not ours to overwrite
      }
    };
    const suffix = imageId?.slice(0, 8) ?? createHash('sha256').update(resolve(file)).digest('hex').slice(0, 8);
    const candidates = function* () {
      yield name;
      yield outputName(`${name}~${suffix}`);
      for (let n = 2; ; n++) yield outputName(`${name}~${suffix}-${n}`);
    };
    for (const folder of candidates()) {
      if (!free(folder)) continue;
      this.claimed.set(folder, { file, imageId });
      return folder;
    }
    throw new Error('unreachable');
  }

  /** Records a finished input's entry (written by write()). */
  set(entry: SourceMappingEntry): void {
    this.entries.set(entry.output, entry);
  }

  /** Writes source-mapping.json with every folder's entry, this run's and earlier runs'. */
  write(): string {
    return writeSourceMapping(this.dir, [...this.entries.values()]);
  }
}
