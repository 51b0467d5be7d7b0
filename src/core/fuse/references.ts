// Who still holds each inode the server handed out, so the filesystem hears when it may drop
// one. The kernel holds a reference for every LOOKUP reply and READDIRPLUS entry it received
// until FORGET returns it; an open directory holds every entry of its listing (the kernel may
// still be given any of them) until RELEASEDIR. A filesystem cannot count this itself: only the
// server knows which entries of a listing went out with attributes, and which replies arrived.

export class InodeReferences {
  readonly #counts = new Map<bigint, bigint>();
  readonly #rootIno: bigint;
  readonly #unused: (ino: bigint) => void;

  /** `unused` is called when the last reference to an inode goes; the root is never counted. */
  constructor(rootIno: bigint, unused: (ino: bigint) => void) {
    this.#rootIno = rootIno;
    this.#unused = unused;
  }

  add(ino: bigint, count = 1n): void {
    if (ino === this.#rootIno) return;
    this.#counts.set(ino, (this.#counts.get(ino) ?? 0n) + count);
  }

  /** Whether anything holds `ino` (always for the root). */
  holds(ino: bigint): boolean {
    return ino === this.#rootIno || this.#counts.has(ino);
  }

  drop(ino: bigint, count = 1n): void {
    const held = this.#counts.get(ino);
    if (held === undefined) return;
    if (held > count) {
      this.#counts.set(ino, held - count);
      return;
    }
    this.#counts.delete(ino);
    this.#unused(ino);
  }
}
