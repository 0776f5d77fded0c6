/**
 * Communication simulator: a 2×2 cluster priced by hand, uniform-load closed forms (binomials computed here, not by
 * the code under test), the top-k model against brute-force enumeration, NIC sharing, the 4096-GPU case, sweeps,
 * topology validation and the simulate CLI. Pure TypeScript (no tfjs), so no describeBackends.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { toModelShape, type ModelShapeConfig } from '../src/sim/model_shape.ts';
import { fitTopK, inclusionTargets, missProbability } from '../src/plan/topk_model.ts';
import { layerModels, simulate } from '../src/sim/simulate.ts';
import { rebalanceExperts } from '../src/plan/eplb.ts';
import { parseSweep, recommend, runSweep } from '../src/sim/sweep.ts';
import { parseYaml, readTopology, TopologySchema, toTopology, type Topology } from '../src/sim/topology.ts';

const run = promisify(execFile);
const close = (a: number, b: number, rel = 1e-12): void => expect(Math.abs(a - b)).toBeLessThanOrEqual(rel * Math.abs(b));

/** C(n, k) by the multiplicative formula (exact for these sizes). */
function choose(n: number, k: number): number {
  let c = 1;
  for (let i = 1; i <= k; i++) c = (c * (n - k + i)) / i;
  return Math.round(c);
}

function topo(nodes: number, gpn: number, nics: number, nvGB = 450, nvUs = 2, nicGbit = 400, nicUs = 4, tflops = 989, mfu = 0.5): Topology {
  return toTopology(parseYaml(
    // ideal links (efficiency 1, no phase overhead): the hand-computed forms below price line rates
    `nodes: ${nodes}\ngpus_per_node: ${gpn}\nintra_node: {bandwidth_GB_per_s: ${nvGB}, latency_us: ${nvUs}, efficiency: 1}\n` +
    `inter_node: {bandwidth_Gbit_per_s: ${nicGbit}, latency_us: ${nicUs}, efficiency: 1, nics_per_node: ${nics}}\nphase_overhead_us: 0\ngpu: {tflops: ${tflops}, mfu: ${mfu}}\n`,
    TopologySchema, 'test'));
}

const shape = (o: Partial<ModelShapeConfig>) => toModelShape({
  tokens_per_gpu: 1000, hidden: 1000, experts: 4, top_k: 2, expert_ffn: 2500, layers: 1, gated: false,
  dispatch_bytes: 1, combine_bytes: 2, overlap_chunks: 1, ...o,
});

describe('2 nodes × 2 GPUs by hand', () => {
  // NVLink 100 GB/s, 1 µs; NIC 200 Gb/s = 25 GB/s, 5 µs, one per GPU; 100 TFLOP/s. T = 1000 tokens, H = 1000,
  // dispatch 1 B, combine 2 B: a token copy is u = 1000 B (dispatch), 2000 B (combine). 4 experts, one per GPU,
  // top-2 uniform: λ_j = 2/4 = 0.5 copies per token per GPU.
  const t = topo(2, 2, 2, 100, 1, 200, 5, 100, 1);
  const [r] = simulate(t, shape({ overlap_chunks: 2 }), { kind: 'uniform' });

  it('flat: NIC-bound, 2 remote peers', () => {
    // NVLink: 1 peer · 1000·1000·0.5 B = 5e5 B → 5 µs + 1 µs = 6 µs. NIC: 2 peers · 5e5 B = 1e6 B → 40 µs + 2·5 µs = 50 µs.
    close(r.flat.dispatch, 50e-6);
    // combine: NIC 2e6 B → 80 µs + 10 µs = 90 µs
    close(r.flat.combine, 90e-6);
    // compute: 4 GPUs · 1000 tokens · 0.5 = 2000 pairs · 2·2·1000·2500 FLOP = 2e10 FLOP / 1e14 = 200 µs
    close(r.flat.compute, 200e-6);
    close(r.flat.total, 340e-6);
    close(r.flat.overhead, 140 / 200);
    close(r.flat.efficiency, 200 / 340);
    expect(r.flat.interBytes).toBe(1e6);
    expect(r.flat.intraBytes).toBe(5e5);
  });

  it('hierarchical: each token crosses to the other node once', () => {
    // P(token needs the other node) = 1 − C(2,2)/C(4,2) = 5/6; P(token needs a given GPU) = 1/2.
    // stage 1: NIC 1e6·5/6 B → 33.333 µs + 5 µs; NVLink own 5e5 B → 6 µs  ⇒ 38.333 µs
    // stage 2: forward (N−1)·T·u·q = 5e5 B → 5 µs + 1 µs = 6 µs        ⇒ dispatch 44.333 µs
    close(r.hierarchical.dispatch, 5e-6 + 1e6 * (5 / 6) / 25e9 + 6e-6);
    // combine (2 B): 5 µs + 66.667 µs + (1 µs + 10 µs)
    close(r.hierarchical.combine, 5e-6 + 2e6 * (5 / 6) / 25e9 + 11e-6);
    close(r.hierarchical.interBytes, 1e6 * (5 / 6));
  });

  it('chunked overlap: d + c + b + (C−1)·max(d + b, c) at the best C ≤ 2', () => {
    // C = 2: d = 10 µs + 20 µs = 30 µs, b = 10 µs + 40 µs = 50 µs, c = 100 µs ⇒ 30 + 100 + 50 + max(80, 100) = 280 µs < 340 µs
    close(r.flat.overlapped, 280e-6);
    expect(r.flat.chunks).toBe(2);
    close(r.flat.overlappedEfficiency, 200 / 280);
  });
});

describe('uniform loads match closed forms', () => {
  // 4 nodes × 8 GPUs, 64 experts (2 per GPU, 16 per node), top-6, T = 2048, H = 4096, BF16.
  const t = topo(4, 8, 8);
  const s = shape({ tokens_per_gpu: 2048, hidden: 4096, experts: 64, top_k: 6, expert_ffn: 1024, gated: true, dispatch_bytes: 2, combine_bytes: 2 });
  const [r] = simulate(t, s, { kind: 'uniform' });
  const T = 2048, u = 4096 * 2, k = 6, E = 64, G = 32, g = 8, N = 4, lam = k / G;
  const nv = 450e9, nvA = 2e-6, nic = 50e9, nicA = 4e-6;

  it('flat all-to-all', () => {
    const tNv = nvA * (g - 1) + (T * u * lam * (g - 1)) / nv;
    const tNic = nicA * (G - g) + (T * u * lam * (G - g)) / nic;
    close(r.flat.dispatch, Math.max(tNv, tNic));
    close(r.flat.compute, (T * k * 2 * 3 * 4096 * 1024) / (989e12 * 0.5));
  });

  it('hierarchical all-to-all (hypergeometric dedup)', () => {
    const h = 1 - choose(E - E / N, k) / choose(E, k); // node needed
    const q = 1 - choose(E - 2, k) / choose(E, k); // GPU needed
    const t1 = Math.max(nicA * (N - 1) + (T * u * h * (N - 1)) / nic, nvA * (g - 1) + (T * u * q * (g - 1)) / nv);
    const t2 = nvA * (g - 1) + ((N - 1) * T * u * q * (g - 1)) / nv;
    close(r.hierarchical.dispatch, t1 + t2);
  });

  it('GPUs sharing a NIC add their bytes and messages', () => {
    const [shared] = simulate(topo(4, 8, 2), s, { kind: 'uniform' }); // 4 GPUs per NIC
    close(shared.flat.dispatch, nicA * 4 * (G - g) + (4 * T * u * lam * (G - g)) / nic);
  });
});

describe('top-k routing model', () => {
  it('water-fills inclusion probabilities at 1', () => {
    // k = 2, f = [0.7, 0.1, 0.1, 0.1]: expert 0 capped at 1, the other pick spread 1/3 each.
    const pi = inclusionTargets([0.7, 0.1, 0.1, 0.1], 2);
    close(pi[0], 1);
    for (let e = 1; e < 4; e++) close(pi[e], 1 / 3);
  });

  it('fitted weights reproduce k·f_e and miss probabilities by brute-force enumeration', () => {
    const f = [5, 3, 2, 1, 1, 0.5], k = 2, tot = 12.5;
    const m = fitTopK(f, k);
    const pairs: Array<[number, number, number]> = [];
    for (let a = 0; a < 6; a++) for (let b = a + 1; b < 6; b++) pairs.push([a, b, m.w[a] * m.w[b]]);
    const Z = pairs.reduce((x, p) => x + p[2], 0);
    for (let e = 0; e < 6; e++) close(pairs.filter((p) => p[0] === e || p[1] === e).reduce((x, p) => x + p[2], 0) / Z, (k * f[e]) / tot, 1e-9);
    // E[Π_{e∈S}(1 − ρ_e)] with ρ_0 = 0.5, ρ_3 = 1
    const rho = [0.5, 0, 0, 1, 0, 0];
    const brute = pairs.reduce((x, [a, b, p]) => x + p * (1 - rho[a]) * (1 - rho[b]), 0) / Z;
    close(missProbability(m, [0, 3], [0.5, 1]), brute, 1e-12);
  });
});

describe('scale and sweeps', () => {
  it('runs 4096 GPUs (512 nodes) with Zipf loads', async () => {
    const big = await readTopology('configs/topology-h100-4096.yaml');
    const s = shape({ tokens_per_gpu: 4096, hidden: 7168, experts: 256, top_k: 8, expert_ffn: 2048, gated: true, layers: 3, overlap_chunks: 8 });
    const rs = simulate(big, s, { kind: 'zipf', s: 1.0, seed: 3 });
    expect(rs).toHaveLength(3);
    for (const r of rs) {
      expect(Number.isFinite(r.flat.total) && Number.isFinite(r.hierarchical.overlapped)).toBe(true);
      expect(r.hierarchical.interBytes).toBeLessThan(r.flat.interBytes); // node-level dedup saves NIC bytes
    }
  });

  it('an EPLB placement cuts the compute straggler under skew', () => {
    const t = topo(2, 8, 8);
    const s = shape({ experts: 64, top_k: 4, tokens_per_gpu: 1024, hidden: 1024, layers: 2, gated: true });
    const { shares } = layerModels({ kind: 'zipf', s: 1.0, seed: 5 }, 64, 4, 2);
    const plan = rebalanceExperts(shares, 96, 1, 2, 16).phy2log; // 6 slots per GPU
    const before = simulate(t, s, { kind: 'trace', weight: shares });
    const after = simulate(t, s, { kind: 'trace', weight: shares }, plan);
    for (let l = 0; l < 2; l++) {
      expect(after[l].balancedness).toBeGreaterThan(before[l].balancedness);
      expect(after[l].flat.compute).toBeLessThan(before[l].flat.compute);
      close(after[l].computeMean, before[l].computeMean, 1e-9); // the same work, spread better
    }
  });

  it('parses sweep lists and rejects mismatched ones', () => {
    expect(parseSweep(['experts=8,32', 'top_k=2'])).toEqual([{ experts: 8, topK: 2 }, { experts: 32, topK: 2 }]);
    expect(() => parseSweep(['experts=8,32,64', 'top_k=2,4'])).toThrow(/top_k has 2 values, expected 3/);
    expect(() => parseSweep(['experts=8', 'topk=2'])).toThrow(/expected experts=N/);
  });

  it('expert sweep: 8 experts stay on NVLink, overhead grows with the expert-parallel group', () => {
    const t = topo(16, 8, 8);
    const s = shape({ tokens_per_gpu: 8192, hidden: 4096, expert_ffn: 14336, gated: true, dispatch_bytes: 2, combine_bytes: 2 });
    const rows = runSweep(t, s, parseSweep(['experts=8,32,64,128', 'top_k=2,2,4,4']), { kind: 'uniform' });
    expect(rows.map((r) => r.nodes)).toEqual([1, 4, 8, 16]);
    // 8 experts on 8 GPUs of one node: dispatch = 7 messages + 8192·8192 B·(2/8)·7 / 450 GB/s; combine the same
    const d = 7 * 2e-6 + (8192 * 8192 * 0.25 * 7) / 450e9;
    close(rows[0].flat.comm, 2 * d);
    for (let i = 1; i < rows.length; i++) expect(rows[i].flat.overhead).toBeGreaterThan(rows[i - 1].flat.overhead);
    close(rows[0].flat.gain, rows[0].dense / (rows[0].compute + 2 * d));
  });

  it('recommends per cluster size', () => {
    const rec = recommend(topo(4, 8, 8), shape({ experts: 64, top_k: 4, tokens_per_gpu: 1024, hidden: 2048, layers: 2 }), { kind: 'zipf', s: 1.0, seed: 1 });
    expect(rec.map((r) => r.nodes)).toEqual([1, 2, 4]);
    for (const r of rec) {
      expect([0, 1, 2]).toContain(r.redundantPerGpu);
      expect(r.strategy).toBe(r.hierarchical < r.flat ? 'hierarchical' : 'flat');
    }
  });
});

describe('topology YAML and the simulate CLI', () => {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-sim-'));
  const cli = (args: string[]) => run('node', ['bin/switchyard.js', 'simulate', ...args], { cwd: process.cwd() });

  it('rejects unknown and missing fields by name', () => {
    const base = 'nodes: 2\ngpus_per_node: 2\nintra_node: {bandwidth_GB_per_s: 1, latency_us: 1}\ngpu: {tflops: 1}\n';
    expect(() => parseYaml(base + 'inter_node: {bandwith_Gbit_per_s: 1, latency_us: 1}\n', TopologySchema, 't.yaml'))
      .toThrow(/t\.yaml: .*unknown field inter_node\.bandwith_Gbit_per_s/);
    expect(() => parseYaml(base, TopologySchema, 't.yaml')).toThrow(/missing field inter_node/);
    expect(() => parseYaml(base.replace('nodes: 2', 'nodes: -1') + 'inter_node: {bandwidth_Gbit_per_s: 1, latency_us: 1}\n', TopologySchema, 't.yaml')).toThrow(/field nodes/);
    expect(() => toTopology(parseYaml(base + 'inter_node: {bandwidth_Gbit_per_s: 1, latency_us: 1, nics_per_node: 3}\n', TopologySchema, 't'))).toThrow(/nics_per_node 3 does not divide gpus_per_node 2/);
  });

  it('prints the 2×2 case and writes JSON; bad flags fail with one line', async () => {
    const model = join(dir, 'model.yaml');
    writeFileSync(model, 'tokens_per_gpu: 1000\nhidden: 1000\nexperts: 4\ntop_k: 2\nexpert_ffn: 2500\ngated: false\ndispatch_bytes: 1\ncombine_bytes: 2\noverlap_chunks: 2\n');
    const out = join(dir, 'sim.json');
    const { stdout } = await cli(['--topology', 'configs/topology-tiny.yaml', '--model', model, '--out', out]);
    expect(stdout).toMatch(/flat\s+0\.050\s+0\.200\s+0\.090\s+0\.340/);
    const res = JSON.parse(readFileSync(out, 'utf8'));
    close(res.layers[0].flat.total, 340e-6);
    writeFileSync(join(dir, 'bad.yaml'), 'nodes: 1\ngpus: 8\n');
    const errs = await Promise.all([
      cli(['--topology', join(dir, 'bad.yaml'), '--model', model]).then(() => '', (e: { stderr: string }) => e.stderr),
      cli(['--topology', 'configs/topology-tiny.yaml', '--model', model, '--load', 'zipf']).then(() => '', (e: { stderr: string }) => e.stderr),
      cli(['--topology', 'configs/topology-tiny.yaml', '--model', model, '--top-k', '9']).then(() => '', (e: { stderr: string }) => e.stderr),
    ]);
    expect(errs[0]).toMatch(/^switchyard: .*bad\.yaml: .*unknown field gpus/);
    expect(errs[1]).toMatch(/^switchyard: --load "zipf": expected uniform, zipf:S\[:SEED\] or trace FILE/);
    expect(errs[2]).toMatch(/^switchyard: top_k 9 exceeds experts 4/);
    for (const e of errs) expect(e.trim().split('\n')).toHaveLength(1);
  }, 60_000);
});
