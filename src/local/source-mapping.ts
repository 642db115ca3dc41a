/**
 * The uploader's side of "no file names in results": results, logs and exports name an image only by
 * its imageId and the keyed pseudonym of its upload key, so whoever ran `npm start` or `cxr-opacity
 * analyze` gets a mapping file in their output folder to find which result belongs to which file.
 * It is written to the output folder only, never to the object store, the table or the export.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ResultItem } from '../pipeline/messages';

export const SOURCE_MAPPING_FILE = 'source-mapping.json';

export interface SourceMappingEntry {
  /** The input file as given on the command line. */
  file: string;
  /** Its output folder under the output directory. */
  output: string;
  imageId?: string;
  keyPseudonym?: string;
  status: ResultItem['status'] | 'LOST';
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
  writeFileSync(file, `${JSON.stringify(doc, null, 2)}\n`, { mode: 0o600 });
  return file;
}
