/**
 * Files from our safetensors writer read by an independent reader: test/py/check_safetensors.py, a spec reader in
 * Python (struct + json + numpy; Debian's python3-numpy). It checks the layout (header length, no holes or overlaps,
 * sizes from shapes, full coverage of the data buffer) and prints each tensor's dtype, shape and element sum,
 * which must equal what we wrote. When Python's `safetensors` package is importable the script also compares
 * with the reference reader and writer.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { float32ToBf16, float32ToF16, writeSafetensorsAtomic, type SafeTensor } from '../src/io/safetensors.ts';
import { randomArray } from './helpers.ts';

const SCRIPT = path.resolve('test/py/check_safetensors.py');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-st-py-'));

function runChecker(files: string[]) {
  const r = spawnSync('python3', [SCRIPT, ...files], { encoding: 'utf8' });
  if (r.error) throw new Error(`python3 did not start (${r.error.message}); CI installs python3-numpy (.ci/run)`);
  return r;
}

/** Lines "name\tdtype\t[shape]\tsum=S" of one file's section → name → {dtype, shape, sum}. */
function parseSection(out: string, file: string) {
  const section = out.split('== ').find((s) => s.startsWith(`${file}\n`));
  if (!section) throw new Error(`no section for ${file} in:\n${out}`);
  const tensors: Record<string, { dtype: string; shape: number[]; sum: number }> = {};
  let metadata: unknown = null;
  for (const line of section.split('\n').slice(1)) {
    const m = /^(.+)\t(\w+)\t(\[[\d, ]*\])\tsum=(.+)$/.exec(line);
    if (m) tensors[m[1]] = { dtype: m[2], shape: JSON.parse(m[3]), sum: Number(m[4]) };
    if (line.startsWith('metadata ')) metadata = JSON.parse(line.slice('metadata '.length));
  }
  return { tensors, metadata };
}

describe('safetensors files read by an independent Python reader', () => {
  it('every dtype numpy has, BF16, scalars, empty tensors and metadata: layout accepted, dtypes, shapes and sums equal', () => {
    const f32 = randomArray(24, 3, 4);
    const halfs = Float32Array.from(randomArray(10, 4, 2), (v) => Math.round(v * 64) / 64); // exact in F16 and BF16
    const tensors: Record<string, SafeTensor> = {
      'w.f32': { dtype: 'F32', shape: [2, 3, 4], data: f32 },
      'w.f64': { dtype: 'F64', shape: [5], data: Float64Array.from([1.5, -2.25, 1e10, 3e-5, 0]) },
      'w.f16': { dtype: 'F16', shape: [10], data: float32ToF16(halfs) },
      'w.bf16': { dtype: 'BF16', shape: [2, 5], data: float32ToBf16(halfs) },
      'i.i64': { dtype: 'I64', shape: [3], data: BigInt64Array.from([-5n, 7n, 1n << 40n]) },
      'i.i32': { dtype: 'I32', shape: [4], data: Int32Array.from([-2147483648, 2147483647, 3, -4]) },
      'i.u8': { dtype: 'U8', shape: [3], data: Uint8Array.from([0, 200, 255]) },
      'i.i8': { dtype: 'I8', shape: [2], data: Int8Array.from([-128, 127]) },
      'i.u16': { dtype: 'U16', shape: [2], data: Uint16Array.from([65535, 1]) },
      'b.bool': { dtype: 'BOOL', shape: [4], data: Uint8Array.from([1, 0, 1, 1]) },
      scalar: { dtype: 'F32', shape: [], data: Float32Array.from([2.5]) },
      empty: { dtype: 'F32', shape: [0, 3], data: new Float32Array(0) },
    };
    const want: Record<string, number> = {
      'w.f32': Array.from(f32).reduce((a, b) => a + b, 0), 'w.f64': 1.5 - 2.25 + 1e10 + 3e-5,
      'w.f16': halfs.reduce((a, b) => a + b, 0), 'w.bf16': halfs.reduce((a, b) => a + b, 0),
      'i.i64': -5 + 7 + 2 ** 40, 'i.i32': -2147483648 + 2147483647 + 3 - 4, 'i.u8': 455, 'i.i8': -1, 'i.u16': 65536,
      'b.bool': 3, scalar: 2.5, empty: 0,
    };
    const a = path.join(dir, 'all.safetensors');
    const b = path.join(dir, 'one-meta.safetensors');
    writeSafetensorsAtomic(a, tensors, { format: 'switchyard', note: 'ünïcode ✓' });
    writeSafetensorsAtomic(b, { 'w.f32': tensors['w.f32'] }, { step: '12' });
    const r = runChecker([a, b]);
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).not.toMatch(/MISMATCH|DISAGREES|not a multiple of 8/); // our writer aligns the header
    const got = parseSection(r.stdout, a);
    expect(Object.keys(got.tensors).sort()).toEqual(Object.keys(tensors).sort());
    for (const [name, t] of Object.entries(tensors)) {
      expect(got.tensors[name].dtype, name).toBe(t.dtype);
      expect(got.tensors[name].shape, name).toEqual(t.shape);
      expect(Math.abs(got.tensors[name].sum - want[name]), `${name}: Python sums ${got.tensors[name].sum}, we wrote ${want[name]}`)
        .toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(want[name])));
    }
    expect(got.metadata).toEqual({ format: 'switchyard', note: 'ünïcode ✓' });
    expect(parseSection(r.stdout, b).metadata).toEqual({ step: '12' });
  });

  it('the checker refuses a file with a hole between tensors and one whose data is short (it can fail)', () => {
    const header = (h: object) => {
      const json = Buffer.from(JSON.stringify(h));
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(json.length));
      return Buffer.concat([len, json]);
    };
    const hole = path.join(dir, 'hole.safetensors');
    fs.writeFileSync(hole, Buffer.concat([header({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } }), Buffer.alloc(12)]));
    const short = path.join(dir, 'short.safetensors');
    fs.writeFileSync(short, Buffer.concat([header({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }), Buffer.alloc(4)]));
    const r1 = runChecker([hole]);
    expect(r1.status).not.toBe(0);
    expect(r1.stderr).toMatch(/leave a hole or overlap/);
    const r2 = runChecker([short]);
    expect(r2.status).not.toBe(0);
    expect(r2.stderr).toMatch(/4 bytes for shape \[2\] of F32/);
  });
});
