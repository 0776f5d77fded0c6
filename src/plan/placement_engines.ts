/**
 * Expert placements in the files serving engines load, read and written, and checked by the rules each engine's own
 * loader applies (read from its source):
 *
 *   sglang       {"physical_to_logical_map": [L][P]} for --init-expert-location FILE.json.
 *                sgl-project/sglang python/sglang/srt/eplb/expert_location.py (commit 01fec5c2e61f9568c41a6e1d4fd5ac46c88504f1):
 *                compute_initial_expert_location_metadata passes the keys to init_by_mapping; _init_common asserts
 *                P % ep_size == 0 with P = logical experts + --ep-num-redundant-experts; _compute_logical_to_all_physical_map
 *                indexes by the logical id (ids in [0, E)); compute_logical_to_rank_dispatch_physical_map draws from each
 *                expert's replicas (an expert with none fails); rows are the model's layers.
 *   vllm-ascend  {"moe_layer_count": L, "layer_list": [{"layer_id", "device_count": D, "device_list": [{"device_id",
 *                "device_expert": [S ids]}]}]} for additional_config eplb_config expert_map_path (a .json file).
 *                vllm-project/vllm-ascend vllm_ascend/eplb/core/eplb_utils.py (commit 182b75ea84ff13ece27b57391331ef8935410aea):
 *                expert_file_to_tensor stacks device_expert lists into one tensor (equal lengths), init_eplb_config reads
 *                one row per EP rank (D = ep_size), n_redundant = D·S − E, expert_map[device_expert] = arange(S) (ids in
 *                [0, E), no id twice on a device), generate_log2phy_map keys every logical expert (each at least once);
 *                vllm_ascend/ascend_config.py requires the ".json" suffix.
 *   trtllm       YAML {num_slots, initial_global_assignments: {<layer>: [num_slots ids]}, layer_updates_per_iter} —
 *                TensorRT-LLM's MoeLoadBalancerConfig (moe_config.load_balancer, inline or as a file path).
 *                NVIDIA/TensorRT-LLM tensorrt_llm/llmapi/llm_args.py (commit fcd3f31682808ae56118ae43c1d7864a3a945e6f):
 *                setup() requires num_slots % ep_size == 0, get_layer_initial_global_assignments requires every MoE layer
 *                index as a key and len == num_slots; cpp/tensorrt_llm/runtime/moeLoadBalancer/moeLoadBalancer.cpp
 *                (commit 0d919a4f8ddc94539e9f1c850898e9b3b5d0ca07) setInitialWeightAssignments checks 0 ≤ id < experts and
 *                counts replicas per expert (an expert with none has no slot to route to).
 * Plus Switchyard's plan JSON and vLLM PR #41141's mapping record (src/plan/placement_io.ts).
 */
import { readRegularText } from '../io/regular_file.ts';
import { MAX_EXPERTS, MAX_JSON_BYTES, MAX_LAYERS, MAX_MATRIX_CELLS, MAX_SLOTS } from '../limits.ts';
import { Document, type YAMLMap, type YAMLSeq } from 'yaml';
import { parseYamlSafe } from '../io/yaml_safe.ts';

export type EnginePlacementFormat = 'switchyard' | 'sglang' | 'vllm' | 'vllm-ascend' | 'trtllm';

/** A placement as read: phy2log [L][P] (GPU g holds slots g·P/G … (g+1)·P/G − 1), with what the file says. */
export interface PlacementData {
  phy2log: number[][];
  /** Layer id of each row when the file names layers (SGLang row index, TensorRT-LLM key); null: MoE layers in order. */
  layerIds: number[] | null;
  /** GPUs (EP ranks) when the file says (vllm-ascend device_count, Switchyard numGpus). */
  numGpus: number | null;
  format: EnginePlacementFormat;
}

/** What an engine's loader knows at start-up: its logical experts and EP size (and layers, when checked). */
export interface EngineShape {
  numExperts: number;
  epSize: number;
  /** MoE layer ids the engine will look up (TensorRT-LLM) or its decoder layer count (SGLang rows). */
  moeLayerIds?: number[];
  numLayers?: number;
}

/** Per-row rules every engine shares: ids are integers in [0, E); every logical expert has a replica. */
function rowRules(row: unknown[], E: number, where: string, out: string[]): void {
  const seen = new Array<boolean>(E).fill(false);
  row.forEach((e, s) => {
    if (!Number.isInteger(e) || (e as number) < 0 || (e as number) >= E) out.push(`${where}[${s}] = ${JSON.stringify(e)} is not a logical expert id in [0, ${E})`);
    else seen[e as number] = true;
  });
  const missing = seen.flatMap((v, e) => (v ? [] : [e]));
  if (missing.length) out.push(`${where}: logical expert${missing.length > 1 ? 's' : ''} ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ', …' : ''} ha${missing.length > 1 ? 've' : 's'} no physical slot`);
}

/** SGLang --init-expert-location rules; returns the violations (empty = SGLang accepts it). */
export function sglangViolations(doc: unknown, shape: EngineShape): string[] {
  const out: string[] = [];
  const o = doc as Record<string, unknown> | null;
  if (!o || typeof o !== 'object' || Array.isArray(o)) return ['not a JSON object'];
  const extra = Object.keys(o).filter((k) => k !== 'physical_to_logical_map');
  if (extra.length) out.push(`keys other than physical_to_logical_map (${extra.join(', ')}) are passed to init_by_mapping as arguments it does not take`);
  const m = o.physical_to_logical_map;
  if (!Array.isArray(m) || m.length === 0 || !Array.isArray(m[0])) return [...out, 'physical_to_logical_map must be a non-empty [layers][physical experts] list'];
  const P = (m[0] as unknown[]).length;
  if (shape.numLayers !== undefined && m.length !== shape.numLayers) out.push(`${m.length} rows, the model has ${shape.numLayers} layers`);
  if (P % shape.epSize !== 0) out.push(`${P} physical experts do not split over ep_size ${shape.epSize}`);
  if (P < shape.numExperts) out.push(`${P} physical experts < ${shape.numExperts} logical (ep_num_redundant_experts would be negative)`);
  m.forEach((row, l) => {
    if (!Array.isArray(row) || row.length !== P) { out.push(`row ${l} has ${Array.isArray(row) ? row.length : 'no'} entries, expected ${P}`); return; }
    rowRules(row, shape.numExperts, `physical_to_logical_map[${l}]`, out);
  });
  return out;
}

/** vllm-ascend expert_map rules; returns the violations. */
export function vllmAscendViolations(doc: unknown, shape: EngineShape): string[] {
  const out: string[] = [];
  const o = doc as Record<string, unknown> | null;
  if (!o || typeof o !== 'object' || Array.isArray(o)) return ['not a JSON object'];
  const layers = o.layer_list;
  if (!Number.isInteger(o.moe_layer_count)) out.push(`moe_layer_count = ${JSON.stringify(o.moe_layer_count)} is not an integer`);
  if (!Array.isArray(layers) || layers.length === 0) return [...out, 'layer_list must be a non-empty list'];
  if (o.moe_layer_count !== layers.length) out.push(`moe_layer_count ${JSON.stringify(o.moe_layer_count)} but layer_list has ${layers.length} layers`);
  let S = -1;
  layers.forEach((layer, l) => {
    const L = layer as Record<string, unknown>;
    const devs = L?.device_list;
    if (!Array.isArray(devs)) { out.push(`layer_list[${l}].device_list is not a list`); return; }
    if (devs.length !== shape.epSize) out.push(`layer_list[${l}] has ${devs.length} devices, ep_size is ${shape.epSize}`);
    if (L.device_count !== undefined && L.device_count !== devs.length) out.push(`layer_list[${l}].device_count ${JSON.stringify(L.device_count)} but ${devs.length} devices listed`);
    const flat: unknown[] = [];
    devs.forEach((d, g) => {
      const ids = (d as Record<string, unknown>)?.device_expert;
      if (!Array.isArray(ids)) { out.push(`layer_list[${l}].device_list[${g}].device_expert is not a list`); return; }
      if (S < 0) S = ids.length;
      if (ids.length !== S) out.push(`layer_list[${l}].device_list[${g}] holds ${ids.length} experts, others ${S} (the loader stacks them into one tensor)`);
      const dup = ids.find((e, i) => ids.indexOf(e) !== i);
      if (dup !== undefined) out.push(`layer_list[${l}].device_list[${g}] holds expert ${JSON.stringify(dup)} twice (expert_map keeps one slot per expert per device)`);
      flat.push(...ids);
    });
    rowRules(flat, shape.numExperts, `layer_list[${l}]`, out);
  });
  if (S >= 0 && S * shape.epSize < shape.numExperts) out.push(`${S * shape.epSize} slots < ${shape.numExperts} experts (negative redundancy)`);
  return out;
}

/** TensorRT-LLM MoeLoadBalancerConfig rules; returns the violations. */
export function trtllmViolations(doc: unknown, shape: EngineShape): string[] {
  const out: string[] = [];
  const o = doc as Record<string, unknown> | null;
  if (!o || typeof o !== 'object' || Array.isArray(o)) return ['not a mapping'];
  const n = o.num_slots;
  if (!Number.isInteger(n) || (n as number) < 1) return [`num_slots = ${JSON.stringify(n)} must be a positive integer`];
  if ((n as number) % shape.epSize !== 0) out.push(`num_slots ${n} must be divisible by ep_size ${shape.epSize}`);
  if ((n as number) < shape.numExperts) out.push(`num_slots ${n} < ${shape.numExperts} experts`);
  const a = o.initial_global_assignments as Record<string, unknown> | undefined;
  if (!a || typeof a !== 'object' || Array.isArray(a)) return [...out, 'initial_global_assignments must map layer index → slot list'];
  for (const id of shape.moeLayerIds ?? []) if (!(String(id) in a)) out.push(`layer_idx ${id} not found in initial_global_assignments`);
  for (const [k, row] of Object.entries(a)) {
    if (!/^\d+$/.test(k)) { out.push(`key ${JSON.stringify(k)} is not a layer index`); continue; }
    if (!Array.isArray(row)) { out.push(`layer ${k}: assignments are not a list`); continue; }
    if (row.length !== n) out.push(`layer ${k}: assignment length ${row.length} does not match num_slots ${n}`);
    rowRules(row, shape.numExperts, `initial_global_assignments[${k}]`, out);
  }
  return out;
}

/** vllm-ascend expert_map document for phy2log [L][P] on numGpus devices (P/numGpus slots each). */
export function toVllmAscend(phy2log: number[][], numGpus: number): Record<string, unknown> {
  const P = phy2log[0].length;
  if (P % numGpus !== 0) throw new Error(`${P} slots do not split over ${numGpus} devices`);
  const S = P / numGpus;
  for (const [l, row] of phy2log.entries()) {
    for (let g = 0; g < numGpus; g++) {
      const ids = row.slice(g * S, (g + 1) * S);
      const dup = ids.find((e, i) => ids.indexOf(e) !== i);
      if (dup !== undefined) throw new Error(`layer ${l}: device ${g} would hold expert ${dup} twice, which vllm-ascend's expert_map cannot express; plan without two replicas on one GPU`);
    }
  }
  return {
    moe_layer_count: phy2log.length,
    layer_list: phy2log.map((row, l) => ({
      layer_id: l, device_count: numGpus,
      device_list: Array.from({ length: numGpus }, (_, g) => ({ device_id: g, device_expert: row.slice(g * S, (g + 1) * S) })),
    })),
  };
}

/** TensorRT-LLM load-balancer YAML (num_slots, initial_global_assignments by layer id, static: no updates). */
export function toTrtllm(phy2log: number[][], layerIds: number[]): string {
  const doc = {
    num_slots: phy2log[0].length,
    initial_global_assignments: new Map(layerIds.map((id, l) => [id, phy2log[l]])), // integer keys, as Dict[int, List[int]]
    layer_updates_per_iter: 0,
  };
  const yamlDoc = new Document(doc);
  const a = yamlDoc.get('initial_global_assignments') as YAMLMap<unknown, YAMLSeq>;
  for (const pair of a.items) pair.value!.flow = true; // one line per layer
  return yamlDoc.toString({ lineWidth: 0 });
}

/** Throws listing the violations, naming file and engine. */
function mustBeEmpty(v: string[], path: string, engine: string): void {
  if (v.length) throw new Error(`${path}: ${engine} would refuse this placement: ${v.slice(0, 6).join('; ')}${v.length > 6 ? `; … (${v.length} problems)` : ''}`);
}

/** Shape checks that need no engine facts: a rectangular [L][P] map of non-negative integer ids. */
function checkMap(m: unknown, where: string): number[][] {
  if (!Array.isArray(m) || m.length === 0 || !Array.isArray(m[0])) throw new Error(`${where} must be a non-empty [layers][slots] array`);
  const R = (m[0] as unknown[]).length;
  if (m.length > MAX_LAYERS || R > MAX_SLOTS || m.length * R > MAX_MATRIX_CELLS) {
    throw new Error(`${where} is ${m.length} layers × ${R} slots; allowed at most ${MAX_LAYERS} layers, ${MAX_SLOTS} slots and ${MAX_MATRIX_CELLS} cells`);
  }
  return m.map((row, l) => {
    if (!Array.isArray(row) || row.length !== R) throw new Error(`${where}[${l}] has ${Array.isArray(row) ? row.length : 'no'} slots, expected ${R}`);
    return row.map((e, s) => {
      if (!Number.isInteger(e) || e < 0 || e >= MAX_EXPERTS) throw new Error(`${where}[${l}][${s}] = ${JSON.stringify(e)} is not an expert id (allowed 0..${MAX_EXPERTS - 1})`);
      return e as number;
    });
  });
}

/** Parses a placement document of any supported engine (already parsed JSON or YAML). */
export function placementFromDocument(doc: unknown, path: string): PlacementData {
  const o = (doc ?? {}) as Record<string, unknown>;
  if (typeof o !== 'object' || Array.isArray(o)) throw new Error(`${path}: expected a placement object, got ${JSON.stringify(doc)?.slice(0, 40)}`);
  if ('phy2log' in o) {
    return { phy2log: checkMap(o.phy2log, `${path} phy2log`), layerIds: Array.isArray(o.layers) ? (o.layers as number[]) : null, numGpus: Number.isInteger(o.numGpus) ? (o.numGpus as number) : null, format: 'switchyard' };
  }
  if ('physical_to_logical_map' in o) {
    const m = checkMap(o.physical_to_logical_map, `${path} physical_to_logical_map`);
    return { phy2log: m, layerIds: m.map((_, l) => l), numGpus: null, format: 'sglang' };
  }
  if (o.record_type === 'eplb_initial_mapping' || 'initial_global_assignments' in o || 'moe_config' in o) {
    const lb = 'moe_config' in o ? ((o.moe_config as Record<string, unknown>)?.load_balancer as Record<string, unknown>) : o;
    if (!lb || typeof lb !== 'object') throw new Error(`${path}: moe_config without a load_balancer mapping`);
    const a = lb.initial_global_assignments as Record<string, unknown> | undefined;
    if (!a || typeof a !== 'object' || Array.isArray(a)) throw new Error(`${path}: initial_global_assignments must map layer index → slot list`);
    const keys = Object.keys(a).map(Number).sort((x, y) => x - y);
    if (keys.some((k) => !Number.isInteger(k) || k < 0)) throw new Error(`${path}: initial_global_assignments keys must be layer indices, got ${Object.keys(a).slice(0, 4).join(', ')}`);
    const m = checkMap(keys.map((k) => a[String(k)]), `${path} initial_global_assignments`);
    if (o.record_type === 'eplb_initial_mapping') {
      keys.forEach((k, i) => { if (k !== i) throw new Error(`${path}: initial_global_assignments lacks layer ${i}`); });
      return { phy2log: m, layerIds: null, numGpus: null, format: 'vllm' };
    }
    if (Number.isInteger(lb.num_slots) && lb.num_slots !== m[0].length) throw new Error(`${path}: num_slots ${String(lb.num_slots)} but layer ${keys[0]} has ${m[0].length} assignments`);
    return { phy2log: m, layerIds: keys, numGpus: null, format: 'trtllm' };
  }
  if ('layer_list' in o) {
    const layers = o.layer_list;
    if (!Array.isArray(layers) || layers.length === 0) throw new Error(`${path}: layer_list must be a non-empty list`);
    let D = -1;
    const rows = layers.map((layer, l) => {
      const devs = (layer as Record<string, unknown>)?.device_list;
      if (!Array.isArray(devs) || devs.length === 0) throw new Error(`${path}: layer_list[${l}].device_list must be a non-empty list`);
      if (D < 0) D = devs.length;
      if (devs.length !== D) throw new Error(`${path}: layer_list[${l}] has ${devs.length} devices, layer 0 has ${D}`);
      return devs.flatMap((d, g) => {
        const ids = (d as Record<string, unknown>)?.device_expert;
        if (!Array.isArray(ids)) throw new Error(`${path}: layer_list[${l}].device_list[${g}].device_expert is not a list`);
        return ids as number[];
      });
    });
    return { phy2log: checkMap(rows, `${path} layer_list`), layerIds: null, numGpus: D, format: 'vllm-ascend' };
  }
  throw new Error(`${path}: not a placement (expected phy2log, physical_to_logical_map, initial_global_assignments, moe_config.load_balancer or layer_list)`);
}

/** Reads a placement file: Switchyard plan JSON, SGLang JSON, vLLM mapping JSONL, vllm-ascend expert_map JSON, TensorRT-LLM YAML. */
export async function readPlacementFile(path: string): Promise<PlacementData> {
  const text = readRegularText(path, MAX_JSON_BYTES, 'placement file');
  if (text.trim() === '') throw new Error(`${path} is empty`);
  const trimmed = text.trim();
  let doc: unknown;
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    const first = trimmed.split('\n')[0];
    try {
      doc = JSON.parse(first.startsWith('{"record_type"') ? first : text);
    } catch (e) {
      throw new Error(`${path}: invalid JSON (truncated?): ${(e as Error).message}`);
    }
  } else {
    try {
      doc = parseYamlSafe(text, path);
    } catch (e) {
      throw new Error(`${path}: neither JSON nor valid YAML: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  return placementFromDocument(doc, path);
}

/** Checks a placement document against one engine's loader rules; throws naming every violation. */
export function checkForEngine(format: 'sglang' | 'vllm-ascend' | 'trtllm', doc: unknown, shape: EngineShape, path: string): void {
  const v = format === 'sglang' ? sglangViolations(doc, shape) : format === 'vllm-ascend' ? vllmAscendViolations(doc, shape) : trtllmViolations(doc, shape);
  mustBeEmpty(v, path, format);
}
