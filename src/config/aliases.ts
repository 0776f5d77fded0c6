/**
 * The seeds' spellings of our fields, accepted as input and rewritten to our names before validation
 * (the resolved config.yaml of a run writes only our names). Top-level keys only; each maps to one
 * dotted path of ours. Where both the alias and our name are given, that is an error (which one wins
 * would be a guess).
 */
import { mappingAt, showValue, type ConfigIssue } from './errors.ts';

/** alias → our dotted path, with the seed that uses the spelling. */
export const SEED_ALIASES: Readonly<Record<string, string>> = Object.freeze({
  aux_loss_weight: 'aux_loss.weight', // seed 001: the config a user declares, and its parameter table
  balance_loss_weight: 'aux_loss.weight', // seed 004: config['balance_loss_weight']
  use_gradient_checkpointing: 'recompute', // seed 001: its memory tip (ours recomputes the expert FFNs only)
  accumulation_steps: 'grad_accum_steps', // seed 004: config['accumulation_steps']
});

/** Result of rewriting aliases: the rewritten copy, problems, and our path → the alias it was written as. */
export interface Resolved {
  obj: unknown;
  issues: ConfigIssue[];
  writtenAs: Map<string, string>;
}

/** Rewrites the seeds' spellings in a parsed config (a copy; the input is not touched). */
export function resolveAliases(obj: unknown): Resolved {
  const writtenAs = new Map<string, string>();
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return { obj, issues: [], writtenAs };
  const out = structuredClone(obj) as Record<string, unknown>;
  const issues: ConfigIssue[] = [];
  for (const [alias, target] of Object.entries(SEED_ALIASES)) {
    if (!Object.hasOwn(out, alias)) continue;
    const segs = target.split('.');
    const at = mappingAt(out, segs.slice(0, -1));
    if ('blockedBy' in at) {
      issues.push({ path: alias, message: `the seeds' spelling of ${target}, but the config's ${at.blockedBy} is ${showValue(at.value)}, not a mapping` });
      continue;
    }
    const cur = at.mapping;
    const leaf = segs[segs.length - 1];
    if (Object.hasOwn(cur, leaf) || writtenAs.has(target)) {
      const other = writtenAs.get(target) ?? target;
      issues.push({ path: alias, message: `the seeds' spelling of ${target}, which is also set (as ${other}); keep one` });
      delete out[alias];
      continue;
    }
    cur[leaf] = out[alias];
    delete out[alias];
    writtenAs.set(target, alias);
  }
  return { obj: out, issues, writtenAs };
}

/** Our dotted path for an alias, else the path itself. */
export function canonicalPath(path: string): string {
  return Object.hasOwn(SEED_ALIASES, path) ? SEED_ALIASES[path] : path;
}
