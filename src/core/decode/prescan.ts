/**
 * A linear-time structural pre-scan of a DICOM byte stream, run before dcmjs sees it, that refuses
 * datasets nested deeper than MAX_SEQUENCE_DEPTH or holding more than MAX_ELEMENTS elements.
 *
 * Why hand-written: dcmjs (0.52) parses sequences by recursion, with no hook to limit depth, element
 * count or time. For every undefined-length item it first scans the rest of the stream two bytes at a
 * time for the matching delimiter and then parses the item, so nesting costs O(depth x size): a 0.8 MB
 * file nested 20,000 deep took 24.5 s and 1 GB before the stack overflowed, 80,000 levels 85 s and 3.3 GB.
 * This walk keeps its own stack (no recursion), looks at each element header once and skips values by
 * their length, so its cost is linear in the bytes and it stops at the first limit it passes.
 *
 * Where this walk and dcmjs could read the same bytes differently, the scan falls back to a bound
 * that holds for any reader: every level of nesting needs its own item tag (FFFE,E000) somewhere in
 * the bytes, so the number of item-tag byte patterns bounds the depth any parser can reach.
 *  - dcmjs finds the end of an undefined-length item by scanning bytes, not elements, so a delimiter
 *    pattern hidden inside a value would make it read a different structure from the one walked here.
 *    For each top-level sequence the delimiter patterns in its bytes must therefore all be ones this
 *    walk read as delimiters; otherwise the file is refused as CORRUPT (it is damaged or crafted).
 *  - Anything this walk cannot follow (a non-item inside a sequence, a value overrunning its item,
 *    an unterminated sequence at the end of the file, a UN value that dcmjs re-reads as a sequence)
 *    is bounded by counting item tags in the bytes that remain; within the bound the file is left to
 *    dcmjs, which reports it as TRUNCATED or CORRUPT as before.
 *
 * Pure function over the bytes; throws InputError('TOO_COMPLEX' | 'CORRUPT'); nothing logs.
 */
import { data as dcmjsData } from 'dcmjs';
import { InputError } from '../errors';

/** Deepest sequence nesting accepted. Radiographs nest 2-4 levels (view codes, LUTs, dose, procedure codes). */
export const MAX_SEQUENCE_DEPTH = 32;
/** Most elements (data elements, items, delimiters and pixel fragments, all levels) accepted; a chest film has a few hundred. */
export const MAX_ELEMENTS = 100_000;

export interface ScanSyntax {
  explicitVr: boolean;
  littleEndian: boolean;
}

const UNDEFINED = 0xffffffff;
/** VRs with a 2-byte reserved field and a 4-byte length in explicit VR (PS3.5 7.1.2). */
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'UC', 'UN', 'UR', 'UT', 'SV', 'UV']);
const VALID_VRS = new Set('AE AS AT CS DA DS DT FL FD IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV'.split(' '));

/** dcmjs's own dictionary, so that implicit VR (and explicit UN) elements get the VR dcmjs will give them. */
const DICTIONARY = (dcmjsData.DicomMetaDictionary as unknown as { dictionary: Record<string, { vr?: string }> }).dictionary;
function dictionaryVr(group: number, element: number): string | undefined {
  return DICTIONARY[`(${hex4(group)},${hex4(element)})`]?.vr;
}
function hex4(n: number): string {
  return n.toString(16).toUpperCase().padStart(4, '0');
}

interface Frame {
  kind: 'sequence' | 'item' | 'fragments';
  /** Offset just past the container, or -1 for undefined length (closed by a delimiter). */
  end: number;
  /** The nearest defined end of this container or any container around it (or the end of the bytes). */
  bound: number;
  /** Fragments of a UN element that dcmjs re-reads as a sequence: each fragment's bytes are bounded by pattern count. */
  opaque?: boolean;
}

export interface ScanResult {
  elements: number;
  maxDepth: number;
  /**
   * The top-level Pixel Data (7FE0,0010) element when it has a defined length, its value lies wholly inside the
   * bytes, and (`last`) no top-level data element other than trailing padding (FFFC,FFFC) follows it: where its
   * value starts and how long it is, so the decoder can read the pixels in place (decode/dicom.ts).
   */
  pixelData?: { valueOffset: number; length: number; last: boolean };
}

/**
 * Walks the file meta group [metaStart, datasetOffset) as explicit VR little endian, then the dataset
 * [datasetOffset, end) in `syntax`. Throws InputError when a limit is passed or the structure is ambiguous.
 */
export function prescanDicom(b: Uint8Array, metaStart: number, datasetOffset: number, syntax: ScanSyntax): ScanResult {
  const state: ScanResult = { elements: 0, maxDepth: 0 };
  if (datasetOffset > metaStart) walk(b, metaStart, datasetOffset, { explicitVr: true, littleEndian: true }, state);
  walk(b, datasetOffset, b.length, syntax, state);
  return state;
}

function tooComplex(what: string): InputError {
  return new InputError('TOO_COMPLEX',
    `The DICOM file's structure is too complex to analyse safely (${what}); a chest radiograph needs neither. It was refused without being parsed: re-export the image from the modality or PACS.`);
}

function walk(b: Uint8Array, start: number, end: number, syntax: ScanSyntax, state: ScanResult): void {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const le = syntax.littleEndian;
  const u16 = (o: number) => dv.getUint16(o, le);
  const u32 = (o: number) => dv.getUint32(o, le);
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  const patterns = delimiterPatterns(le);

  const stack: Frame[] = [];
  let depth = 0; // open sequences
  /** Where the outermost open sequence's value starts, and the delimiters read since. */
  let regionStart = -1;
  let regionDelimiters = 0;
  let off = start;

  const count = (n = 1) => {
    state.elements += n;
    if (state.elements > MAX_ELEMENTS) throw tooComplex(`more than ${MAX_ELEMENTS.toLocaleString('en')} elements`);
  };
  const push = (f: Omit<Frame, 'bound'>, valueStart: number) => {
    const parentBound = stack.length ? stack[stack.length - 1].bound : end;
    const bound = f.end >= 0 ? Math.min(f.end, parentBound) : parentBound;
    if (f.kind === 'sequence') {
      if (depth === 0) {
        regionStart = valueStart;
        regionDelimiters = 0;
      }
      depth++;
      if (depth > state.maxDepth) state.maxDepth = depth;
      if (depth > MAX_SEQUENCE_DEPTH) throw tooComplex(`sequences nested more than ${MAX_SEQUENCE_DEPTH} deep`);
    }
    stack.push({ ...f, bound });
  };
  const pop = () => {
    const f = stack.pop()!;
    if (f.kind === 'sequence') {
      depth--;
      if (depth === 0) checkRegion(regionStart, off);
    }
  };
  /** A closed top-level sequence: every delimiter pattern in its bytes must be one the walk read as such. */
  const checkRegion = (from: number, to: number) => {
    const raw = countPatterns(buf, from, to, patterns.all);
    if (raw > regionDelimiters) {
      throw new InputError('CORRUPT',
        'The DICOM file has item delimiters hidden inside element values of a sequence, so DICOM readers disagree on its structure; the file is damaged (or crafted). Re-export it from the modality or PACS.');
    }
  };
  /** The walk cannot follow the structure from here: bound what any parser could nest, then leave it to dcmjs. */
  const fallback = (at: number) => {
    // Elements after this point were not walked: the pixels are not known to be the dataset's last element.
    if (state.pixelData) state.pixelData.last = false;
    const from = regionStart >= 0 && depth > 0 ? regionStart : at;
    const items = countPatterns(buf, from, end, patterns.item);
    if (items > MAX_SEQUENCE_DEPTH) throw tooComplex(`an irregular structure holding ${items.toLocaleString('en')} items`);
    count(items);
  };

  for (;;) {
    // Close the defined-length containers that end here.
    while (stack.length && stack[stack.length - 1].end === off) pop();
    const top = stack.length ? stack[stack.length - 1] : undefined;
    const bound = top ? top.bound : end;
    if (off === end && (!top || top.bound === end)) {
      if (stack.length) fallback(off); // undefined-length containers left open at the end of the file
      return;
    }
    if (off + 8 > bound) return fallback(off); // a truncated header: dcmjs reports it
    const group = u16(off);
    const element = u16(off + 2);

    if (group === 0xfffe) {
      const len = u32(off + 4);
      count();
      if (depth > 0) regionDelimiters++;
      if (element === 0xe000 && top?.kind === 'fragments') {
        if (len === UNDEFINED || off + 8 + len > bound) return fallback(off);
        if (top.opaque) {
          const items = countPatterns(buf, off + 8, off + 8 + len, patterns.item);
          if (depth + items > MAX_SEQUENCE_DEPTH) throw tooComplex(`a sequence encoded as UN holding ${items.toLocaleString('en')} items`);
          count(items);
        }
        off += 8 + len;
        continue;
      }
      if (element === 0xe000 && top?.kind === 'sequence') {
        if (len !== UNDEFINED && off + 8 + len > bound) return fallback(off);
        off += 8;
        push({ kind: 'item', end: len === UNDEFINED ? -1 : off + len }, off);
        continue;
      }
      if (element === 0xe00d && top?.kind === 'item' && top.end < 0 && len === 0) {
        off += 8;
        pop();
        continue;
      }
      if (element === 0xe0dd && top && top.kind !== 'item' && top.end < 0 && len === 0) {
        off += 8;
        pop();
        continue;
      }
      return fallback(off); // a delimiter out of place
    }
    if (top && top.kind !== 'item') return fallback(off); // a data element directly inside a sequence

    // A data element: its VR and length as dcmjs will read them.
    let vr: string;
    let len: number;
    let header: number;
    let reReadAs: string | undefined; // explicit UN that dcmjs re-reads with the dictionary's VR
    if (syntax.explicitVr) {
      const bytesVr = String.fromCharCode(b[off + 4], b[off + 5]);
      vr = VALID_VRS.has(bytesVr) ? bytesVr : 'UN'; // dcmjs reads an invalid VR as UN
      if (bytesVr === 'UN') reReadAs = dictionaryVr(group, element);
      if (LONG_VRS.has(vr)) {
        if (off + 12 > bound) return fallback(off);
        len = u32(off + 8);
        header = 12;
      } else {
        len = u16(off + 6);
        header = 8;
      }
    } else {
      len = u32(off + 4);
      header = 8;
      // The dictionary (slow in dcmjs: ~2 us a miss) is asked only when the VR can matter: an undefined
      // length, or a value that holds an item tag. A value without one cannot nest whatever its VR.
      const start = off + header;
      const mayNest = len === UNDEFINED || (len >= 8 && start + len <= bound && buf.subarray(start, start + len).indexOf(patterns.item[0]) >= 0);
      vr = mayNest ? dictionaryVr(group, element) ?? (len === UNDEFINED ? 'SQ' : 'UN') : 'UN';
    }
    count();
    const valueStart = off + header;
    if (!top) {
      if (!state.pixelData && group === 0x7fe0 && element === 0x0010 && len !== UNDEFINED && valueStart + len <= bound) {
        state.pixelData = { valueOffset: valueStart, length: len, last: true };
      } else if (state.pixelData && !(group === 0xfffc && element === 0xfffc)) {
        state.pixelData.last = false;
      }
    }
    if (vr === 'SQ') {
      if (len !== UNDEFINED && valueStart + len > bound) return fallback(off);
      off = valueStart;
      push({ kind: 'sequence', end: len === UNDEFINED ? -1 : valueStart + len }, valueStart);
      continue;
    }
    if (len === UNDEFINED) {
      // Encapsulated pixel data, or another binary value in fragments: dcmjs reads the items by their lengths.
      off = valueStart;
      push({ kind: 'fragments', end: -1, opaque: reReadAs === 'SQ' }, valueStart);
      continue;
    }
    if (valueStart + len > bound) {
      // The value runs past its container or the file: dcmjs reads what is there (as bytes, or as a
      // sequence if the dictionary says so), so what remains is bounded by its item tags.
      return fallback(off);
    }
    if (reReadAs === 'SQ') {
      // dcmjs parses this UN value as a sequence; its items are bounded by their tags in the bytes.
      const items = countPatterns(buf, valueStart, valueStart + len, patterns.item);
      if (depth + items > MAX_SEQUENCE_DEPTH) throw tooComplex(`a sequence encoded as UN holding ${items.toLocaleString('en')} items`);
      count(items);
    }
    off = valueStart + len;
  }
}

/** Byte patterns of the item tag and of all three delimiter tags (FFFE,E000 / E00D / E0DD) in this byte order. */
function delimiterPatterns(le: boolean): { item: Buffer[]; all: Buffer[] } {
  const tag = (e: number) => Buffer.from(le ? [0xfe, 0xff, e & 0xff, e >> 8] : [0xff, 0xfe, e >> 8, e & 0xff]);
  const item = tag(0xe000);
  return { item: [item], all: [item, tag(0xe00d), tag(0xe0dd)] };
}

/** Occurrences of any of the 4-byte patterns in buf[from, to), at any alignment (native indexOf: linear). */
function countPatterns(buf: Buffer, from: number, to: number, patterns: Buffer[]): number {
  if (to - from < 4) return 0;
  const view = buf.subarray(from, to);
  let n = 0;
  for (const p of patterns) {
    for (let i = view.indexOf(p); i >= 0; i = view.indexOf(p, i + 1)) n++;
  }
  return n;
}
