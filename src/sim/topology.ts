/**
 * Cluster topology for the communication model: nodes of GPUs joined by NVLink inside a node and RDMA NICs
 * between nodes, plus each GPU's compute rate. Parsed from YAML with unknown fields rejected by name.
 */
import { MAX_GPUS, MAX_NODES } from '../limits.ts';
import { readRegularText } from '../io/regular_file.ts';
import { z } from 'zod';
import { parseYamlSafe } from '../io/yaml_safe.ts';
import { CALIBRATED } from './calibrated.ts';

/** The YAML schema; every field is required unless it says default. */
export const TopologySchema = z.strictObject({
  /** Free-form label printed with results. */
  name: z.string().default('cluster'),
  nodes: z.int().min(1).max(MAX_NODES),
  gpus_per_node: z.int().min(1).max(1024),
  /** NVLink/NVSwitch, per GPU and direction: line rate, and (default: calibrated) achieved share and per-message latency. */
  intra_node: z.strictObject({
    bandwidth_GB_per_s: z.number().positive(),
    latency_us: z.number().min(0).default(CALIBRATED.nvlinkLatencyUs),
    efficiency: z.number().gt(0).max(1).default(CALIBRATED.nvlinkEfficiency),
  }),
  /** RDMA NIC, per NIC and direction; GPUs of a node share nics_per_node NICs evenly. */
  inter_node: z.strictObject({
    bandwidth_Gbit_per_s: z.number().positive(),
    latency_us: z.number().min(0).default(CALIBRATED.nicLatencyUs),
    efficiency: z.number().gt(0).max(1).default(CALIBRATED.nicEfficiency),
    nics_per_node: z.int().min(1).max(1024).optional(),
  }),
  /** Fixed cost of each all-to-all phase, µs (default: calibrated). */
  phase_overhead_us: z.number().min(0).default(CALIBRATED.phaseOverheadUs),
  /**
   * Optional two-level (leaf–spine) fabric between the NICs: nodes_per_leaf nodes hang on one leaf switch, which
   * has spine_links uplinks (one per spine), each carrying nodes_per_leaf · nics_per_node · NIC bandwidth /
   * (spine_links · oversubscription) per direction. Absent: a non-blocking fabric (any NIC reaches any NIC).
   */
  fabric: z.strictObject({
    nodes_per_leaf: z.int().min(1).max(MAX_NODES),
    spine_links: z.int().min(1).max(1 << 20),
    oversubscription: z.number().min(1).default(1),
  }).optional(),
  gpu: z.strictObject({
    /** Dense peak of the expert GEMM dtype, TFLOP/s. */
    tflops: z.number().positive(),
    /** Fraction of peak the grouped expert GEMMs reach (default 1). */
    mfu: z.number().gt(0).max(1).default(1),
  }),
});

export type TopologyConfig = z.infer<typeof TopologySchema>;

/** A topology in SI units, as the cost model uses it. */
export interface Topology {
  name: string;
  nodes: number;
  gpusPerNode: number;
  gpus: number;
  /** NVLink achieved bytes/s (line rate · efficiency) and seconds per message. */
  nvlinkBw: number;
  nvlinkLat: number;
  /** NIC achieved bytes/s per NIC (line rate · efficiency) and seconds per message; NICs per node. */
  nicBw: number;
  nicLat: number;
  nicsPerNode: number;
  /** Achieved FLOP/s per GPU (tflops · 1e12 · mfu). */
  flops: number;
  /** Seconds every all-to-all phase costs besides its links (absent: 0). */
  phaseOverhead?: number;
  /** Leaf–spine fabric (src/sim/topology_routing.ts); absent = non-blocking. spineBw: bytes/s per uplink and direction. */
  fabric?: { nodesPerLeaf: number; spineLinks: number; spineBw: number };
}

/** Formats zod issues as one line naming each bad field (and its value, taken from `input`). */
export function formatIssues(source: string, issues: readonly z.core.$ZodIssue[], input?: unknown): string {
  const valueAt = (p: readonly PropertyKey[]): string => {
    let v = input;
    for (const k of p) v = v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined;
    return v === undefined ? '' : ` (got ${(typeof v === 'number' ? String(v) : JSON.stringify(v) ?? String(v)).slice(0, 40)})`;
  };
  return `${source}: ` + issues.map((i) => {
    const at = i.path.map(String).join('.');
    if (i.code === 'unrecognized_keys') return `unknown field ${i.keys.map((k) => (at ? `${at}.${k}` : k)).join(', ')}`;
    if (i.code === 'invalid_type' && i.message.endsWith('received undefined')) return `missing field ${at}`;
    return `field ${at || '(root)'}: ${i.message}${valueAt(i.path)}`;
  }).join('; ');
}

/** Parses YAML safely (src/io/yaml_safe.ts: core schema, unique keys, capped aliases) and validates it; errors name the field. */
export function parseYaml<T extends z.ZodType>(text: string, schema: T, source: string): z.infer<T> {
  const doc = parseYamlSafe(text, source);
  if (doc === null || doc === undefined) throw new Error(`${source} is empty`);
  const r = schema.safeParse(doc);
  if (!r.success) throw new Error(formatIssues(source, r.error.issues, doc));
  return r.data;
}

/** Converts the YAML form to SI units; checks NIC sharing divides the node. */
export function toTopology(c: TopologyConfig): Topology {
  const nics = c.inter_node.nics_per_node ?? c.gpus_per_node;
  if (c.gpus_per_node % nics !== 0) throw new Error(`inter_node.nics_per_node ${nics} does not divide gpus_per_node ${c.gpus_per_node}`);
  if (c.nodes * c.gpus_per_node > MAX_GPUS) throw new Error(`nodes × gpus_per_node = ${c.nodes} × ${c.gpus_per_node} = ${c.nodes * c.gpus_per_node} GPUs, above the bound ${MAX_GPUS}`);
  const f = c.fabric;
  if (f && c.nodes % f.nodes_per_leaf !== 0) throw new Error(`fabric.nodes_per_leaf ${f.nodes_per_leaf} does not divide nodes ${c.nodes}`);
  const nicBw = (c.inter_node.bandwidth_Gbit_per_s * 1e9 * c.inter_node.efficiency) / 8;
  return {
    name: c.name,
    nodes: c.nodes,
    gpusPerNode: c.gpus_per_node,
    gpus: c.nodes * c.gpus_per_node,
    nvlinkBw: c.intra_node.bandwidth_GB_per_s * 1e9 * c.intra_node.efficiency,
    nvlinkLat: c.intra_node.latency_us * 1e-6,
    nicBw,
    nicLat: c.inter_node.latency_us * 1e-6,
    nicsPerNode: nics,
    flops: c.gpu.tflops * 1e12 * c.gpu.mfu,
    phaseOverhead: c.phase_overhead_us * 1e-6,
    ...(f ? { fabric: { nodesPerLeaf: f.nodes_per_leaf, spineLinks: f.spine_links, spineBw: (f.nodes_per_leaf * nics * nicBw) / (f.spine_links * f.oversubscription) } } : {}),
  };
}

/** Reads and validates a topology YAML file. */
export async function readTopology(path: string): Promise<Topology> {
  const text = readRegularText(path, 1 << 20, 'topology file');
  return toTopology(parseYaml(text, TopologySchema, path));
}

/** The same topology with a different node count (for sweeps over cluster size); a fabric keeps its leaf size (last leaf may be partial). */
export function withNodes(t: Topology, nodes: number, gpusPerNode = t.gpusPerNode): Topology {
  const nics = Math.min(t.nicsPerNode, gpusPerNode);
  const out: Topology = { ...t, nodes, gpusPerNode, gpus: nodes * gpusPerNode, nicsPerNode: gpusPerNode % nics === 0 ? nics : gpusPerNode };
  if (t.fabric) out.fabric = { ...t.fabric, nodesPerLeaf: Math.min(t.fabric.nodesPerLeaf, nodes) };
  return out;
}
