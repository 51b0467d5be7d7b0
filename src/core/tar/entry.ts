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
