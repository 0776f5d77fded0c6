/**
 * Config errors: one line per problem, each naming the field path, the bad value and what is allowed,
 * with "did you mean" for misspelt fields and enum values (edit distance, case/separator-blind
 * matches, and the names Megatron-Core, Hugging Face and nanoGPT use for the same knobs).
 */
import type { z } from 'zod';

/** Problems listed one by one in a ConfigError; the rest are counted. */
export const MAX_LISTED_ISSUES = 20;

/** One problem: the dotted field path ('' for the config as a whole) and what is wrong with it. */
export interface ConfigIssue {
  path: string;
  message: string;
}

/** A config that cannot be used; `issues` lists every problem found, the message has one per line. */
export class ConfigError extends Error {
  constructor(
    readonly issues: ConfigIssue[],
    readonly source = 'config',
    /** where a path comes from, e.g. 'line 12' or 'from --set top_k=9'; shown after the path. */
    where: (path: string) => string | undefined = () => undefined,
  ) {
    const lines = issues.map((i) => {
      const at = i.path === '' ? undefined : where(i.path);
      return `  ${i.path === '' ? '(top level)' : i.path}${at ? ` (${at})` : ''}: ${i.message}`;
    });
    const n = issues.length;
    super(`invalid ${source} (${n} problem${n === 1 ? '' : 's'}):\n${lines.join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** A value as it appears in an error: strings quoted, containers named, long text cut. */
export function showValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return `a list (${cut(JSON.stringify(v))})`;
  if (typeof v === 'object') return `a mapping (${cut(JSON.stringify(v))})`;
  if (typeof v === 'string') return cut(JSON.stringify(v));
  return String(v);
}

function cut(s: string): string {
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** Value at a path of plain objects; undefined when absent. */
export function getAt(obj: unknown, path: readonly PropertyKey[]): unknown {
  let cur = obj;
  for (const k of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[k];
  }
  return cur;
}

/** Every dotted path to a leaf or section of a (default) config tree. */
export function allPaths(tree: object, prefix = ''): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(tree)) {
    const p = prefix === '' ? k : `${prefix}.${k}`;
    out.push(p);
    if (v !== null && typeof v === 'object') out.push(...allPaths(v, p));
  }
  return out;
}

/** Names users bring from Megatron-Core, Hugging Face configs and nanoGPT → our dotted path. */
const ALIASES: Record<string, string> = {
  numexperts: 'expert_num', nroutedexperts: 'expert_num', numlocalexperts: 'expert_num', experts: 'expert_num',
  moeroutertopk: 'top_k', numexpertspertok: 'top_k', k: 'top_k', topk: 'top_k',
  hiddensize: 'dim', nembd: 'dim', dmodel: 'dim', modeldim: 'dim',
  numlayers: 'layers', nlayer: 'layers', numhiddenlayers: 'layers',
  numattentionheads: 'heads', nhead: 'heads',
  moeffnhiddensize: 'expert_hidden', moeintermediatesize: 'expert_hidden', ffnhiddensize: 'expert_hidden',
  nsharedexperts: 'shared_experts', moesharedexpertintermediatesize: 'shared_experts',
  moelayerfreq: 'moe_every', intermediatesize: 'dense_hidden',
  moeexpertcapacityfactor: 'capacity_factor', moetokendroppolicy: 'drop_policy',
  moeroutertype: 'router.type', moerouterscorefunction: 'router.scoring', scoringfunc: 'router.scoring',
  moeroutertopkscalingfactor: 'router.renormalize', normtopkprob: 'router.renormalize',
  moerouternumgroups: 'router.num_groups', ngroup: 'router.num_groups',
  moeroutergrouptopk: 'router.topk_groups', topkgroup: 'router.topk_groups',
  moerouterloadbalancingtype: 'aux_loss.type', moeauxlosscoeff: 'aux_loss.weight', routerauxlosscoef: 'aux_loss.weight',
  moezlosscoeff: 'z_loss_weight', routerzlosscoef: 'z_loss_weight',
  moerouterenableexpertbias: 'balance.aux_free.enabled', moerouterbiasupdaterate: 'balance.aux_free.update_rate',
  learningrate: 'lr', minlr: 'min_lr_ratio', lrwarmupiters: 'warmup_steps', warmupiters: 'warmup_steps',
  lrdecaystyle: 'schedule', clipgrad: 'grad_clip', maxgradnorm: 'grad_clip', adambeta1: 'beta1', adambeta2: 'beta2',
  microbatchsize: 'batch_size', seqlength: 'seq_len', blocksize: 'seq_len', maxseqlen: 'seq_len',
  gradientaccumulationsteps: 'grad_accum_steps', trainiters: 'steps', maxiters: 'steps', maxsteps: 'steps',
  evalinterval: 'eval_every', evaliters: 'eval_batches', loginterval: 'log_every', saveinterval: 'checkpoint_every',
  expertmodelparallelsize: 'parallel.ep_size', recomputegranularity: 'recompute', device: 'backend',
};

const norm = (s: string) => s.toLowerCase().replace(/[-_ .]/g, '');

/** Optimal-string-alignment distance (Levenshtein plus adjacent transpositions). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const c = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + c);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** Closest candidates to `word`: same up to case/separators, else within edit distance 2 (1 for ≤ 5 letters). */
export function closest(word: string, candidates: readonly string[]): string[] {
  const same = candidates.filter((c) => norm(c) === norm(word));
  if (same.length > 0) return same;
  const limit = word.length <= 5 ? 1 : 2;
  const scored = candidates.map((c) => ({ c, d: editDistance(norm(word), norm(c)) })).filter((s) => s.d <= limit);
  const best = Math.min(...scored.map((s) => s.d));
  return scored.filter((s) => s.d === best).map((s) => s.c);
}

/**
 * "did you mean" text for an unknown key `key` in the section at `parent` ('' = top level), or ''.
 * Looks, in order, at: the section's fields up to case/separators, the names other tools use, a field
 * inside a section spelt flat (aux_loss_weight → aux_loss.weight), fields of that name in other sections,
 * then the section's fields and the dotted paths within a small edit distance.
 */
export function suggestField(key: string, parent: string, tree: object): string {
  const section = parent === '' ? tree : getAt(tree, parent.split('.'));
  const here = section !== null && typeof section === 'object' ? Object.keys(section) : [];
  const full = (k: string) => (parent === '' ? k : `${parent}.${k}`);
  const same = here.filter((k) => norm(k) === norm(key)).map(full);
  const alias = ALIASES[norm(key)];
  const paths = allPaths(tree);
  const dotted = paths.filter((p) => p.includes('.'));
  // a flat key naming a nested field: the whole path, or its tail below a section (dead_expert_window)
  const flat = dotted.filter((p) => { const segs = p.split('.'); return segs.some((_, i) => i < segs.length - 1 && norm(segs.slice(i).join('.')) === norm(full(key))); });
  const elsewhere = paths.filter((p) => norm(p.split('.').pop()!) === norm(key));
  const near = () => { const h = closest(key, here).map(full); return h.length > 0 ? h : closest(full(key), dotted); };
  const picks = same.length > 0 ? same : alias !== undefined ? [alias] : flat.length > 0 ? flat : elsewhere.length > 0 ? elsewhere : near();
  if (picks.length > 0) return `did you mean ${picks.slice(0, 4).map((p) => JSON.stringify(p)).join(' or ')}${picks.length > 4 ? ' or ...' : ''}?`;
  return `fields ${parent === '' ? 'at the top level' : `in ${parent}`}: ${here.join(', ')}`;
}

/** zod issues → ConfigIssues: path, the bad value taken from `input`, and the allowed set or range. */
export function fromZodIssues(issues: readonly z.core.$ZodIssue[], input: unknown, tree: object): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const seen = new Set<string>();
  let more = 0; // problems past the cap: counted, not described (a file of 95k unknown keys stays one screen)
  const push = (i: ConfigIssue) => {
    const key = `${i.path}\n${i.message}`;
    if (!seen.has(key)) { seen.add(key); out.push(i); }
  };
  for (const iss of issues) {
    const parent = iss.path.map(String).join('.');
    if (iss.code === 'unrecognized_keys') {
      for (const k of iss.keys) {
        if (out.length >= MAX_LISTED_ISSUES) { more++; continue; }
        push({ path: parent === '' ? k.slice(0, 80) : `${parent}.${k.slice(0, 80)}`, message: `unknown field; ${suggestField(k.slice(0, 80), parent, tree)}` });
      }
      continue;
    }
    if (out.length >= MAX_LISTED_ISSUES) { more++; continue; }
    if (iss.code === 'custom' && (iss.params as { cross?: boolean } | undefined)?.cross) {
      push({ path: parent, message: iss.message });
      continue;
    }
    const value = getAt(input, iss.path);
    let message = `got ${showValue(value)}; expected ${iss.message}`;
    if (iss.code === 'invalid_value' && typeof value === 'string') {
      const near = closest(value, iss.values.map(String));
      if (near.length > 0) message += ` (did you mean ${near.map((v) => JSON.stringify(v)).join(' or ')}?)`;
    }
    push({ path: parent, message });
  }
  if (more > 0) out.push({ path: '', message: `and ${more} more problem${more === 1 ? '' : 's'} not listed (the first ${MAX_LISTED_ISSUES} are above)` });
  return out;
}

/**
 * The mapping at `segs` inside obj, creating missing levels as empty mappings; or the first segment whose value
 * is not a mapping (so nothing can be written below it).
 */
export function mappingAt(obj: Record<string, unknown>, segs: readonly string[]): { mapping: Record<string, unknown> } | { blockedBy: string; value: unknown } {
  let cur = obj;
  for (const s of segs) {
    const next = cur[s];
    if (next === undefined) cur[s] = {};
    else if (next === null || typeof next !== 'object' || Array.isArray(next)) return { blockedBy: s, value: next };
    cur = cur[s] as Record<string, unknown>;
  }
  return { mapping: cur };
}
