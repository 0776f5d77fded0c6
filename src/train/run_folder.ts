/**
 * The rules of a run folder that no hostile or unlucky state may break:
 * - one writer at a time: RUN/.lock, a directory made atomically (proper-lockfile), and RUN/.lock.json naming
 *   the holder (pid, host, start). A lock whose process is gone (killed) is recognised as stale on the same
 *   host at once; across hosts, after its timestamp is STALE_MS old;
 * - no entry is written through a symbolic link: links among the run's entries are refused before anything
 *   changes (and every write is a temp file + rename, which replaces a directory entry, never its target);
 * - leftovers of a killed writer (checkpoints/.tmp-*, .NAME.PID.HEX.tmp) are removed once the lock is held.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import lockfile from 'proper-lockfile';
import { writeFileAtomic } from '../io/atomic.ts';

/** The lock directory and the holder record beside it (proper-lockfile removes the directory with rmdir). */
export const LOCK_DIR = '.lock';
export const LOCK_OWNER = '.lock.json';
/** A lock not refreshed for this long counts as stale when its holder cannot be checked (another host). */
export const STALE_MS = 5 * 60_000;
/** The entries Switchyard writes in a run folder; none of them may be a symbolic link. */
export const RUN_ENTRIES = ['config.yaml', 'tokenizer.json', 'metrics.jsonl', 'summary.json', 'report.html', 'checkpoints', 'tensorboard', LOCK_DIR, LOCK_OWNER];

/** Who holds a run folder's lock. */
export interface LockOwner { pid: number; host: string; started: string; command: string }

/** A held lock: release() frees it; check() throws if another process took it meanwhile. */
export interface RunLock {
  release(): void;
  check(): void;
  /** pid of a killed holder whose stale lock was removed to take this one (null: none). */
  staleFrom: number | null;
}

/** Throws if any of the run folder's entries (or a checkpoint inside it) is a symbolic link. */
export function refuseLinks(dir: string): void {
  const links: string[] = [];
  for (const name of RUN_ENTRIES) {
    try { if (fs.lstatSync(path.join(dir, name)).isSymbolicLink()) links.push(name); } catch { /* absent */ }
  }
  const ck = path.join(dir, 'checkpoints');
  if (!links.includes('checkpoints') && fs.existsSync(ck)) {
    for (const d of fs.readdirSync(ck, { withFileTypes: true })) if (d.isSymbolicLink()) links.push(`checkpoints/${d.name}`);
  }
  if (links.length > 0) {
    throw new Error(`${dir}: ${links.join(', ')} ${links.length > 1 ? 'are symbolic links' : 'is a symbolic link'}; Switchyard never writes through a link in a run folder. Replace ${links.length > 1 ? 'them' : 'it'} with the real file or folder, or remove ${links.length > 1 ? 'them' : 'it'}`);
  }
}

/** A small file's text, never through a link and never blocking on a FIFO (throws then). */
function readNoFollow(file: string): string {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  try {
    if (!fs.fstatSync(fd).isFile()) throw new Error(`${file} is not a regular file`);
    return fs.readFileSync(fd, 'utf8');
  } finally {
    fs.closeSync(fd);
  }
}

/** true when process `pid` exists on this host (EPERM: it exists, owned by someone else). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The recorded holder, or null when there is none (or it is unreadable: a holder killed while writing it). */
export function readLockOwner(dir: string): LockOwner | null {
  try {
    const text = readNoFollow(path.join(dir, LOCK_OWNER));
    const o = JSON.parse(text.slice(0, 4096)) as Partial<LockOwner>;
    if (!Number.isInteger(o.pid) || (o.pid as number) <= 0 || typeof o.host !== 'string') return null;
    return { pid: o.pid as number, host: o.host, started: String(o.started ?? '?'), command: String(o.command ?? '?') };
  } catch {
    return null;
  }
}

const describe = (o: LockOwner) => `process ${o.pid}${o.host === os.hostname() ? '' : ` on ${o.host}`} (${o.command}, since ${o.started})`;

/**
 * Takes the run folder's writer lock or throws naming the holder. A holder on this host whose process no longer
 * runs (a SIGKILL, a crash) left a stale lock, which is removed. The lock is freed by release() and on exit.
 */
export function lockRunFolder(dir: string, command = 'switchyard train'): RunLock {
  const lockDir = path.join(dir, LOCK_DIR);
  let staleFrom: number | null = null;
  let compromised: Error | null = null;
  for (let attempt = 0; ; attempt++) {
    const holder = fs.existsSync(lockDir) ? readLockOwner(dir) : null;
    if (holder && holder.host === os.hostname() && holder.pid !== process.pid && !alive(holder.pid) && attempt < 2) {
      fs.rmSync(lockDir, { recursive: true, force: true }); // its holder was killed: nobody will release it
      staleFrom = holder.pid;
    } else if (holder && holder.host === os.hostname() && alive(holder.pid)) {
      throw new Error(`${dir} is locked by ${describe(holder)}: one writer per run folder. Wait for it to finish or stop it; the lock frees itself when it exits`);
    }
    let releaseLock: () => void;
    try {
      releaseLock = lockfile.lockSync(dir, {
        lockfilePath: lockDir, realpath: false, stale: STALE_MS,
        onCompromised: (e: Error) => { compromised = e; },
      });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ELOCKED') throw e;
      const h = readLockOwner(dir);
      if (h && h.host === os.hostname() && !alive(h.pid) && attempt === 0) continue; // written meanwhile by a now-dead holder
      throw new Error(h
        ? `${dir} is locked by ${describe(h)}: one writer per run folder. Wait for it to finish or stop it`
        : `${dir} is locked (${lockDir} exists, no holder recorded yet); if no process uses the folder, the lock counts as stale ${STALE_MS / 60_000} minutes after its last refresh`);
    }
    const owner: LockOwner = { pid: process.pid, host: os.hostname(), started: new Date().toISOString(), command };
    writeFileAtomic(path.join(dir, LOCK_OWNER), `${JSON.stringify(owner)}\n`);
    let released = false;
    return {
      staleFrom,
      release() {
        if (released) return;
        released = true;
        const o = readLockOwner(dir);
        if (o && o.pid === process.pid && o.host === owner.host) fs.rmSync(path.join(dir, LOCK_OWNER), { force: true });
        try { releaseLock(); } catch { /* already gone (compromised) */ }
      },
      check() {
        if (compromised) throw new Error(`${dir}: the run folder's lock was lost (${(compromised as Error).message}); stopping so that two writers never share it`);
      },
    };
  }
}

/** Removes what a killed writer left behind: checkpoints/.tmp-* folders and .NAME.PID.HEX.tmp files. Call with the lock held. */
export function removeLeftovers(dir: string): string[] {
  const removed: string[] = [];
  const ck = path.join(dir, 'checkpoints');
  const tmpFile = /^\..+\.\d+\.[0-9a-f]{12}\.tmp$/;
  for (const [where, test] of [[ck, (n: string) => n.startsWith('.tmp-') || tmpFile.test(n)], [dir, (n: string) => tmpFile.test(n)]] as const) {
    if (!fs.existsSync(where)) continue;
    for (const n of fs.readdirSync(where)) {
      if (!test(n)) continue;
      fs.rmSync(path.join(where, n), { recursive: true, force: true });
      removed.push(path.relative(dir, path.join(where, n)));
    }
  }
  return removed;
}

/** Writes `text` to `file` atomically unless it already holds exactly these bytes (then the file is not touched). */
export function writeIfChanged(file: string, text: string): boolean {
  try {
    if (readNoFollow(file) === text) return false;
  } catch { /* absent or unreadable: write it */ }
  writeFileAtomic(file, text);
  return true;
}
