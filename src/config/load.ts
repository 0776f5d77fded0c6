/**
 * Loading a run config: YAML file → `--set` overrides → field validation (schema.ts) → cross-field rules
 * (checks.ts). The ONE place where a config is validated; errors carry line numbers or the --set that caused them.
 */
import * as fs from 'node:fs';
import { LineCounter, isMap, isScalar, parseDocument, stringify } from 'yaml';
import { YamlError, readYamlFile } from '../io/yaml_safe.ts';
import { crossChecks } from './checks.ts';
import { resolveAliases, type Resolved } from './aliases.ts';
import { ConfigError, fromZodIssues, getAt } from './errors.ts';
import { applyOverrides, overridePaths } from './overrides.ts';
import { DEFAULT_CONFIG, FieldsSchema, type Config } from './schema.ts';

export { ConfigError, type ConfigIssue } from './errors.ts';
export { applyOverrides } from './overrides.ts';
export { DEFAULT_CONFIG, denseHidden, type Config } from './schema.ts';

/**
 * Fields, then the cross-field rules, which run only once every field is valid. `written(path)` says
 * whether the user's file set a field: rules about the run's length refuse only what the file itself wrote.
 */
function withCrossChecks(written: (path: string) => boolean) {
  return FieldsSchema.superRefine((c, ctx) => {
    for (const i of crossChecks(c, written)) ctx.addIssue({ code: 'custom', message: i.message, path: i.path.split('.'), params: { cross: true } });
  }, { when: (payload) => payload.issues.length === 0 }); // zod's default runs it after non-aborting issues (e.g. out of range)
}

/** The full schema, every field taken as written by the user. */
export const ConfigSchema = withCrossChecks(() => true);

/** Validates plain data (e.g. parsed YAML) into a Config; the seeds' aliases are rewritten; throws ConfigError listing every problem. */
export function parseConfig(obj: unknown, file?: string): Config {
  const resolved = resolveAliases(obj);
  return validate(resolved, resolved.obj, file ?? 'config', () => undefined, (p) => getAt(resolved.obj, p.split('.')) !== undefined);
}

/** Validates `obj` (the aliases of `resolved` already rewritten, overrides applied); errors name where a path came from. */
function validate(resolved: Resolved, obj: unknown, source: string, where: (path: string) => string | undefined, written: (path: string) => boolean): Config {
  const r = withCrossChecks(written).safeParse(obj);
  if (r.success && resolved.issues.length === 0) return r.data;
  const issues = [...resolved.issues, ...(r.success ? [] : fromZodIssues(r.error.issues, obj, DEFAULT_CONFIG))];
  throw new ConfigError(issues, source, (p) => {
    const alias = resolved.writtenAs.get(p);
    if (alias === undefined) return where(p);
    const at = where(alias);
    return at === undefined ? `written as ${alias}` : `${at}, written as ${alias}`;
  });
}

/** Reads a YAML config, rewrites the seeds' aliases, applies `--set key=value` overrides, validates; errors carry line numbers. */
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
  const resolved = resolveAliases(raw);
  const obj = overrides.length === 0 ? resolved.obj : applyOverrides(resolved.obj, overrides);
  const fromSet = overridePaths(overrides);
  // a run folder's config.yaml writes every field, the user's and the defaults: none counts as written there
  const ours = fs.readFileSync(path, 'utf8').startsWith(RESOLVED_HEADER);
  const written = (p: string) => !ours && getAt(resolved.obj, p.split('.')) !== undefined && !fromSet.some((s) => s.path === p);
  let lines: ((path: string) => number | undefined) | undefined; // parsed again only if there is an error
  return validate(resolved, obj, `config ${path}`, (p) => {
    const o = fromSet.find((s) => p === s.path || p.startsWith(`${s.path}.`));
    if (o !== undefined) return `from --set ${o.text}`;
    lines ??= lineFinder(path);
    const line = lines(p);
    return line === undefined ? undefined : `line ${line}`;
  }, written);
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

/** First line of a resolved config (a run folder's config.yaml). */
const RESOLVED_HEADER = '# Switchyard run config, resolved: every default filled in. Fields are documented in src/config/schema.ts.\n';

/** The resolved config as YAML (for a run folder); loadConfig on it gives back an equal Config. */
export function configToYaml(cfg: Config): string {
  return RESOLVED_HEADER + stringify(cfg, { lineWidth: 0 });
}
