import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { MetricsWriter, truncateMetricsAfter, type MetricRecord } from '../src/metrics/jsonl.ts';
import { expertLoadHistogram, layerTag, percentile, recordScalars, recordValues, TensorBoardLogger } from '../src/metrics/tensorboard.ts';
import { encodeEvent, frameRecord, listEventFiles, maskedCrc32c } from '../src/metrics/tfevents.ts';

const PY = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const FIXTURES = path.resolve('test/fixtures/tensorboard');

/** Runs the independent Python reader on a run folder; returns its JSON summary (or the failure text). */
function pyRead(run: string): { ok: boolean; out: Record<string, unknown>; err: string } {
  const r = spawnSync(PY, ['test/py/read_tfevents.py', run], { encoding: 'utf8' });
  if (r.error) throw r.error;
  return { ok: r.status === 0, out: r.status === 0 ? JSON.parse(r.stdout) : {}, err: r.stderr };
}

/** A record with the fields the trainer writes; loads vary with `seed` so a resumed run differs. */
function rec(step: number, seed: number): MetricRecord {
  const L = 3, E = 4;
  const expert_load = Array.from({ length: L }, (_, l) => Array.from({ length: E }, (_, i) => ((step * 7 + l * 5 + i * 3 + seed) % 11) + (i === l ? 9 : 0)));
  return {
    step, loss: 5 / (1 + step / 10) + seed * 0.01, aux: { switch: 1.01 + seed / 100, z: 0.3 + step * 1e-3 }, lr: 1e-3 * Math.min(1, step / 5), grad_norm: step === 3 ? null : 0.5 + 1 / step,
    tokens_per_s: 1234.5 + step, expert_load, dropped: [0, 1, 0], load_cv: 0.25 + 0.01 * seed, max_load_share: 0.4, maxvio: 0.6, router_entropy: 1.3,
    dropped_fraction: 0.01, ...(step % 5 === 0 ? { val_loss: 4.1 - step / 100, val_ppl: Math.exp(4.1 - step / 100) } : {}),
  };
}

describe('TensorBoard event records', () => {
  it('masked CRC32C matches the TFRecord definition on known values', () => {
    // CRC32C("123456789") = 0xE3069283 (RFC 3720 check value); mask = rotr15 + 0xa282ead8.
    const crc = 0xe3069283;
    const want = ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
    expect(maskedCrc32c(Buffer.from('123456789'))).toBe(want);
    // CRC32C of 32 zero bytes = 0x8A9136AA (RFC 3720 B.4).
    const z = 0x8a9136aa;
    expect(maskedCrc32c(new Uint8Array(32))).toBe(((((z >>> 15) | (z << 17)) >>> 0) + 0xa282ead8) >>> 0);
  });

  it('frames a record as length, masked CRC of the length, data, masked CRC of the data', () => {
    const data = Buffer.from('abc');
    const f = frameRecord(data);
    expect(f.length).toBe(8 + 4 + 3 + 4);
    expect(f.readBigUInt64LE(0)).toBe(3n);
    expect(f.readUInt32LE(8)).toBe(maskedCrc32c(f.subarray(0, 8)));
    expect(f.subarray(12, 15).toString()).toBe('abc');
    expect(f.readUInt32LE(15)).toBe(maskedCrc32c(data));
  });

  it('encodes an Event with the wire bytes of event.proto (hand-assembled)', () => {
    // wall_time=1.5 (field 1, fixed64) · step=7 (field 2, varint) · file_version="v" (field 3, bytes)
    const b = Buffer.from(encodeEvent({ wall_time: 1.5, step: 7, file_version: 'v' }));
    expect(b.toString('hex')).toBe(`09${Buffer.from(new Float64Array([1.5]).buffer).toString('hex')}1007` + '1a0176');
    // histogram repeated doubles are packed (field 6, wire type 2: key 0x32).
    const h = Buffer.from(encodeEvent({ wall_time: 0, step: 1, summary: { value: [{ tag: 't', histo: expertLoadHistogram([1, 2]) }] } }));
    expect(h.includes(Buffer.from([0x32, 16]))).toBe(true);
  });

  it('declares the fields of TensorBoard\'s protos with their numbers and types', () => {
    const root = new protobuf.Root();
    root.resolvePath = (_origin, target) => (path.isAbsolute(target) ? target : path.join(FIXTURES, target));
    root.loadSync(path.join(FIXTURES, 'tensorboard/compat/proto/event.proto'), { keepCase: true });
    root.resolveAll();
    const check = (name: string, fields: Record<string, [number, string, boolean?]>) => {
      const t = root.lookupType(name);
      for (const [f, [id, type, repeated]] of Object.entries(fields)) {
        expect(t.fields[f], `${name}.${f}`).toBeDefined();
        expect([t.fields[f].id, t.fields[f].type, t.fields[f].repeated]).toEqual([id, type, Boolean(repeated)]);
      }
    };
    check('tensorboard.Event', { wall_time: [1, 'double'], step: [2, 'int64'], file_version: [3, 'string'], summary: [5, 'Summary'], session_log: [7, 'SessionLog'] });
    check('tensorboard.SessionLog', { status: [1, 'SessionStatus'], msg: [3, 'string'] });
    check('tensorboard.Summary', { value: [1, 'Value', true] });
    check('tensorboard.Summary.Value', { tag: [1, 'string'], simple_value: [2, 'float'], histo: [5, 'HistogramProto'] });
    check('tensorboard.HistogramProto', { min: [1, 'double'], max: [2, 'double'], num: [3, 'double'], sum: [4, 'double'], sum_squares: [5, 'double'], bucket_limit: [6, 'double', true], bucket: [7, 'double', true] });
    expect(root.lookupEnum('tensorboard.SessionLog.SessionStatus').values.START).toBe(1);
  });
});

describe('TensorBoard tags', () => {
  it('percentile interpolates linearly between order statistics (hand-computed)', () => {
    const xs = [4, 1, 3, 2]; // sorted 1 2 3 4; h = 3q/100
    expect(percentile(xs, 50)).toBeCloseTo(2.5, 12);
    expect(percentile(xs, 90)).toBeCloseTo(3.7, 12);
    expect(percentile(xs, 95)).toBeCloseTo(3.85, 12);
    expect(percentile(xs, 100)).toBe(4);
    expect(percentile([7], 95)).toBe(7);
    expect(() => percentile([], 50)).toThrow(/non-empty/);
  });

  it('the expert-load histogram has one bucket per expert holding its load', () => {
    const h = expertLoadHistogram([3, 0, 1]);
    expect(h).toEqual({ min: 0, max: 2, num: 4, sum: 2, sum_squares: 4, bucket_limit: [0.5, 1.5, 2.5], bucket: [3, 0, 1] });
  });

  it('names per-layer tags with two-digit layers and leaves non-finite values out', () => {
    expect(layerTag(3, 12)).toBe('layer_03');
    expect(layerTag(7, 120)).toBe('layer_007');
    const tags = new Map(recordScalars(rec(3, 0)));
    expect(tags.has('train/grad_norm')).toBe(false); // null in the record
    // layer 0 load at step 3: ((21 + 3i) % 11) + 9·[i = 0] → [19, 2, 5, 8]: MaxVio = (19 − 8.5) / 8.5
    expect(tags.get('moe/layer_00/maxvio')).toBeCloseTo((19 - 8.5) / 8.5, 12);
    expect(tags.get('moe/layer_00/max_load_share')).toBeCloseTo(19 / 34, 12);
    expect(tags.has('moe/maxvio/p95') && tags.has('moe/load_cv/max') && tags.has('aux/switch')).toBe(true);
  });
});

describe('TensorBoard event files, read by TensorBoard\'s protos in Python', () => {
  it('a run and its resume decode with every CRC valid and equal metrics.jsonl, with no zigzag', () => {
    const run = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-tb-'));
    const metrics = path.join(run, 'metrics.jsonl');
    // First run: logs steps 1..14, "checkpoint" at 10, then dies.
    let w = new MetricsWriter(metrics);
    let tb = new TensorBoardLogger(run, { now: () => 1_700_000_000_000 });
    for (let s = 1; s <= 14; s++) { const r = rec(s, 0); w.write(r); tb.write(r); }
    w.close(); tb.close();
    const first = pyRead(run);
    expect(first.err).toBe('');
    expect(first.out).toMatchObject({ starts: [0], purged: 0, steps: Array.from({ length: 14 }, (_, i) => i + 1) });
    // Resume from step 10 in the same second: metrics.jsonl drops 11..14, the new event file sorts last.
    truncateMetricsAfter(metrics, 10);
    w = new MetricsWriter(metrics);
    tb = new TensorBoardLogger(run, { resumedFrom: 10, now: () => 1_700_000_000_000 });
    for (let s = 11; s <= 20; s++) { const r = rec(s, 1); w.write(r); tb.write(r); }
    w.close(); tb.close();
    const files = listEventFiles(path.join(run, 'tensorboard'));
    expect(files.length).toBe(2);
    expect(path.basename(files[1]) > path.basename(files[0])).toBe(true);
    const second = pyRead(run);
    expect(second.err).toBe('');
    // The reader's restart rule removed the killed run's points at steps 11..14 (4 steps × every tag at them).
    expect(second.out.starts).toEqual([0, 11]);
    const orphaned = [11, 12, 13, 14].reduce((a, s) => a + recordValues(rec(s, 0)).length, 0);
    expect(second.out.purged).toBe(orphaned);
    expect(second.out.steps).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  });

  it('the reader fails on a flipped byte and on a missing restart (the checks can fail)', () => {
    const run = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-tb-bad-'));
    const w = new MetricsWriter(path.join(run, 'metrics.jsonl'));
    const tb = new TensorBoardLogger(run);
    for (let s = 1; s <= 3; s++) { const r = rec(s, 0); w.write(r); tb.write(r); }
    w.close(); tb.close();
    expect(pyRead(run).ok).toBe(true);
    // A value off by 1e-3 in metrics.jsonl is a mismatch.
    const mf = path.join(run, 'metrics.jsonl');
    const text = fs.readFileSync(mf, 'utf8');
    const lines = text.trim().split('\n').map((l) => JSON.parse(l) as MetricRecord);
    lines[1].loss = (lines[1].loss as number) + 1e-3;
    fs.writeFileSync(mf, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
    const off = pyRead(run);
    expect(off.ok).toBe(false);
    expect(off.err).toMatch(/tag train\/loss step 2: event .* != metrics.jsonl/);
    fs.writeFileSync(mf, text);
    const f = listEventFiles(path.join(run, 'tensorboard'))[0];
    const buf = fs.readFileSync(f);
    buf[buf.length - 10] ^= 0x01;
    fs.writeFileSync(f, buf);
    const bad = pyRead(run);
    expect(bad.ok).toBe(false);
    expect(bad.err).toMatch(/CRC mismatch/);
    // Two runs logged into one folder with no restart START: duplicated steps (the zigzag) are reported.
    const run2 = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-tb-zig-'));
    const w2 = new MetricsWriter(path.join(run2, 'metrics.jsonl'));
    const tb2 = new TensorBoardLogger(run2);
    for (let s = 1; s <= 3; s++) { const r = rec(s, 0); w2.write(r); tb2.write(r); }
    for (let s = 2; s <= 3; s++) tb2.write(rec(s, 1));
    w2.close(); tb2.close();
    const zig = pyRead(run2);
    expect(zig.ok).toBe(false);
    expect(zig.err).toMatch(/zigzag/);
  });
});

describe('TensorBoard from a real training run (logging.tensorboard: true)', () => {
  it('writes event files as it trains, and a resumed run purges what the killed run logged after its checkpoint', () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-tb-train-'));
    const cli = (...args: string[]) => {
      const r = spawnSync(process.execPath, ['bin/switchyard.js', 'train', ...args], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
    };
    cli('--config', 'configs/tiny.yaml', '--steps', '12', '--set', 'log_every=2', '--set', 'eval_every=6', '--set', 'checkpoint_every=6', '--set', 'logging.tensorboard=true', '--out', out);
    const first = pyRead(out);
    expect(first.err).toBe('');
    expect(first.out).toMatchObject({ starts: [0], purged: 0, steps: [2, 4, 6, 8, 10, 12] });
    // A crash after step 12 was logged but before its checkpoint was written: only step 6's checkpoint is left.
    const cks = fs.readdirSync(path.join(out, 'checkpoints')).sort();
    fs.rmSync(path.join(out, 'checkpoints', cks[cks.length - 1]), { recursive: true });
    cli('--resume', out);
    const second = pyRead(out);
    expect(second.err).toBe('');
    expect(second.out.files as string[]).toHaveLength(2);
    expect(second.out.starts).toEqual([0, 7]);
    expect(second.out.purged as number).toBeGreaterThan(0); // steps 8..12 of the first run
    expect(second.out.steps).toEqual([2, 4, 6, 8, 10, 12]);
    fs.rmSync(out, { recursive: true, force: true });
  });
});
