/**
 * Placement files in the forms engines load, and reading any of them back (simulate --placement).
 *   json    Switchyard's plan: phy2log / log2phy / logcnt (EPLB's names) plus the report.
 *   sglang  {"physical_to_logical_map": [L][R]} — SGLang's --init-expert-location FILE.json. SGLang passes the keys
 *           as keyword arguments to ExpertLocationMetadata.init_by_mapping, so the file holds that key only; rows are
 *           all decoder layers (dense layers get the trivial map) and R = experts + --ep-num-redundant-experts.
 *   vllm    one JSONL record {"record_type": "eplb_initial_mapping", "version": 1, "num_redundant_experts",
 *           "num_slots", "initial_global_assignments": {"<moe layer>": [R]}} — the offline-EPLB mapping of vLLM
 *           PR #41141 (eplb_config.initial_mapping_path); not in a vLLM release at the time of writing.
 *   vllm-ascend and trtllm: src/plan/placement_engines.ts (with each engine's loader rules).
 */
import { readPlacementFile } from './placement_engines.ts';

export type PlacementFormat = 'json' | 'sglang' | 'vllm' | 'vllm-ascend' | 'trtllm';

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

/** Reads a placement (Switchyard plan JSON, SGLang JSON, vLLM mapping JSONL, vllm-ascend expert_map JSON or TensorRT-LLM
 * load-balancer YAML) as phy2log [L][R]. */
export async function readPlacement(path: string): Promise<number[][]> {
  return (await readPlacementFile(path)).phy2log;
}
