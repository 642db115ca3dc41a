/**
 * Long S3 keys in the local S3 stand-in.
 *
 * S3 allows keys of up to 1024 bytes (S3_MAX_KEY_BYTES in src/limits.ts) with any segment length.
 * s3rver stores an object as a file named `<last key segment>._S3rver_object` (and `._S3rver_metadata.json`,
 * 22 bytes of suffix) under one folder per key segment, so a segment of more than 233 bytes exceeds the
 * file system's 255-byte name limit: the write fails with ENAMETOOLONG in a stream nobody listens to, and
 * the whole process exits. A 250-character file name uploaded under `uploads/` was enough.
 *
 * s3rver maps every key to a path through two static hooks, FilesystemStore.encodeKeyPath and
 * decodeKeyPath (used for Windows' reserved characters). We wrap them with a reversible encoding that
 * splits any segment longer than CHUNK_BYTES into folders of at most CHUNK_BYTES, each ending in a
 * marker character, so every name on disk stays well under 255 bytes and listing decodes each path back
 * to the exact key. Keys whose segments are all short and that do not contain the marker map to the same
 * paths as before. The marker (U+E000, private use) is escaped by doubling where a key contains it.
 *
 * Known limit, not used by this project: a ListObjects with a Delimiter does not descend below the
 * second folder of one split segment (s3rver prunes folders by the delimiter on the encoded path), so a
 * segment of more than 2 x CHUNK_BYTES directly below the listed prefix is missing from such a listing.
 * Listings without a delimiter (the API's GET /v1/uploads/{uploadId}) see every key.
 */

/** Bytes of one stored folder or file name taken from a key segment (plus a 3-byte marker and s3rver's 22-byte suffix). */
export const CHUNK_BYTES = 200;
const MARK = '\uE000';

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');

function encodeSegment(segment: string): string {
  // Escaped code points are units that are never split, so a doubled marker never straddles a split.
  const units = Array.from(segment, (ch) => (ch === MARK ? MARK + MARK : ch));
  const escaped = units.join('');
  if (bytes(escaped) <= CHUNK_BYTES) return escaped;
  const chunks: string[] = [];
  let chunk = '';
  for (const u of units) {
    if (chunk !== '' && bytes(chunk) + bytes(u) > CHUNK_BYTES) {
      chunks.push(chunk);
      chunk = '';
    }
    chunk += u;
  }
  chunks.push(chunk);
  return chunks.join(`${MARK}/`);
}

/** Key -> relative path, every path component at most CHUNK_BYTES + 3 bytes. */
export function encodeKeyPath(key: string): string {
  return key.split('/').map(encodeSegment).join('/');
}

/** The inverse of encodeKeyPath: MARK MARK is a literal MARK, MARK '/' joins two pieces of one segment. */
export function decodeKeyPath(path: string): string {
  let out = '';
  for (let i = 0; i < path.length; i++) {
    const c = path[i];
    if (c === MARK && (path[i + 1] === MARK || path[i + 1] === '/')) {
      if (path[i + 1] === MARK) out += MARK;
      i++;
    } else {
      out += c;
    }
  }
  return out;
}

interface FilesystemStoreClass {
  encodeKeyPath(key: string): string;
  decodeKeyPath(path: string): string;
  cxrLongKeys?: true;
}

/** Wraps s3rver's key <-> path hooks once per process (they are static, shared by every s3rver instance). */
export function installLongKeySupport(): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const store = require('s3rver/lib/stores/filesystem') as FilesystemStoreClass;
  if (store.cxrLongKeys) return;
  const encode = store.encodeKeyPath.bind(store);
  const decode = store.decodeKeyPath.bind(store);
  store.encodeKeyPath = (key) => encodeKeyPath(encode(key));
  store.decodeKeyPath = (path) => decode(decodeKeyPath(path));
  store.cxrLongKeys = true;
}
