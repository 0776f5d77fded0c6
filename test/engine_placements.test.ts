/**
 * Placements written for serving engines, checked by the rules each engine's own loader applies:
 * - SGLang (sgl-project/sglang python/sglang/srt/eplb/expert_location.py @ 01fec5c2e61f9568c41a6e1d4fd5ac46c88504f1):
 *   only physical_to_logical_map is passed to init_by_mapping; P % ep_size == 0 (_init_common); P = E + redundant ≥ E;
 *   ids index logical experts; every logical expert needs a replica (compute_logical_to_rank_dispatch_physical_map).
 * - vllm-ascend (vllm-project/vllm-ascend vllm_ascend/eplb/core/eplb_utils.py @ 182b75ea84ff13ece27b57391331ef8935410aea):
 *   one device_list entry per EP rank, equal device_expert lengths (stacked into one tensor), ids in [0, E), no id twice
 *   on a device (expert_map[ids] = arange), every logical expert present (generate_log2phy_map), moe_layer_count layers.
 * - TensorRT-LLM (NVIDIA/TensorRT-LLM tensorrt_llm/llmapi/llm_args.py @ fcd3f31682808ae56118ae43c1d7864a3a945e6f and
 *   cpp/tensorrt_llm/runtime/moeLoadBalancer/moeLoadBalancer.cpp @ 0d919a4f8ddc94539e9f1c850898e9b3b5d0ca07):
 *   num_slots % ep_size == 0, every MoE layer index a key, len == num_slots, 0 ≤ id < experts, every expert a replica.
 * And `plan --current`: the balancedness of a running placement, by hand.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { alignPlacement, currentBalancedness } from '../src/cli/plan.ts';
import { toSglang } from '../src/plan/placement_io.ts';
import {
  placementFromDocument, readPlacementFile, sglangViolations, toTrtllm, toVllmAscend, trtllmViolations, vllmAscendViolations,
} from '../src/plan/placement_engines.ts';
import { planPlacement } from '../src/plan/planner.ts';

const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'sy-place-'));

/** A skewed load, 3 layers × 8 experts, and plans for 4 GPUs with 12 slots and with 8 (no replicas). */
const weight = [[90, 10, 5, 5, 30, 20, 10, 30], [5, 5, 5, 5, 5, 5, 5, 165], [40, 30, 20, 10, 40, 30, 20, 10]];
const plan12 = planPlacement(weight, { numReplicas: 12, numGroups: 1, numNodes: 1, numGpus: 4, method: 'best', topK: 2 });
const plan8 = planPlacement(weight, { numReplicas: 8, numGroups: 1, numNodes: 1, numGpus: 4, method: 'eplb', topK: 2 });

describe('SGLang --init-expert-location', () => {
  it('our plans pass its loader rules, and each rule catches its violation', () => {
    const doc = toSglang(plan12.phy2log, [1, 2, 3], 8); // MoE layers 1..3 of 4 decoder layers
    expect(doc.physical_to_logical_map.length).toBe(4);
    expect(sglangViolations(doc, { numExperts: 8, epSize: 4, numLayers: 4 })).toEqual([]);
    const bad = (m: number[][], extra: Record<string, unknown> = {}): string[] => sglangViolations({ physical_to_logical_map: m, ...extra }, { numExperts: 8, epSize: 4 });
    expect(bad([[0, 1, 2, 3, 4, 5, 6, 6]]).join()).toMatch(/logical expert 7 has no physical slot/);
    expect(bad([[0, 1, 2, 3, 4, 5, 6, 8]]).join()).toMatch(/\[7\] = 8 is not a logical expert id in \[0, 8\)/);
    expect(bad([[0, 1, 2, 3, 4, 5, 6, 7, 0, 1]]).join()).toMatch(/10 physical experts do not split over ep_size 4/);
    expect(bad([[0, 1, 2, 3]]).join()).toMatch(/4 physical experts < 8 logical/);
    expect(bad([[0, 1, 2, 3, 4, 5, 6, 7]], { logical_count: [] }).join()).toMatch(/keys other than physical_to_logical_map/);
    expect(sglangViolations(doc, { numExperts: 8, epSize: 4, numLayers: 61 }).join()).toMatch(/4 rows, the model has 61 layers/);
  });
});

describe('vllm-ascend expert_map', () => {
  it('our plans pass its loader rules when no device holds an expert twice, and each rule catches its violation', () => {
    const doc = toVllmAscend(plan8.phy2log, 4);
    expect(vllmAscendViolations(doc, { numExperts: 8, epSize: 4 })).toEqual([]);
    expect((doc.layer_list as unknown[]).length).toBe(3);
    const one = (devs: number[][], extra: Record<string, unknown> = {}): string[] => vllmAscendViolations(
      { moe_layer_count: 1, layer_list: [{ layer_id: 0, device_count: devs.length, device_list: devs.map((d, i) => ({ device_id: i, device_expert: d })), ...extra }] },
      { numExperts: 8, epSize: 4 });
    expect(one([[0, 1], [2, 3], [4, 5], [6, 7]])).toEqual([]);
    expect(one([[0, 0, 1], [2, 3, 4], [4, 5, 6], [6, 7, 1]]).join()).toMatch(/holds expert 0 twice/);
    expect(one([[0, 1], [2, 3], [4, 5, 6], [7, 1]]).join()).toMatch(/holds 3 experts, others 2/);
    expect(one([[0, 1], [2, 3], [4, 5, 6, 7]]).join()).toMatch(/has 3 devices, ep_size is 4/);
    expect(one([[0, 1], [2, 3], [4, 5], [6, 6]]).join()).toMatch(/logical expert 7 has no physical slot/);
    expect(one([[0, 1], [2, 3], [4, 5], [6, 9]]).join()).toMatch(/= 9 is not a logical expert id/);
    expect(vllmAscendViolations({ moe_layer_count: 2, layer_list: (doc.layer_list as unknown[]).slice(0, 1) }, { numExperts: 8, epSize: 4 }).join()).toMatch(/moe_layer_count 2 but layer_list has 1/);
  });

  it('refuses to write a plan with two replicas of one expert on a device', () => {
    expect(() => toVllmAscend([[0, 0, 1, 2, 3, 4, 5, 6, 7, 1, 2, 3]], 4)).toThrow(/device 0 would hold expert 0 twice/);
  });
});

describe('TensorRT-LLM load balancer', () => {
  it('our YAML passes MoeLoadBalancerConfig and setInitialWeightAssignments rules, and each rule catches its violation', () => {
    const yaml = toTrtllm(plan12.phy2log, [1, 2, 3]);
    const doc = parseYaml(yaml) as Record<string, unknown>;
    expect(doc.num_slots).toBe(12);
    expect(Object.keys(doc.initial_global_assignments as object)).toEqual(['1', '2', '3']);
    expect(yaml).toMatch(/^ {2}1: \[/m); // integer keys, one line per layer
    expect(trtllmViolations(doc, { numExperts: 8, epSize: 4, moeLayerIds: [1, 2, 3] })).toEqual([]);
    expect(trtllmViolations(doc, { numExperts: 8, epSize: 5, moeLayerIds: [1, 2, 3] }).join()).toMatch(/num_slots 12 must be divisible by ep_size 5/);
    expect(trtllmViolations(doc, { numExperts: 8, epSize: 4, moeLayerIds: [1, 2, 3, 4] }).join()).toMatch(/layer_idx 4 not found/);
    const a = { num_slots: 8, initial_global_assignments: { 0: [0, 1, 2, 3, 4, 5, 6] } };
    expect(trtllmViolations(a, { numExperts: 8, epSize: 4 }).join()).toMatch(/assignment length 7 does not match num_slots 8/);
    const b = { num_slots: 8, initial_global_assignments: { 0: [0, 1, 2, 3, 4, 5, 6, 6] } };
    expect(trtllmViolations(b, { numExperts: 8, epSize: 4 }).join()).toMatch(/logical expert 7 has no physical slot/);
    const c = { num_slots: 8, initial_global_assignments: { 0: [0, 1, 2, 3, 4, 5, 6, -1] } };
    expect(trtllmViolations(c, { numExperts: 8, epSize: 4 }).join()).toMatch(/= -1 is not a logical expert id/);
  });
});

describe('placements in', () => {
  it('reads back every format it writes, with layer ids where the format names them', async () => {
    const d = tmp();
    const files: Record<string, string> = {
      'sg.json': JSON.stringify(toSglang(plan12.phy2log, [1, 2, 3], 8)),
      'asc.json': JSON.stringify(toVllmAscend(plan8.phy2log, 4)),
      'trt.yaml': toTrtllm(plan12.phy2log, [1, 2, 3]),
      'nested.yaml': `moe_config:\n  load_balancer:\n${toTrtllm(plan12.phy2log, [1, 2, 3]).split('\n').map((l) => (l ? `    ${l}` : l)).join('\n')}`,
    };
    for (const [n, t] of Object.entries(files)) fs.writeFileSync(path.join(d, n), t);
    const sg = await readPlacementFile(path.join(d, 'sg.json'));
    expect(sg.format).toBe('sglang');
    expect(sg.phy2log.slice(1)).toEqual(plan12.phy2log);
    expect(sg.layerIds).toEqual([0, 1, 2, 3]);
    const asc = await readPlacementFile(path.join(d, 'asc.json'));
    expect([asc.format, asc.numGpus, asc.layerIds]).toEqual(['vllm-ascend', 4, null]);
    expect(asc.phy2log).toEqual(plan8.phy2log);
    for (const n of ['trt.yaml', 'nested.yaml']) {
      const t = await readPlacementFile(path.join(d, n));
      expect([t.format, t.layerIds], n).toEqual(['trtllm', [1, 2, 3]]);
      expect(t.phy2log, n).toEqual(plan12.phy2log);
    }
    expect(() => placementFromDocument({ num_slots: 4, initial_global_assignments: { 0: [0, 1, 2] } }, 'x.yaml')).toThrow(/num_slots 4 but layer 0 has 3/);
    expect(() => placementFromDocument({ hello: 1 }, 'x.json')).toThrow(/not a placement/);
  });
});

describe('plan --current', () => {
  it('balancedness of the running placement, by hand', () => {
    // one layer, loads [40, 20, 10, 10]; slots [0, 1 | 2, 3] on 2 GPUs → GPU loads 60, 20 → mean 40 / max 60 = 2/3
    expect(currentBalancedness([[40, 20, 10, 10]], [[0, 1, 2, 3]], 2, [0], 'p')[0]).toBeCloseTo(2 / 3, 12);
    // replicate expert 0 over both GPUs: [0, 1, 2 | 0, 3, 2]: expert 2 split too → GPU loads 20+20+5 = 45, 20+10+5 = 35 → 40/45
    expect(currentBalancedness([[40, 20, 10, 10]], [[0, 1, 2, 0, 3, 2]], 2, [0], 'p')[0]).toBeCloseTo(40 / 45, 12);
    expect(() => currentBalancedness([[40, 20, 10, 10]], [[0, 1, 2, 2]], 2, [5], 'p.json')).toThrow(/p\.json: layer 5: logical expert 3 has no physical replica/);
    expect(() => currentBalancedness([[40, 20, 10, 10]], [[0, 1, 2, 3]], 3, [0], 'p')).toThrow(/4 slots do not split over --gpus 3/);
  });

  it('matches rows by layer id, else in order, else says why not', () => {
    const cur = { phy2log: [[0], [1], [2], [3]], layerIds: [0, 1, 2, 3], numGpus: null, format: 'sglang' as const };
    expect(alignPlacement(cur, [1, 3], 'f').rows).toEqual([[1], [3]]);
    expect(alignPlacement({ ...cur, layerIds: null }, [7, 8, 9, 10], 'f').note).toMatch(/in order/);
    expect(() => alignPlacement({ ...cur, layerIds: null }, [1, 2], 'f')).toThrow(/4 placement rows do not match the load's 2 layers/);
  });

  it('prints the running placement beside EPLB and ours (CLI)', () => {
    const d = tmp();
    fs.writeFileSync(path.join(d, 'load.json'), JSON.stringify(weight));
    // today: experts round-robin, no replicas (two per GPU, vllm-ascend file)
    const rr = [[0, 1], [2, 3], [4, 5], [6, 7]];
    fs.writeFileSync(path.join(d, 'cur.json'), JSON.stringify({
      moe_layer_count: 3,
      layer_list: weight.map((_, l) => ({ layer_id: l, device_count: 4, device_list: rr.map((e, g) => ({ device_id: g, device_expert: e })) })),
    }));
    const out = execFileSync('npx', ['tsx', 'src/cli/main.ts', 'plan', '--load', path.join(d, 'load.json'), '--current', path.join(d, 'cur.json'), '--method', 'best'], { encoding: 'utf8' });
    // layer 0: GPU loads [100, 10, 50, 40] → 50/100 = 0.500; layer 1: [10, 10, 10, 170] → 50/170 = 0.294; layer 2: [70, 30, 70, 30] → 0.714
    expect(out).toMatch(/current \(vllm-ascend: .*cur\.json\)\s+0\.503\s+0\.294/); // mean of 0.5, 0.294, 0.714
    expect(out).toMatch(/^0\s+0\.500\s/m);
    expect(out).toMatch(/^1\s+0\.294\s/m);
    expect(out).toMatch(/^2\s+0\.714\s/m);
    expect(out).toContain('8 slots on 4 GPUs');
  }, 60_000);
});
