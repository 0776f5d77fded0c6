/**
 * Placement files in the forms engines load, and reading any of them back (simulate --placement).
 *   json    Switchyard's plan: phy2log / log2phy / logcnt (EPLB's names) plus the report.
 *   sglang  {"physical_to_logical_map": [L][R]} — SGLang's --init-expert-location FILE.json. SGLang passes the keys
 *           as keyword arguments to ExpertLocationMetadata.init_by_mapping, so the file holds that key only; rows are
 *           all decoder layers (dense layers get the trivial map) and R = experts + --ep-num-redundant-experts.
 *   vllm    one JSONL record {"record_type": "eplb_initial_mapping", "version": 1, "num_redundant_experts",
 *           "num_slots", "initial_global_assignments": {"<moe layer>": [R]}} — the offline-EPLB mapping of vLLM
 *           PR #41141 (eplb_config.initial_mapping_path); not in a vLLM release at the time of writing.
 */
import { readRegularText } from '../io/regular_file.ts';
import { MAX_EXPERTS, MAX_JSON_BYTES, MAX_LAYERS, MAX_MATRIX_CELLS, MAX_SLOTS } from '../limits.ts';

export type PlacementFormat = 'json' | 'sglang' | 'vllm';

/** SGLang's file: one row per decoder layer id 0..max(layerIds); layers without a plan get slot i → i mod E. */
export function toSglang(phy2log: number[][], layerIds: number[], numExperts: number): { physical_to_logical_map: number[][] } {
  const rows = Math.max(...layerIds) + 1;
  const R = phy2log[0].length;
  const map = Array.from({ length: rows }, () => Array.from({ length: R }, (_, i) => i % numExperts));
  layerIds.forEach((id, l) => { map[id] = phy2log[l]; });
  return { physical_to_logical_map: map };
}

/** vLLM PR #41141's initial-mapping record (MoE layer index 0..L−1 as the key). */
export function toVllm(phy2log: number[][], numExperts: number): Record<string, unknown> {
  const R = phy2log[0].length;
  return {
    record_type: 'eplb_initial_mapping',
    version: 1,
    num_redundant_experts: R - numExperts,
    num_slots: R,
    initial_global_assignments: Object.fromEntries(phy2log.map((row, l) => [String(l), row])),
  };
}

/** Checks a [L][R] integer map. */
function checkMap(m: unknown, where: string): number[][] {
  if (!Array.isArray(m) || m.length === 0 || !Array.isArray(m[0])) throw new Error(`${where} must be a non-empty [layers][slots] array`);
  const R = m[0].length;
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

/** Reads a placement (Switchyard plan JSON, SGLang JSON, or vLLM mapping JSONL) as phy2log [L][R]. */
export async function readPlacement(path: string): Promise<number[][]> {
  const text = readRegularText(path, MAX_JSON_BYTES, 'placement file');
  if (text.trim() === '') throw new Error(`${path} is empty`);
  const first = text.trim().split('\n')[0];
  let doc: unknown;
  try {
    doc = JSON.parse(first.trim().startsWith('{"record_type"') ? first : text);
  } catch (e) {
    throw new Error(`${path}: invalid JSON (truncated?): ${(e as Error).message}`);
  }
  const o = (doc ?? {}) as Record<string, unknown>;
  if ('phy2log' in o) return checkMap(o.phy2log, `${path} phy2log`);
  if ('physical_to_logical_map' in o) return checkMap(o.physical_to_logical_map, `${path} physical_to_logical_map`);
  if (o.record_type === 'eplb_initial_mapping') {
    const a = o.initial_global_assignments as Record<string, unknown> | undefined;
    if (!a || typeof a !== 'object') throw new Error(`${path}: eplb_initial_mapping without initial_global_assignments`);
    const keys = Object.keys(a).map(Number).sort((x, y) => x - y);
    if (keys.length > MAX_LAYERS) throw new Error(`${path}: initial_global_assignments has ${keys.length} layers, above the bound ${MAX_LAYERS}`);
    keys.forEach((k, i) => { if (k !== i) throw new Error(`${path}: initial_global_assignments lacks layer ${i}`); });
    return checkMap(keys.map((k) => a[String(k)]), `${path} initial_global_assignments`);
  }
  throw new Error(`${path}: no phy2log, physical_to_logical_map or eplb_initial_mapping record`);
}
