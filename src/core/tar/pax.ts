// POSIX pax extended header records, "<length> <key>=<value>\n", handled as bytes: the
// length counts bytes, and xattr values are arbitrary binary that a text decoder would
// mangle (security.capability starts 01 00 00 02 80).

const SPACE = 0x20;
const EQUALS = 0x3d;
const NEWLINE = 0x0a;

export const SCHILY_XATTR = 'SCHILY.xattr.';
export const LIBARCHIVE_XATTR = 'LIBARCHIVE.xattr.';

/**
 * Records in order of appearance. Values are views into `data`; copy any you keep beyond
 * the header. Throws a message for the caller to prefix with the entry it belongs to.
 */
export function parsePaxRecords(data: Buffer): Array<[string, Buffer]> {
  const records: Array<[string, Buffer]> = [];
  let position = 0;
  while (position < data.length) {
    let cursor = position;
    let length = 0;
    while (cursor < data.length && data[cursor]! >= 0x30 && data[cursor]! <= 0x39) {
      length = length * 10 + (data[cursor]! - 0x30);
      cursor++;
    }
    const end = position + length;
    if (cursor === position || data[cursor] !== SPACE || end > data.length || end <= cursor + 1) {
      throw new Error(`malformed pax record at byte ${position} of the extended header`);
    }
    if (data[end - 1] !== NEWLINE) {
      throw new Error(`pax record at byte ${position} of the extended header does not end in a newline`);
    }
    const equals = data.indexOf(EQUALS, cursor + 1);
    if (equals === -1 || equals >= end - 1) {
      throw new Error(`pax record at byte ${position} of the extended header has no "="`);
    }
    records.push([data.toString('utf8', cursor + 1, equals), data.subarray(equals + 1, end - 1)]);
    position = end;
  }
  return records;
}

/** One record; its length prefix counts its own digits, hence the second pass. */
export function encodePaxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.byteLength(key) + value.length + 3; // space, "=", newline
  let length = body + String(body).length;
  if (String(length).length !== String(body).length) length = body + String(length).length;
  const head = `${length} ${key}=`;
  return Buffer.concat([Buffer.from(head, 'utf8'), value, Buffer.from('\n')]);
}

/**
 * GNU tar escapes "%" and "=" in xattr names inside SCHILY.xattr keys, since "=" would
 * end the key early; star does not, and a name with a literal "%3D" is vanishingly rare.
 */
export function encodeXattrKey(name: string): string {
  return SCHILY_XATTR + name.replaceAll('%', '%25').replaceAll('=', '%3D');
}

export function decodeSchilyXattrName(encoded: string): string {
  return encoded.replace(/%(25|3D)/g, (escape) => (escape === '%25' ? '%' : '='));
}

/**
 * libarchive percent-encodes every byte outside printable ASCII, so a run of escapes can
 * spell one multi-byte UTF-8 character: decode runs, not single escapes.
 */
export function decodeLibarchiveXattrName(encoded: string): string {
  return encoded.replace(/(?:%[0-9a-fA-F]{2})+/g, (run) => Buffer.from(run.replaceAll('%', ''), 'hex').toString('utf8'));
}
