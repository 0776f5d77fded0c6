/**
 * `--set key=value` overrides: dotted paths into the config (`router.type=sinkhorn`), values read as
 * YAML scalars (3 → number, true → boolean, null → null, anything else a string; quote to force a string).
 */
import { DEFAULT_CONFIG } from './schema.ts';
import { parseYamlSafe } from '../io/yaml_safe.ts';
import { ConfigError, getAt, mappingAt, showValue, suggestField, type ConfigIssue } from './errors.ts';
import { canonicalPath } from './aliases.ts';

interface Override {
  path: string;
  value: unknown;
  text: string;
}

const PATH_RE = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

/** The paths the overrides set, with their text (for "from --set ..." in errors); skips malformed ones. */
export function overridePaths(overrides: readonly string[]): { path: string; text: string }[] {
  return overrides.flatMap((o) => {
    const eq = o.indexOf('=');
    return eq > 0 ? [{ path: canonicalPath(o.slice(0, eq).trim()), text: o }] : [];
  });
}

/** Parses one `key=value`; returns the override or the problem with it. */
function parseOverride(text: string): Override | ConfigIssue {
  const at = `--set ${JSON.stringify(text)}`;
  if (typeof text !== 'string') return { path: '', message: `${at}: an override must be a string "key=value", got ${showValue(text)}` };
  const eq = text.indexOf('=');
  if (eq < 0) return { path: '', message: `${at}: no "=" (expected key=value, e.g. top_k=1 or router.type=sinkhorn)` };
  const written = text.slice(0, eq).trim();
  const raw = text.slice(eq + 1).trim();
  if (!PATH_RE.test(written)) return { path: written, message: `${at}: "${written}" is not a field path (expected dotted snake_case names, e.g. aux_loss.weight)` };
  const path = canonicalPath(written); // the seeds' spellings (aux_loss_weight → aux_loss.weight)
  const segs = path.split('.');
  const def = getAt(DEFAULT_CONFIG, segs.slice(0, -1));
  const leaf = segs[segs.length - 1];
  if (def === null || typeof def !== 'object' || !Object.hasOwn(def, leaf)) {
    const parent = segs.slice(0, -1).join('.');
    const known = def !== null && typeof def === 'object';
    const hint = known ? suggestField(leaf, parent, DEFAULT_CONFIG) : `${segs.slice(0, -1).join('.')} is not a section`;
    return { path, message: `${at}: unknown field "${path}"; ${hint}` };
  }
  const target = (def as Record<string, unknown>)[leaf];
  if (target !== null && typeof target === 'object') {
    const fields = Object.keys(target).map((k) => `${path}.${k}`).join(', ');
    return { path, message: `${at}: "${path}" is a section; set its fields one by one (${fields})` };
  }
  if (raw === '') return { path, message: `${at}: empty value (write null to clear a field)` };
  let value: unknown;
  try {
    value = parseYamlSafe(raw, '--set');
  } catch {
    value = raw; // not valid YAML (e.g. "a: b: c"): the literal text, which validation then judges
  }
  if (value !== null && typeof value === 'object') {
    return { path, message: `${at}: the value must be a scalar (number, true/false, null or string), got ${showValue(value)}` };
  }
  return { path, value, text };
}

/** Applies `key=value` overrides to a copy of `obj` (a parsed config); throws ConfigError naming every bad one. */
export function applyOverrides(obj: unknown, overrides: readonly string[]): Record<string, unknown> {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    throw new ConfigError([{ path: '', message: `got ${showValue(obj)}; expected a mapping of config fields` }]);
  }
  const out = structuredClone(obj) as Record<string, unknown>;
  const issues: ConfigIssue[] = [];
  for (const text of overrides) {
    const o = parseOverride(text);
    if (!('text' in o)) { issues.push(o); continue; }
    const ov = o;
    const segs = ov.path.split('.');
    const at = mappingAt(out, segs.slice(0, -1));
    if ('blockedBy' in at) issues.push({ path: ov.path, message: `--set ${JSON.stringify(text)}: the config's ${at.blockedBy} is ${showValue(at.value)}, not a mapping` });
    else at.mapping[segs[segs.length - 1]] = ov.value;
  }
  if (issues.length > 0) throw new ConfigError(issues, 'overrides');
  return out;
}
