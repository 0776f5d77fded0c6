/**
 * Topology-aware routing (seed 004's TopologyAwareRouter): two flows on 2 nodes × 2 paths priced by hand (static
 * ECMP stacks them, adaptive splits them), equal loads, an ECMP collision on a spine, the single-path topology
 * against the existing alpha–beta model, adaptive strictly faster than static under a skewed all-to-all (fails if
 * re-routing is switched off), invariants on random flows, fabric validation and the simulate CLI.
 * Pure TypeScript (no tfjs), so no describeBackends.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { toModelShape, type ModelShapeConfig } from '../src/sim/model_shape.ts';
import { layerModels, simulate, type StrategyResult } from '../src/sim/simulate.ts';
import { parseYaml, TopologySchema, toTopology, type Topology } from '../src/sim/topology.ts';
import {
  adaptiveRoute, hasSeveralPaths, linkLayout, loadsTime, pathCount, reroutedShare, routeLoads, staticRoute, type Flows,
} from '../src/sim/topology_routing.ts';
import { layerTraffic, trivialPlacement } from '../src/sim/traffic.ts';

const run = promisify(execFile);
const close = (a: number, b: number, rel = 1e-12): void => expect(Math.abs(a - b)).toBeLessThanOrEqual(rel * Math.abs(b));

/** NVLink 100 GB/s, 1 µs; NIC 200 Gb/s = 25 GB/s, 5 µs; optional fabric YAML. */
function topo(nodes: number, gpn: number, nics: number, fabric = ''): Topology {
  return toTopology(parseYaml(
    `nodes: ${nodes}\ngpus_per_node: ${gpn}\nintra_node: {bandwidth_GB_per_s: 100, latency_us: 1, efficiency: 1}\n` +
    `inter_node: {bandwidth_Gbit_per_s: 200, latency_us: 5, efficiency: 1, nics_per_node: ${nics}}\nphase_overhead_us: 0\ngpu: {tflops: 100, mfu: 1}\n${fabric}`,
    TopologySchema, 'test'));
}

const flows = (pairs: Array<[number, number, number]>): Flows => ({
  src: Int32Array.from(pairs, (p) => p[0]), dst: Int32Array.from(pairs, (p) => p[1]), bytes: Float64Array.from(pairs, (p) => p[2]),
});

/** Phase time of flows routed statically or adaptively (no NVLink base traffic). */
function times(t: Topology, fl: Flows): { stat: number; adapt: number; moved: number } {
  const L = linkLayout(t), st = staticRoute(t, fl), ad = adaptiveRoute(t, fl);
  return { stat: loadsTime(L, routeLoads(t, fl, st)), adapt: loadsTime(L, routeLoads(t, fl, ad)), moved: reroutedShare(fl, st, ad) };
}

const shape = (o: Partial<ModelShapeConfig>) => toModelShape({
  tokens_per_gpu: 1000, hidden: 1000, experts: 8, top_k: 2, expert_ffn: 2500, layers: 1, gated: false,
  dispatch_bytes: 1, combine_bytes: 2, overlap_chunks: 4, ...o,
});

const FIELDS: Array<keyof StrategyResult> = ['dispatch', 'compute', 'combine', 'total', 'overlapped', 'chunks', 'interBytes', 'intraBytes'];
const sameStrategy = (a: StrategyResult, b: StrategyResult): void => { for (const k of FIELDS) close(a[k], b[k]); };

describe('2 nodes × 2 GPUs, 2 NICs per node, by hand', () => {
  // b = 1 MB: one flow on a NIC is busy α + b/B = 5 µs + 40 µs = 45 µs; over NVLink 1 µs + 10 µs = 11 µs.
  const t = topo(2, 2, 2), b = 1e6;

  it('static stacks two big flows of one GPU on its NIC (2·b/B); adaptive splits them over both NICs (b/B)', () => {
    expect(pathCount(t, 0, 1)).toBe(4); // source rail × destination rail
    const r = times(t, flows([[0, 2, b], [0, 3, b]]));
    close(r.stat, 2 * 5e-6 + (2 * b) / 25e9); // 90 µs on GPU 0's NIC
    close(r.adapt, 5e-6 + b / 25e9); // 45 µs: one flow reaches NIC 1 through GPU 1 over NVLink (11 µs)
    close(r.moved, 0.5);
    // The moved flow leaves through NIC 1 of node 0 (via GPU 1) and still lands on GPU 2's own NIC.
    const ad = adaptiveRoute(t, flows([[0, 2, b], [0, 3, b]]));
    expect([ad.srcNic[0], ad.dstNic[0], ad.srcNic[1], ad.dstNic[1]]).toEqual([1, 0, 0, 1]);
  });

  it('equal loads on separate NICs: static = adaptive, nothing re-routed', () => {
    const r = times(t, flows([[0, 2, b], [1, 3, b]]));
    close(r.stat, 5e-6 + b / 25e9);
    close(r.adapt, r.stat);
    expect(r.moved).toBe(0);
  });

  it('a spine collision: ECMP puts two flows of one GPU pair on one uplink, adaptive uses both', () => {
    // 2 leaves of 1 node, 2 uplinks each of 1·1·25 GB/s / (2·2) = 6.25 GB/s; one NIC per node, so no rail choice.
    const f = topo(2, 1, 1, 'fabric: {nodes_per_leaf: 1, spine_links: 2, oversubscription: 2}\n');
    expect(f.fabric!.spineBw).toBe(6.25e9);
    expect(pathCount(f, 0, 1)).toBe(2);
    const r = times(f, flows([[0, 1, b], [0, 1, b]]));
    close(r.stat, (2 * b) / 6.25e9); // 320 µs on the hashed uplink (the NIC carries 2·45 µs = 90 µs)
    close(r.adapt, b / 6.25e9); // 160 µs
  });
});

describe('simulate with paths', () => {
  const s = shape({});
  const zipf = { kind: 'zipf', s: 1.2, seed: 4 } as const;

  it('one path between nodes reproduces the alpha–beta model exactly, static and adaptive', () => {
    const t = topo(2, 4, 1);
    expect(hasSeveralPaths(t)).toBe(false);
    const [r] = simulate(t, s, zipf, undefined, { paths: ['static', 'adaptive'] });
    for (const mode of ['static', 'adaptive'] as const) {
      sameStrategy(r.paths![mode]!.flat, r.flat);
      sameStrategy(r.paths![mode]!.hierarchical, r.hierarchical);
      expect(r.paths![mode]!.rerouted).toEqual({ flat: 0, hierarchical: 0 });
    }
  });

  it('static paths on rails without a fabric are the alpha–beta model (each GPU on its own NIC)', () => {
    const [r] = simulate(topo(2, 4, 4), s, zipf, undefined, { paths: ['static'] });
    sameStrategy(r.paths!.static!.flat, r.flat);
    sameStrategy(r.paths!.static!.hierarchical, r.hierarchical);
  });

  it('skewed load: adaptive flat all-to-all strictly faster than static, above the node-receive bound', () => {
    const t = topo(2, 4, 4);
    const [r] = simulate(t, s, zipf, undefined, { paths: ['static', 'adaptive'] });
    const st = r.paths!.static!.flat, ad = r.paths!.adaptive!.flat;
    expect(ad.dispatch).toBeLessThan(0.8 * st.dispatch);
    expect(ad.total).toBeLessThan(st.total);
    expect(r.paths!.adaptive!.rerouted.flat).toBeGreaterThan(0);
    // Lower bound: node m's inter-node receive bytes Σ_{j∈m} (G − g)·T·u·λ_j spread over its 4 NICs at 25 GB/s.
    const { models } = layerModels(zipf, 8, 2, 1);
    const lam = layerTraffic(trivialPlacement(8, 8), models[0], 8, 2).lambda;
    const bound = Math.max(...[0, 1].map((m) => (4 * 1000 * 1000 * lam.slice(4 * m, 4 * m + 4).reduce((a, x) => a + x, 0)) / (4 * 25e9)));
    expect(ad.dispatch).toBeGreaterThanOrEqual(bound);
    // Static sends the hot GPU's whole receive through its own NIC: (G − g)·T·u·λ_max / B + (G − g)·α.
    close(st.dispatch, Math.max(...lam) * 4e6 / 25e9 + 4 * 5e-6);
  });

  it('uniform load on a symmetric cluster: adaptive keeps every static route', () => {
    const [r] = simulate(topo(2, 4, 4), s, { kind: 'uniform' }, undefined, { paths: ['static', 'adaptive'] });
    sameStrategy(r.paths!.adaptive!.flat, r.paths!.static!.flat);
    expect(r.paths!.adaptive!.rerouted.flat).toBe(0);
  });
});

describe('invariants on random flows', () => {
  it('adaptive ≤ static, bytes conserved per node, deterministic', () => {
    let seed = 7;
    const rnd = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const t = topo(4, 4, 2, 'fabric: {nodes_per_leaf: 2, spine_links: 3}\n');
    const L = linkLayout(t);
    for (let trial = 0; trial < 20; trial++) {
      const pairs: Array<[number, number, number]> = [];
      for (let f = 0; f < 40; f++) {
        const i = Math.floor(rnd() * 16);
        const j = (Math.floor(i / 4) * 4 + 4 + Math.floor(rnd() * 12)) % 16; // another node
        pairs.push([i, j, Math.floor(rnd() ** 3 * 1e7)]);
      }
      const fl = flows(pairs), st = staticRoute(t, fl), ad = adaptiveRoute(t, fl);
      const xs = routeLoads(t, fl, st), xa = routeLoads(t, fl, ad);
      expect(loadsTime(L, xa)).toBeLessThanOrEqual(loadsTime(L, xs));
      for (let n = 0; n < 4; n++) {
        const sent = pairs.filter((p) => Math.floor(p[0] / 4) === n).reduce((a, p) => a + p[2], 0);
        const nic = (x: typeof xa): number => x.bytes[L.nicSend + 2 * n] + x.bytes[L.nicSend + 2 * n + 1];
        expect(nic(xa)).toBe(sent);
        expect(nic(xs)).toBe(sent);
      }
      expect(adaptiveRoute(t, fl)).toEqual(ad);
    }
  });
});

describe('fabric YAML and the simulate CLI', () => {
  const base = 'nodes: 4\ngpus_per_node: 2\nintra_node: {bandwidth_GB_per_s: 1, latency_us: 1, efficiency: 1}\n' +
    'inter_node: {bandwidth_Gbit_per_s: 8, latency_us: 1, efficiency: 1, nics_per_node: 2}\nphase_overhead_us: 0\ngpu: {tflops: 1}\n';
  const load = (fabric: string): Topology => toTopology(parseYaml(base + fabric, TopologySchema, 't.yaml'));

  it('validates the fabric by field name and derives the uplink bandwidth', () => {
    expect(() => load('fabric: {nodes_per_leaf: 2, spine_link: 2}\n')).toThrow(/unknown field fabric\.spine_link(,|;|$)/m);
    expect(() => load('fabric: {nodes_per_leaf: 3, spine_links: 2}\n')).toThrow(/fabric\.nodes_per_leaf 3 does not divide nodes 4/);
    expect(() => load('fabric: {nodes_per_leaf: 2, spine_links: 2, oversubscription: 0.5}\n')).toThrow(/field fabric\.oversubscription/);
    expect(() => load('fabric: {spine_links: 2}\n')).toThrow(/missing field fabric\.nodes_per_leaf/);
    // 2 nodes · 2 NICs · 1 GB/s / (4 uplinks · 1.5) = 0.6667 GB/s per uplink
    close(load('fabric: {nodes_per_leaf: 2, spine_links: 4, oversubscription: 1.5}\n').fabric!.spineBw, (2 * 2 * 1e9) / 6);
    expect(load('').fabric).toBeUndefined();
  });

  it('--paths both on a hot expert: static and adaptive rows by hand, in JSON too; a bad mode is one error line', async () => {
    // configs/topology-tiny.yaml (2 nodes × 2 GPUs, a 25 GB/s 5 µs NIC per GPU), 4 experts top-2, load [8, 1, 1, 1]:
    // π = [1, 1/3, 1/3, 1/3], one expert per GPU, so λ = π and each flow i → j carries T·u·λ_j = 1e6·λ_j bytes.
    // static: GPU 0's NIC receives 2 flows of 1e6 B: 2·5 µs + 80 µs = 90 µs (combine, 2 B: 10 + 160 = 170 µs).
    // adaptive: node 0's 4 incoming flows (1, 1, 1/3, 1/3 MB) split 2 + 2 over its NICs: 10 µs + 53.333 µs each,
    // as much as each node-1 GPU sends (1 + 1/3 MB): 63.333 µs (combine 116.667 µs); 4/3 of the 4 MB re-routed.
    const dir = mkdtempSync(join(tmpdir(), 'switchyard-paths-'));
    const model = join(dir, 'model.yaml'), trace = join(dir, 'hot.json'), out = join(dir, 'sim.json');
    writeFileSync(model, 'tokens_per_gpu: 1000\nhidden: 1000\nexperts: 4\ntop_k: 2\nexpert_ffn: 2500\ngated: false\ndispatch_bytes: 1\ncombine_bytes: 2\noverlap_chunks: 1\n');
    writeFileSync(trace, '[[8, 1, 1, 1]]\n');
    const cli = (args: string[]) => run('node', ['bin/switchyard.js', 'simulate', '--topology', 'configs/topology-tiny.yaml', '--model', model, ...args]);
    const [ok, bad] = await Promise.all([
      cli(['--load', 'trace', trace, '--paths', 'both', '--out', out]),
      cli(['--paths', 'ecmp']).then(() => '', (e: { stderr: string }) => e.stderr),
    ]);
    expect(ok.stdout).toMatch(/^flat static\s+0\.090\s+0\.400\s+0\.170\s+0\.660\s/m);
    expect(ok.stdout).toMatch(/^flat adaptive\s+0\.063\s+0\.400\s+0\.117\s+0\.580\s.*\s33\.3%$/m);
    expect(ok.stdout).toMatch(/^hierarchical adaptive\s+\d/m);
    const p = JSON.parse(readFileSync(out, 'utf8')).layers[0].paths;
    close(p.static.flat.dispatch, 90e-6);
    close(p.adaptive.flat.dispatch, 10e-6 + (4 / 3) * 1e6 / 25e9);
    close(p.adaptive.flat.combine, 10e-6 + (4 / 3) * 2e6 / 25e9);
    close(p.adaptive.rerouted.flat, 1 / 3);
    expect(bad).toMatch(/^switchyard: --paths "ecmp": expected static, adaptive or both/);
    expect(bad.trim().split('\n')).toHaveLength(1);
  }, 60_000);
});
