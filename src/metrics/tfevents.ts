/**
 * TensorBoard event files (`events.out.tfevents.*`): a sequence of records, each
 *   uint64 length (LE) · uint32 masked CRC32C(length) · data · uint32 masked CRC32C(data),
 * where data is a serialized `tensorboard.Event` protobuf (TensorBoard's compat/proto/event.proto).
 * The protobuf is encoded by protobufjs from the subset of messages declared below (field numbers and
 * types as in event.proto, summary.proto and histogram.proto); the checksum by crc-32's CRC32C.
 * Only the record framing is ours. Every record is handed to the kernel in one write, so TensorBoard
 * sees each logged step as soon as it is written and a killed run leaves at most one torn record.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import protobuf from 'protobufjs';
import CRC32C from 'crc-32/crc32c.js';

/** The event file version TensorBoard expects in the first record ("brain.Event:2": SessionLog restarts apply). */
export const FILE_VERSION = 'brain.Event:2';

/** SessionLog.SessionStatus values (event.proto). */
export const SessionStatus = { STATUS_UNSPECIFIED: 0, START: 1, STOP: 2, CHECKPOINT: 3 } as const;

const packed = { packed: true };

/** The messages Switchyard writes, in protobufjs JSON form; numbers and types match TensorBoard's protos. */
const SCHEMA = {
  nested: {
    tensorboard: {
      nested: {
        Event: {
          oneofs: { what: { oneof: ['file_version', 'summary', 'session_log'] } },
          fields: {
            wall_time: { type: 'double', id: 1 },
            step: { type: 'int64', id: 2 },
            file_version: { type: 'string', id: 3 },
            summary: { type: 'Summary', id: 5 },
            session_log: { type: 'SessionLog', id: 7 },
          },
        },
        SessionLog: {
          fields: { status: { type: 'SessionStatus', id: 1 }, checkpoint_path: { type: 'string', id: 2 }, msg: { type: 'string', id: 3 } },
          nested: { SessionStatus: { values: SessionStatus } },
        },
        Summary: {
          fields: { value: { rule: 'repeated', type: 'Value', id: 1 } },
          nested: {
            Value: {
              oneofs: { value: { oneof: ['simple_value', 'histo'] } },
              fields: { tag: { type: 'string', id: 1 }, simple_value: { type: 'float', id: 2 }, histo: { type: 'HistogramProto', id: 5 } },
            },
          },
        },
        HistogramProto: {
          fields: {
            min: { type: 'double', id: 1 }, max: { type: 'double', id: 2 }, num: { type: 'double', id: 3 }, sum: { type: 'double', id: 4 },
            sum_squares: { type: 'double', id: 5 },
            bucket_limit: { rule: 'repeated', type: 'double', id: 6, options: packed },
            bucket: { rule: 'repeated', type: 'double', id: 7, options: packed },
          },
        },
      },
    },
  },
};

const EventType = protobuf.Root.fromJSON(SCHEMA).lookupType('tensorboard.Event');

/** HistogramProto: bucket i counts values in (bucket_limit[i−1], bucket_limit[i]]; the first from −DBL_MAX. */
export interface Histogram {
  min: number;
  max: number;
  num: number;
  sum: number;
  sum_squares: number;
  bucket_limit: number[];
  bucket: number[];
}

/** One Summary.Value: a scalar (stored as float32, as TensorBoard's simple_value) or a histogram. */
export type SummaryValue = { tag: string; simple_value: number } | { tag: string; histo: Histogram };

/** The fields of an Event that Switchyard writes (exactly one of file_version, summary, session_log). */
export interface EventFields {
  wall_time: number;
  step: number;
  file_version?: string;
  summary?: { value: SummaryValue[] };
  session_log?: { status: number; msg?: string };
}

/** Serializes an Event. */
export function encodeEvent(ev: EventFields): Uint8Array {
  if (!Number.isInteger(ev.step) || ev.step < 0) throw new Error(`tfevents: step must be an integer ≥ 0, got ${ev.step}`);
  const err = EventType.verify(ev);
  if (err) throw new Error(`tfevents: bad event: ${err}`);
  return EventType.encode(EventType.fromObject(ev)).finish();
}

/** Masked CRC (TFRecord): ((crc >>> 15) | (crc << 17)) + 0xa282ead8, mod 2³². */
export function maskedCrc32c(data: Uint8Array): number {
  const crc = CRC32C.buf(data) >>> 0;
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** One TFRecord: length (u64 LE), masked CRC of the length bytes, data, masked CRC of data. */
export function frameRecord(data: Uint8Array): Buffer {
  const out = Buffer.alloc(8 + 4 + data.length + 4);
  out.writeBigUInt64LE(BigInt(data.length), 0);
  out.writeUInt32LE(maskedCrc32c(out.subarray(0, 8)), 8);
  out.set(data, 12);
  out.writeUInt32LE(maskedCrc32c(data), 12 + data.length);
  return out;
}

/** The seconds field of an event file name (events.out.tfevents.<seconds>.…), or null. */
function fileSeconds(name: string): number | null {
  const m = /^events\.out\.tfevents\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : null;
}

/** Event files in `dir`, in the order TensorBoard reads them (by name). */
export function listEventFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((n) => n.includes('tfevents')).sort().map((n) => path.join(dir, n));
}

/**
 * Writes one new event file in `dir`. TensorBoard reads a folder's event files in name order, so the name's
 * seconds field is made larger than every existing file's: a resumed run's file always sorts last.
 */
export class EventFileWriter {
  readonly path: string;
  private fd: number | null;

  /** Creates dir (if needed) and the file; writes the file_version event. */
  constructor(dir: string, now: () => number = Date.now) {
    fs.mkdirSync(dir, { recursive: true });
    const existing = fs.readdirSync(dir).map(fileSeconds).filter((s): s is number => s !== null);
    const secs = Math.max(Math.floor(now() / 1000), ...existing.map((s) => s + 1));
    const host = os.hostname().replace(/[^A-Za-z0-9_-]/g, '_') || 'host';
    this.path = path.join(dir, `events.out.tfevents.${String(secs).padStart(10, '0')}.${host}.${process.pid}.0`);
    this.fd = fs.openSync(this.path, 'wx');
    this.now = now;
    this.write({ wall_time: now() / 1000, step: 0, file_version: FILE_VERSION });
  }

  private readonly now: () => number;

  /** Appends one event (wall_time defaults to now) in a single write. */
  write(ev: Omit<EventFields, 'wall_time'> & { wall_time?: number }): void {
    if (this.fd === null) throw new Error(`tfevents: ${this.path} is closed`);
    const buf = frameRecord(encodeEvent({ ...ev, wall_time: ev.wall_time ?? this.now() / 1000 }));
    let off = 0;
    while (off < buf.length) off += fs.writeSync(this.fd, buf, off, buf.length - off);
  }

  /** Appends a Summary event at `step`. */
  writeSummary(step: number, values: SummaryValue[]): void {
    if (values.length) this.write({ step, summary: { value: values } });
  }

  /** Closes the file; later writes throw. Idempotent. */
  close(): void {
    if (this.fd === null) return;
    fs.closeSync(this.fd);
    this.fd = null;
  }
}
