// Extended attributes as catalogs store them (doc §2.6): u8 version (1), u8 count, then per
// attribute u8 key length, u8 value length, key bytes, value bytes.
import { CvmfsError } from './errors.ts';

export function parseXattrs(blob: Uint8Array, where: string): Map<string, Buffer> {
  const bytes = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  const damaged = (why: string) => new CvmfsError('bad-catalog', `extended attributes of ${where} are damaged: ${why}`);
  if (bytes.length < 2) throw damaged('shorter than its 2-byte header');
  if (bytes[0] !== 1) throw damaged(`unknown format version ${bytes[0]}`);
  const count = bytes[1]!;
  const xattrs = new Map<string, Buffer>();
  let at = 2;
  for (let i = 0; i < count; i++) {
    if (at + 2 > bytes.length) throw damaged(`attribute ${i + 1} of ${count} is cut off`);
    const keyLength = bytes[at]!;
    const valueLength = bytes[at + 1]!;
    at += 2;
    if (at + keyLength + valueLength > bytes.length) throw damaged(`attribute ${i + 1} of ${count} is cut off`);
    if (keyLength === 0) throw damaged(`attribute ${i + 1} has an empty name`);
    const key = bytes.toString('utf8', at, at + keyLength);
    xattrs.set(key, Buffer.from(bytes.subarray(at + keyLength, at + keyLength + valueLength)));
    at += keyLength + valueLength;
  }
  return xattrs;
}

/**
 * The catalog BLOB for a set of attributes, keys in bytewise order (the writer's std::map order);
 * null for none, since catalogs store an empty list as NULL. Lengths are single bytes.
 */
export function serializeXattrs(xattrs: ReadonlyMap<string, Buffer>): Buffer | null {
  if (xattrs.size === 0) return null;
  if (xattrs.size > 255) throw new CvmfsError('invalid-argument', `${xattrs.size} extended attributes do not fit a catalog entry (at most 255)`);
  const keys = [...xattrs.keys()].map((key) => Buffer.from(key, 'utf8')).sort(Buffer.compare);
  const parts: Buffer[] = [Buffer.from([1, keys.length])];
  for (const key of keys) {
    const value = xattrs.get(key.toString('utf8'))!;
    if (key.length === 0 || key.length > 255 || value.length > 255) {
      throw new CvmfsError('invalid-argument', `extended attribute ${JSON.stringify(key.toString('utf8'))} does not fit a catalog entry (name 1..255 bytes, value at most 255 bytes)`);
    }
    parts.push(Buffer.from([key.length, value.length]), key, value);
  }
  return Buffer.concat(parts);
}
