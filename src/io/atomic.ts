/**
 * Atomic file writes: the data goes to a temp file in the target's directory, is fsynced, then renamed
 * over the target. A reader (or a resume after SIGKILL) sees the old file or the new one, never a torn one.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

/** Bytes to write: a string (UTF-8), one buffer, or buffers written in order (no concatenation copy). */
export type AtomicData = string | Uint8Array | readonly Uint8Array[];

/** Writes `data` to `file` via temp file + fsync + rename (+ directory fsync); removes the temp on failure. */
export function writeFileAtomic(file: string, data: AtomicData): void {
  if (typeof file !== 'string' || file.length === 0) throw new Error(`writeFileAtomic: file must be a non-empty path, got ${String(file)}`);
  const dir = path.dirname(path.resolve(file));
  // Same directory as the target: rename is atomic only within one filesystem.
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'wx', 0o644);
    const chunks = typeof data === 'string' ? [Buffer.from(data, 'utf8')] : data instanceof Uint8Array ? [data] : data;
    for (const chunk of chunks) writeAll(fd, chunk);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (err) {
    if (fd !== undefined) closeQuietly(fd);
    try {
      fs.unlinkSync(tmp);
    } catch {
      // the temp was never created, or is already gone
    }
    throw err;
  }
  fsyncDir(dir);
}

/** writeFileAtomic of JSON.stringify(value, null, indent) plus a trailing newline. */
export function writeJsonAtomic(file: string, value: unknown, indent = 2): void {
  const text = JSON.stringify(value, null, indent);
  if (text === undefined) throw new Error(`writeJsonAtomic: ${file}: value is not JSON-serializable (${typeof value})`);
  writeFileAtomic(file, `${text}\n`);
}

function writeAll(fd: number, chunk: Uint8Array): void {
  if (!(chunk instanceof Uint8Array)) throw new TypeError(`writeFileAtomic: chunk must be a Uint8Array, got ${Object.prototype.toString.call(chunk)}`);
  let off = 0;
  while (off < chunk.byteLength) off += fs.writeSync(fd, chunk, off, chunk.byteLength - off);
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // already failing; the original error is the one to report
  }
}

/** Makes the rename itself durable; some platforms (Windows) cannot open a directory, which is fine. */
function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // best effort
  } finally {
    if (fd !== undefined) closeQuietly(fd);
  }
}
