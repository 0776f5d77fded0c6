/**
 * Loading a run config: YAML file → `--set` overrides → field validation (schema.ts) → cross-field rules
 * (checks.ts). The ONE place where a config is validated; errors carry line numbers or the --set that caused them.
 */
import * as fs from 'node:fs';
import { LineCounter, isMap, isScalar, parseDocument, stringify } from 'yaml';
import { YamlError, readYamlFile } from '../io/yaml_safe.ts';
import { crossChecks } from './checks.ts';
import { ConfigError, fromZodIssues } from './errors.ts';
import { applyOverrides, overridePaths } from './overrides.ts';
import { DEFAULT_CONFIG, FieldsSchema, type Config } from './schema.ts';

export { ConfigError, type ConfigIssue } from './errors.ts';
export { applyOverrides } from './overrides.ts';
export { DEFAULT_CONFIG, denseHidden, type Config } from './schema.ts';

/** The full schema: fields, then the cross-field rules, which run only once every field is valid. */
export const ConfigSchema = FieldsSchema.superRefine((c, ctx) => {
  for (const i of crossChecks(c)) ctx.addIssue({ code: 'custom', message: i.message, path: i.path.split('.'), params: { cross: true } });
}, { when: (payload) => payload.issues.length === 0 }); // zod's default runs it after non-aborting issues (e.g. out of range)

/** Validates plain data (e.g. parsed YAML) into a Config; throws ConfigError listing every problem. */
export function parseConfig(obj: unknown, file?: string): Config {
  return validate(obj, file ?? 'config', () => undefined);
}

function validate(obj: unknown, source: string, where: (path: string) => string | undefined): Config {
  const r = ConfigSchema.safeParse(obj);
  if (r.success) return r.data;
  throw new ConfigError(fromZodIssues(r.error.issues, obj, DEFAULT_CONFIG), source, where);
}

/** Reads a YAML config, applies `--set key=value` overrides, validates; errors carry line numbers. */
export function loadConfig(path: string, overrides: string[] = []): Config {
  let raw: unknown;
  try {
    raw = readYamlFile(path);
  } catch (e) {
    if (e instanceof YamlError) throw new ConfigError([{ path: '', message: e.message }], `config ${path}`);
    throw e;
  }
  // An empty file is refused, not read as "all defaults": a config torn to 0 bytes must not train silently.
  if (raw === null) throw new ConfigError([{ path: '', message: 'the file is empty (no settings); write {} to mean every default' }], `config ${path}`);
  const obj = overrides.length === 0 ? raw : applyOverrides(raw, overrides);
  const fromSet = overridePaths(overrides);
  let lines: ((path: string) => number | undefined) | undefined; // parsed again only if there is an error
  return validate(obj, `config ${path}`, (p) => {
    const o = fromSet.find((s) => p === s.path || p.startsWith(`${s.path}.`));
    if (o !== undefined) return `from --set ${o.text}`;
    lines ??= lineFinder(path);
    const line = lines(p);
    return line === undefined ? undefined : `line ${line}`;
  });
}

/** path → 1-based line of its key in the YAML file (best effort: undefined when not found). */
function lineFinder(file: string): (path: string) => number | undefined {
  let text: string;
  try { text = fs.readFileSync(file, 'utf8'); } catch { return () => undefined; }
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: false });
  return (path) => {
    let node: unknown = doc.contents;
    let offset: number | undefined;
    for (const k of path.split('.')) {
      if (!isMap(node)) return undefined;
      const pair = node.items.find((it) => isScalar(it.key) && String(it.key.value) === k);
      if (pair === undefined || !isScalar(pair.key)) return undefined;
      offset = pair.key.range?.[0];
      node = pair.value;
    }
    return offset === undefined ? undefined : lc.linePos(offset).line;
  };
}

/** The resolved config as YAML (for a run folder); loadConfig on it gives back an equal Config. */
export function configToYaml(cfg: Config): string {
  const header = '# Switchyard run config, resolved: every default filled in. Fields are documented in src/config/schema.ts.\n';
  return header + stringify(cfg, { lineWidth: 0 });
}
