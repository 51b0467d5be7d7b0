// The shape every tar reader and writer in the project speaks. Layer tars carry more than
// node-tar keeps (binary xattrs such as security.capability, devices, whiteouts), so the
// project reads and writes them itself.

export type TarEntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

export interface TarHeader {
  /** Name as stored in the archive after long-name/PAX resolution, e.g. `./etc/passwd`, `bin/`. */
  path: string;
  type: TarEntryType;
  /** Permission bits including setuid, setgid and sticky (mask 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  /** Bytes of content that follow the header; 0 for anything but regular files. */
  size: number;
  /** Modification time in seconds since the epoch; PAX may give a fraction. */
  mtime: number;
  /** Target of a symlink, or the archive path of a hardlink's original. */
  linkname: string;
  devmajor: number;
  devminor: number;
  /** Extended attributes by full name (`security.capability`, `user.x`, `trusted.overlay.opaque`). */
  xattrs: Map<string, Buffer>;
}

export interface TarEntry extends TarHeader {
  /** The content. Consume it before asking for the next entry, or it is skipped for you. */
  body: AsyncIterable<Buffer>;
}

/** A header for `path` with what is not given set as for a plain root-owned 0644 file. */
export function tarHeader(fields: Partial<TarHeader> & Pick<TarHeader, 'path'>): TarHeader {
  return {
    type: 'file',
    mode: 0o644,
    uid: 0,
    gid: 0,
    uname: '',
    gname: '',
    size: 0,
    mtime: 0,
    linkname: '',
    devmajor: 0,
    devminor: 0,
    xattrs: new Map(),
    ...fields,
  };
}
