/**
 * Opening files a client may name (adapter directories): only regular files, with a size bound. A FIFO would block
 * a thread-pool thread forever on open/read, /dev/zero never ends, and a directory fails with EISDIR; each is
 * refused up front with an invalid-request error instead. Messages name the file and the problem, never its bytes.
 */
import { constants, statSync, type Stats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { TsloraError } from '../../errors.js';

function kindOf(stats: Stats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isCharacterDevice() || stats.isBlockDevice()) return 'a device';
  if (stats.isSocket()) return 'a socket';
  return 'not a regular file';
}

function notRegular(path: string, what: string, stats: Stats): TsloraError {
  return new TsloraError('invalid_request', `${what} ${path} is ${kindOf(stats)}, not a regular file`, { param: 'lora_path' });
}

function tooLarge(path: string, what: string, sizeBytes: number, maxBytes: number): TsloraError {
  return new TsloraError('invalid_request', `${what} ${path} is ${sizeBytes} bytes; at most ${maxBytes} are accepted`, { param: 'lora_path' });
}

/** Throws unless `path` (after symlinks) is a regular file of at most maxBytes. Returns its size. */
export function checkRegularFile(path: string, what: string, maxBytes: number): number {
  const stats = statSync(path);
  if (!stats.isFile()) throw notRegular(path, what, stats);
  if (stats.size > maxBytes) throw tooLarge(path, what, stats.size, maxBytes);
  return stats.size;
}

/**
 * Opens a regular file for reading. O_NONBLOCK keeps open() from waiting on a FIFO swapped in after the stat;
 * the handle is checked again with fstat, so the file read is the file checked.
 */
export async function openRegularFile(path: string, what: string, maxBytes: number): Promise<{ handle: FileHandle; sizeBytes: number }> {
  checkRegularFile(path, what, maxBytes);
  const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw notRegular(path, what, stats);
    if (stats.size > maxBytes) throw tooLarge(path, what, stats.size, maxBytes);
    return { handle, sizeBytes: stats.size };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/** Reads a whole regular file of at most maxBytes as UTF-8 text. */
export async function readRegularTextFile(path: string, what: string, maxBytes: number): Promise<string> {
  const { handle, sizeBytes } = await openRegularFile(path, what, maxBytes);
  try {
    // One byte more than the size seen: a file that grew past the bound is still refused.
    const buffer = Buffer.alloc(Math.min(sizeBytes, maxBytes) + 1);
    let filled = 0;
    while (filled < buffer.length) {
      const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    if (filled > maxBytes) throw tooLarge(path, what, filled, maxBytes);
    return buffer.subarray(0, filled).toString('utf8');
  } finally {
    await handle.close();
  }
}
