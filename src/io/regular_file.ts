/**
 * Readers accept regular files only: a FIFO, socket or device given as a config, checkpoint, trace or
 * placement would block the open (or never end) instead of failing. The probe opens with O_NONBLOCK, so
 * even a FIFO without a writer returns at once.
 */
import * as fs from 'node:fs';

const NONBLOCK_READ = fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0);

/** What a non-regular file is, in words. */
function kindOf(st: fs.Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

/** Opens `file` for reading (never blocking on a FIFO) and checks it is a regular file; returns the fd. */
export function openRegularFile(file: string, what = 'file'): number {
  const fd = fs.openSync(file, NONBLOCK_READ);
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new Error(`${what} ${file} is ${kindOf(st)}; Switchyard reads regular files only`);
    return fd;
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

/** Throws unless `file` is a regular file (checked without blocking; errors name `what` and the path). */
export function requireRegularFile(file: string, what = 'file'): fs.Stats {
  let fd: number;
  try {
    fd = openRegularFile(file, what);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`${what} ${file} does not exist`);
    if (typeof code === 'string') throw new Error(`${what} ${file}: cannot read (${code})`);
    throw e;
  }
  try {
    return fs.fstatSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads a regular file of at most maxBytes as UTF-8 (size checked before reading). */
export function readRegularText(file: string, maxBytes: number, what = 'file'): string {
  const st = requireRegularFile(file, what);
  if (st.size > maxBytes) throw new Error(`${what} ${file} is ${st.size} bytes, above the ${maxBytes}-byte limit`);
  return fs.readFileSync(file, 'utf8');
}
