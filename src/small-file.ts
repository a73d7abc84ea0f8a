import { closeSync, constants, fstatSync, openSync, readSync, statSync, type Stats } from 'node:fs';

/**
 * Reads a small configuration file named by a variable (ZITADEL_PAYLOAD_KEYS, ZITADEL_KEY_FILE): a regular file of at
 * most `maxBytes`, else `SmallFileError`. A device (/dev/zero, /dev/stdin), a FIFO or a directory is refused before
 * it is read, so a wrong path can neither hang the start nor grow its memory without bound.
 */

/**
 * 1 MiB: the files read here hold a few KiB (an RSA 4096 private key is about 3.3 KiB of PEM, a ZITADEL key file
 * about 2 KiB), so it leaves room for hundreds of keys during a rotation while a wrong path costs at most 1 MiB.
 */
export const SMALL_FILE_MAX_BYTES = 1024 * 1024;

export class SmallFileError extends Error {
  /** The errno code when the file could not be opened or read (ENOENT, EACCES...), else undefined. */
  readonly code: string | undefined;
  constructor(message: string, code?: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'SmallFileError';
    this.code = code;
  }
}

function kindOf(stats: Stats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  if (stats.isFIFO()) return 'a named pipe (FIFO)';
  if (stats.isSocket()) return 'a socket';
  return 'not a file';
}

/**
 * The file's text (UTF-8). Messages complete "<VARIABLE> ..." and never quote the path or the content (a value
 * mistaken for a path may be a secret): "names a character device, not a regular file", "names a file larger than
 * 1 MiB", "cannot be read (ENOENT)".
 */
export function readSmallTextFile(file: string, maxBytes = SMALL_FILE_MAX_BYTES): string {
  const fail = (error: unknown): never => {
    const code = (error as NodeJS.ErrnoException).code;
    throw new SmallFileError(`cannot be read (${code ?? 'unreadable'})`, code, { cause: error });
  };
  const check = (stats: Stats) => {
    if (!stats.isFile()) throw new SmallFileError(`names ${kindOf(stats)}, not a regular file`);
    if (stats.size > maxBytes) throw new SmallFileError(`names a file larger than ${maxBytes / (1024 * 1024)} MiB`);
  };
  let stats: Stats | undefined;
  try {
    stats = statSync(file);
  } catch (error) {
    fail(error);
  }
  check(stats!);
  let fd: number | undefined;
  try {
    // Non-blocking: should the path have become a FIFO since the stat, opening it does not wait for a writer.
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    fail(error);
  }
  try {
    check(fstatSync(fd!));
    // One byte more than allowed tells a file that grew since the stat.
    const buffer = Buffer.alloc(maxBytes + 1);
    let length = 0;
    for (;;) {
      let read: number;
      try {
        read = readSync(fd!, buffer, length, buffer.length - length, null);
      } catch (error) {
        return fail(error);
      }
      if (read === 0) break;
      length += read;
      if (length > maxBytes) throw new SmallFileError(`names a file larger than ${maxBytes / (1024 * 1024)} MiB`);
    }
    return buffer.toString('utf8', 0, length);
  } finally {
    closeSync(fd!);
  }
}
