// `.cvmfspublished` and `.cvmfswhitelist` share one envelope: text lines, a `--` line, the hex hash
// of the text, a newline, then the raw signature bytes up to EOF. The signature covers the hash
// line, so the hash line must match the text for the signature to mean anything.
import { CvmfsError, type CvmfsErrorCode } from './errors.ts';
import { formatContentHash, hashBytes, parseContentHash, type HashAlgorithm } from './hash.ts';

export interface SignedLetter {
  /** Everything before the `--` line, including the newline that ends the last field line. */
  text: Buffer;
  /** The ASCII hash line (hex plus algorithm id), which is what was signed. */
  hashLine: string;
  signature: Buffer;
}

const SEPARATOR = Buffer.from('\n--\n');

/**
 * Splits the envelope and checks that the hash line is the hash of the text.
 * `what` names the file in error messages; `code` is the error code to raise.
 */
export function openSignedLetter(data: Buffer, what: string, code: CvmfsErrorCode): SignedLetter {
  const separatorAt = data.indexOf(SEPARATOR);
  if (separatorAt < 0) throw new CvmfsError(code, `${what} has no "--" line ending its signed part`);
  const text = data.subarray(0, separatorAt + 1);
  const hashLineStart = separatorAt + SEPARATOR.length;
  const hashLineEnd = data.indexOf(0x0a, hashLineStart);
  if (hashLineEnd < 0) throw new CvmfsError(code, `${what} ends inside the hash line after "--"`);
  const hashLine = data.subarray(hashLineStart, hashLineEnd).toString('latin1');
  let declared;
  try {
    declared = parseContentHash(hashLine);
  } catch (error) {
    throw new CvmfsError(code, `${what} has a malformed hash line "${hashLine}"`, { cause: error });
  }
  const actual = formatContentHash(hashBytes(declared.algorithm, text));
  if (actual !== hashLine) {
    throw new CvmfsError(code, `${what} was modified after signing: its text hashes to ${actual}, the signed hash line says ${hashLine}`);
  }
  return { text, hashLine, signature: data.subarray(hashLineEnd + 1) };
}

/** Key/value lines of a letter text: key = first byte, value = the rest. Empty lines are skipped. */
export function letterLines(text: Buffer): string[] {
  // The text ends with "\n", so the last split element is the empty remainder.
  return text.toString('utf8').split('\n').slice(0, -1).filter((line) => line !== '');
}

/** The envelope around a letter `text` (which ends in a newline): `--`, its hash line, the signature of that line. */
export function sealSignedLetter(text: Buffer, algorithm: HashAlgorithm, sign: (hashLine: Buffer) => Buffer): Buffer {
  const hashLine = Buffer.from(formatContentHash(hashBytes(algorithm, text)), 'latin1');
  return Buffer.concat([text, Buffer.from('--\n'), hashLine, Buffer.from('\n'), sign(hashLine)]);
}
