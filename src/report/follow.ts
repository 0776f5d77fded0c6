/**
 * Follows a run's metrics.jsonl while it grows: each poll reads only the bytes appended since the last one and
 * keeps a partial last line for the next poll. The file starts over when a resumed run rewrites it
 * (truncateMetricsAfter replaces it by rename: a new inode), when it shrinks in place, when a step does not follow
 * the last one read, or when it disappears (a fresh run in the same folder): the records are then read again
 * from the start. Polling stat() instead of fs.watch also sees a replaced file and works on network file systems.
 */
import * as fs from 'node:fs';
import { parseMetrics, type MetricRecord } from '../metrics/jsonl.ts';

/** What one poll found. */
export interface PollResult {
  /** records were added or the file started over. */
  changed: boolean;
  /** the file started over (records were replaced, not only appended). */
  reset: boolean;
}

/** Reads a growing metrics.jsonl incrementally. */
export class MetricsFollower {
  readonly file: string;
  records: MetricRecord[] = [];
  /** a bad line stops following until the file changes; the message names the file and line. */
  error: string | null = null;
  /** how many times the file started over. */
  resets = 0;
  private ino = -1;
  private offset = 0;
  private partial: Buffer = Buffer.alloc(0);
  /** the last complete line read (with its newline): checked again before reading on, to see an in-place rewrite. */
  private tail: Buffer = Buffer.alloc(0);
  private lines = 0;

  constructor(file: string) {
    this.file = file;
  }

  private restart(ino: number): void {
    this.records = [];
    this.error = null;
    this.ino = ino;
    this.offset = 0;
    this.partial = Buffer.alloc(0);
    this.tail = Buffer.alloc(0);
    this.lines = 0;
  }

  /** True when the bytes before the read position still end with the last line read. */
  private tailIntact(fd: number): boolean {
    if (this.tail.length === 0) return true;
    const at = this.offset - this.partial.length - this.tail.length;
    const now = Buffer.alloc(this.tail.length);
    return fs.readSync(fd, now, 0, now.length, at) === now.length && now.equals(this.tail);
  }

  /** Reads what was appended since the last poll. */
  poll(): PollResult {
    const st = fs.statSync(this.file, { throwIfNoEntry: false });
    if (!st) {
      const had = this.records.length > 0 || this.ino !== -1;
      if (had) { this.restart(-1); this.resets++; }
      return { changed: had, reset: had };
    }
    let reset = false;
    if (st.ino !== this.ino || st.size < this.offset) {
      reset = this.ino !== -1;
      if (reset) this.resets++;
      this.restart(st.ino);
    }
    if (st.size === this.offset) return { changed: reset, reset };
    if (this.error !== null) return { changed: reset, reset };
    const fd = fs.openSync(this.file, 'r');
    let chunk: Buffer;
    try {
      if (!this.tailIntact(fd)) {
        // Rewritten in place (same inode, not shorter): read it again from the first byte.
        fs.closeSync(fd);
        this.restart(st.ino);
        this.resets++;
        this.poll();
        return { changed: true, reset: true };
      }
      chunk = Buffer.alloc(st.size - this.offset);
      let got = 0;
      while (got < chunk.length) {
        const n = fs.readSync(fd, chunk, got, chunk.length - got, this.offset + got);
        if (n === 0) break;
        got += n;
      }
      chunk = chunk.subarray(0, got);
    } finally {
      try { fs.closeSync(fd); } catch { /* closed above before a restart */ }
    }
    this.offset += chunk.length;
    const buf = Buffer.concat([this.partial, chunk]);
    const end = buf.lastIndexOf(0x0a);
    if (end < 0) { this.partial = buf; return { changed: reset, reset }; }
    this.partial = Buffer.from(buf.subarray(end + 1));
    const text = buf.subarray(0, end + 1).toString('utf8');
    let parsed: MetricRecord[];
    try {
      parsed = parseMetrics(text, `${this.file} (from line ${this.lines + 1})`).records;
    } catch (e) {
      this.error = (e as Error).message;
      return { changed: true, reset };
    }
    const last = this.records.length ? this.records[this.records.length - 1].step : -1;
    if (parsed.length && parsed[0].step <= last) {
      // Rewritten in place past the old size: start over from the first byte.
      this.restart(st.ino);
      this.resets++;
      this.poll();
      return { changed: true, reset: true };
    }
    const prevEnd = text.lastIndexOf('\n', text.length - 2);
    this.tail = Buffer.from(buf.subarray(Buffer.byteLength(text.slice(0, prevEnd + 1), 'utf8'), end + 1));
    this.lines += text.split('\n').length - 1;
    for (const r of parsed) this.records.push(r);
    return { changed: parsed.length > 0 || reset, reset };
  }
}
