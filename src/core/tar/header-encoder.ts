// Turns a TarHeader into header blocks: plain ustar when every field fits, preceded by a
// pax 'x' header carrying whatever does not (long or non-ASCII names, big ids and sizes,
// fractional or out-of-range times, xattrs).

import type { TarHeader } from './entry.ts';
import { encodePaxRecord, encodeXattrKey } from './pax.ts';
import {
  BLOCK_SIZE,
  DEVMAJOR,
  DEVMINOR,
  type Field,
  FLAG_BY_TYPE,
  GID,
  GNAME,
  LINKNAME,
  MAGIC,
  MODE,
  MTIME,
  NAME,
  octalLimit,
  paddingAfter,
  POSIX_MAGIC,
  PREFIX,
  SIZE,
  TYPEFLAG_OFFSET,
  UID,
  UNAME,
  writeChecksum,
  writeOctal,
} from './ustar.ts';

/** Header blocks for one entry; throws, naming the entry, for a header tar cannot express. */
export function encodeHeader(header: TarHeader): Buffer {
  validate(header);
  const records: Buffer[] = [];
  const block = ustarBlock(header, (key, value) => records.push(encodePaxRecord(key, Buffer.from(value, 'utf8'))));
  for (const [name, value] of header.xattrs) records.push(encodePaxRecord(encodeXattrKey(name), value));
  if (records.length === 0) return block;
  const data = Buffer.concat(records);
  // Named like GNU tar's, so a reader without pax support extracts a recognisable file;
  // its own fields are informational, so stand-ins are fine where they do not fit.
  const paxHeader = ustarBlock(
    {
      ...header,
      path: `PaxHeaders/${header.path.replace(/\/+$/, '').split('/').pop()}`,
      mode: 0o644,
      uid: 0,
      gid: 0,
      uname: '',
      gname: '',
      linkname: '',
      devmajor: 0,
      devminor: 0,
      size: data.length,
    },
    () => {},
    'x',
  );
  return Buffer.concat([paxHeader, data, Buffer.alloc(paddingAfter(data.length)), block]);
}

type PaxSink = (key: string, value: string) => void;

/** One ustar block; values its fields cannot hold go to `pax`, the field gets a stand-in. */
function ustarBlock(header: TarHeader, pax: PaxSink, flag = FLAG_BY_TYPE[header.type]): Buffer {
  const block = Buffer.alloc(BLOCK_SIZE);
  const split = splitPath(header.path);
  if (split === undefined) {
    pax('path', header.path);
    block.write(header.path, NAME.offset, NAME.length, 'utf8');
  } else {
    block.write(split.name, NAME.offset, NAME.length, 'latin1');
    block.write(split.prefix, PREFIX.offset, PREFIX.length, 'latin1');
  }
  writeText(block, LINKNAME, LINKNAME.length, header.linkname, 'linkpath', pax);
  writeOctal(block, MODE, header.mode);
  writeNumber(block, UID, header.uid, 'uid', pax);
  writeNumber(block, GID, header.gid, 'gid', pax);
  writeNumber(block, SIZE, header.size, 'size', pax);
  writeTime(block, header.mtime, pax);
  block.write(flag, TYPEFLAG_OFFSET, 1, 'latin1');
  POSIX_MAGIC.copy(block, MAGIC.offset);
  writeText(block, UNAME, UNAME.length - 1, header.uname, 'uname', pax);
  writeText(block, GNAME, GNAME.length - 1, header.gname, 'gname', pax);
  writeOctal(block, DEVMAJOR, header.devmajor);
  writeOctal(block, DEVMINOR, header.devminor);
  writeChecksum(block);
  return block;
}

const ASCII = /^[\x01-\x7f]*$/;

/**
 * ustar stores a long path as prefix "/" name (at most 155 and 100 bytes), split at a
 * slash; undefined when no split fits or the path is not ASCII, whose bytes would be read
 * in the reader's locale rather than as UTF-8.
 */
function splitPath(path: string): { prefix: string; name: string } | undefined {
  if (!ASCII.test(path)) return undefined;
  if (path.length <= NAME.length) return { prefix: '', name: path };
  // The longest prefix leaves the shortest name; the name must not be empty.
  const slash = path.lastIndexOf('/', Math.min(PREFIX.length, path.length - 2));
  if (slash <= 0 || path.length - slash - 1 > NAME.length) return undefined;
  return { prefix: path.slice(0, slash), name: path.slice(slash + 1) };
}

/** `room` is the field's width, less one where POSIX wants a terminating NUL (uname, gname). */
function writeText(block: Buffer, field: Field, room: number, text: string, key: string, pax: PaxSink): void {
  if (!ASCII.test(text) || text.length > room) pax(key, text);
  block.write(text, field.offset, room, 'utf8');
}

function writeNumber(block: Buffer, field: Field, value: number, key: string, pax: PaxSink): void {
  if (value <= octalLimit(field)) {
    writeOctal(block, field, value);
  } else {
    pax(key, String(value));
    writeOctal(block, field, 0);
  }
}

function writeTime(block: Buffer, mtime: number, pax: PaxSink): void {
  const limit = octalLimit(MTIME);
  if (Number.isInteger(mtime) && mtime >= 0 && mtime <= limit) {
    writeOctal(block, MTIME, mtime);
    return;
  }
  // String() gives the shortest text that reads back as the same double, but switches to
  // exponent notation for tiny fractions, which pax does not allow.
  const text = String(mtime);
  pax('mtime', text.includes('e') ? mtime.toFixed(9) : text);
  writeOctal(block, MTIME, Math.min(Math.max(Math.floor(mtime), 0), limit));
}

function validate(header: TarHeader): void {
  const problems: string[] = [];
  const check = (ok: boolean, problem: string): void => {
    if (!ok) problems.push(problem);
  };
  const id = (value: number): boolean => Number.isSafeInteger(value) && value >= 0;
  const text = (value: string): boolean => typeof value === 'string' && !value.includes('\0');
  check(text(header.path) && header.path !== '', 'path must be a non-empty string without NUL');
  check(Object.hasOwn(FLAG_BY_TYPE, header.type), `unknown type ${JSON.stringify(header.type)}`);
  check(Number.isInteger(header.mode) && header.mode >= 0 && header.mode <= 0o7777, `mode ${header.mode} is outside 0..0o7777`);
  check(id(header.uid) && id(header.gid), `uid ${header.uid} and gid ${header.gid} must be non-negative integers`);
  check(id(header.size), `size ${header.size} must be a non-negative integer`);
  check(header.type === 'file' || header.size === 0, `a ${header.type} must have size 0, not ${header.size}`);
  check(Number.isFinite(header.mtime) && Math.abs(header.mtime) <= Number.MAX_SAFE_INTEGER, `mtime ${header.mtime} is not a time`);
  check(text(header.linkname), 'linkname must not contain NUL');
  check(!(header.type === 'symlink' || header.type === 'hardlink') || header.linkname !== '', `a ${header.type} needs a linkname`);
  check(text(header.uname) && text(header.gname), 'uname and gname must not contain NUL');
  for (const [label, value] of [['devmajor', header.devmajor], ['devminor', header.devminor]] as const) {
    check(id(value) && value <= octalLimit(DEVMAJOR), `${label} ${value} is outside 0..${octalLimit(DEVMAJOR)}`);
  }
  for (const [name, value] of header.xattrs) {
    check(text(name) && name !== '' && Buffer.isBuffer(value), `xattr ${JSON.stringify(name)} needs a name without NUL and a Buffer value`);
  }
  if (problems.length > 0) throw new Error(`tar entry ${JSON.stringify(header.path)}: ${problems.join('; ')}`);
}
