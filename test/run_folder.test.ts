/**
 * A run folder nothing can corrupt, through the real CLI: a failed start changes nothing (a checkpoint that
 * does not fit, a write that fails midway), an empty config is an error, planted symbolic links are refused,
 * two writers never share a folder (the second is refused naming the first's pid), a killed writer's lock
 * is recognised as stale and its leftovers removed.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { tinyLmYaml } from './helpers.ts';
import { writeFileAtomic } from '../src/io/atomic.ts';
import { LOCK_DIR, LOCK_OWNER } from '../src/train/run_folder.ts';

const CLI = path.resolve('bin/switchyard.js');
const TINY = tinyLmYaml();

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-runfolder-'));
const cfgFile = path.join(tmp, 'tiny.yaml');
const base = path.join(tmp, 'base');

interface Result { status: number | null; out: string }

/** Runs the CLI (optionally under a shell prefix such as `ulimit -f 1;`); a guard kills a hung child after 120 s. */
function cli(args: string[], shellPrefix?: string): Promise<Result> {
  return new Promise((resolve) => {
    const child = shellPrefix
      ? spawn('bash', ['-c', `${shellPrefix} exec "$0" "$@"`, process.execPath, CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const guard = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('exit', (status) => { clearTimeout(guard); resolve({ status, out }); });
  });
}

/** Every file under dir (relative path → bytes), to compare a folder before and after. */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.set(path.relative(dir, p), e.isSymbolicLink() ? `link:${fs.readlinkSync(p)}` : fs.readFileSync(p).toString('base64'));
    }
  };
  walk(dir);
  return out;
}

function copyRun(name: string): string {
  const dir = path.join(tmp, name);
  fs.cpSync(base, dir, { recursive: true });
  return dir;
}

beforeAll(() => {
  fs.writeFileSync(cfgFile, TINY);
  const r = spawnSync(process.execPath, [CLI, 'train', '--config', cfgFile, '--out', base], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
}, 120_000);

describe('a failed start changes nothing in the run folder', () => {
  it('--resume --set expert_num=16 fails on the checkpoint and leaves every file byte-identical', async () => {
    const dir = copyRun('shape');
    const before = snapshot(dir);
    const r = await cli(['train', '--resume', dir, '--set', 'expert_num=16']);
    expect(r.status).toBe(1);
    expect(r.out).toContain('expert_num');
    expect(snapshot(dir)).toEqual(before);
  }, 120_000);

  it('a config write that fails midway (file-size limit: EFBIG) leaves config.yaml unchanged and no temp file', async () => {
    const dir = copyRun('torn');
    const before = snapshot(dir);
    expect(Buffer.byteLength(before.get('config.yaml')!, 'base64')).toBeGreaterThan(1024); // the limit tears it
    const r = await cli(['train', '--resume', dir, '--set', 'lr=0.002', '--steps', '6'], 'ulimit -f 1;');
    expect(r.status).toBe(1);
    expect(r.out).toMatch(/EFBIG/);
    expect(snapshot(dir)).toEqual(before);
  }, 120_000);

  it('an empty config.yaml is an error, not "all defaults"', async () => {
    const dir = copyRun('empty');
    fs.writeFileSync(path.join(dir, 'config.yaml'), '');
    const r = await cli(['train', '--resume', dir, '--steps', '6']);
    expect(r.status).toBe(1);
    expect(r.out).toContain('the file is empty');
    expect(fs.statSync(path.join(dir, 'config.yaml')).size).toBe(0);
  }, 120_000);
});

describe('symbolic links in a run folder', () => {
  it('a planted config.yaml or metrics.jsonl link is refused; its target is never written', async () => {
    const victim = path.join(tmp, 'victim.txt');
    fs.writeFileSync(victim, 'precious\n');
    const a = copyRun('link-config');
    fs.copyFileSync(path.join(a, 'config.yaml'), path.join(tmp, 'cfg-copy.yaml'));
    fs.rmSync(path.join(a, 'config.yaml'));
    fs.symlinkSync(path.join(tmp, 'cfg-copy.yaml'), path.join(a, 'config.yaml'));
    const b = copyRun('link-metrics');
    fs.rmSync(path.join(b, 'metrics.jsonl'));
    fs.symlinkSync(victim, path.join(b, 'metrics.jsonl'));
    const cfgCopy = fs.readFileSync(path.join(tmp, 'cfg-copy.yaml'));
    const [ra, rb] = await Promise.all([
      cli(['train', '--resume', a, '--set', 'lr=0.002', '--steps', '6']),
      cli(['train', '--config', cfgFile, '--out', b, '--steps', '6']),
    ]);
    expect(ra.status).toBe(1);
    expect(ra.out).toContain('config.yaml is a symbolic link');
    expect(rb.status).toBe(1);
    expect(rb.out).toContain('metrics.jsonl is a symbolic link');
    expect(fs.readFileSync(path.join(tmp, 'cfg-copy.yaml'))).toEqual(cfgCopy);
    expect(fs.readFileSync(victim, 'utf8')).toBe('precious\n');
  }, 120_000);

  it('an atomic write replaces a link entry and leaves its target alone', () => {
    const target = path.join(tmp, 'link-target.txt');
    fs.writeFileSync(target, 'keep\n');
    const link = path.join(tmp, 'entry.txt');
    fs.symlinkSync(target, link);
    writeFileAtomic(link, 'new\n');
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(false);
    expect(fs.readFileSync(link, 'utf8')).toBe('new\n');
    expect(fs.readFileSync(target, 'utf8')).toBe('keep\n');
  });
});

describe('one writer per run folder', () => {
  it('a second trainer is refused naming the first pid; a killed holder\'s lock is stale; leftovers are removed', async () => {
    const dir = path.join(tmp, 'locked');
    const first = spawn(process.execPath, [CLI, 'train', '--config', cfgFile, '--out', dir, '--steps', '100000'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let firstErr = '';
    first.stderr.on('data', (d) => { firstErr += d; });
    const exited = new Promise<void>((resolve) => first.on('exit', () => resolve()));
    const ck = path.join(dir, 'checkpoints');
    // wait (bounded by the work: checkpoints every 2 steps) until the first holds the lock and has a checkpoint
    const started = await new Promise<boolean>((resolve) => {
      const guard = setTimeout(() => { clearInterval(poll); resolve(false); }, 120_000);
      const poll = setInterval(() => {
        const ready = fs.existsSync(path.join(dir, LOCK_OWNER)) && fs.existsSync(ck) && fs.readdirSync(ck).some((n) => n.startsWith('step-'));
        if (ready) { clearInterval(poll); clearTimeout(guard); resolve(true); }
      }, 50);
    });
    expect(started, firstErr).toBe(true);
    try {
      const [resume, fresh] = await Promise.all([
        cli(['train', '--resume', dir, '--steps', '100000']),
        cli(['train', '--config', cfgFile, '--out', dir]),
      ]);
      for (const r of [resume, fresh]) {
        expect(r.status).toBe(1);
        expect(r.out).toContain(`is locked by process ${first.pid} (switchyard train, since `);
      }
    } finally {
      first.kill('SIGKILL');
      await exited;
    }
    // the killed holder left its lock, and a checkpoint write may be torn: plant such leftovers too
    expect(fs.existsSync(path.join(dir, LOCK_DIR))).toBe(true);
    fs.mkdirSync(path.join(ck, `.tmp-step-99999999-${first.pid}`), { recursive: true });
    fs.writeFileSync(path.join(ck, `.tmp-step-99999999-${first.pid}`, 'model.safetensors'), Buffer.alloc(1000));
    fs.writeFileSync(path.join(dir, `.summary.json.${first.pid}.0123456789ab.tmp`), '{');
    const last = Math.max(...fs.readdirSync(ck).filter((n) => n.startsWith('step-')).map((n) => Number(n.slice(5))));
    const r = await cli(['train', '--resume', dir, '--steps', String(last + 2)]);
    expect(r.status, r.out).toBe(0);
    expect(r.out).toContain(`removed the stale lock of process ${first.pid}, which no longer runs`);
    // ours, plus any the SIGKILL itself left (a checkpoint being written at that moment)
    const n = Number(/removed (\d+) leftovers of a killed writer/.exec(r.out)?.[1]);
    expect(n).toBeGreaterThanOrEqual(2);
    expect(fs.readdirSync(ck).filter((n) => n.startsWith('.tmp-'))).toEqual([]);
    expect(fs.readdirSync(dir).filter((n) => n.endsWith('.tmp') || n === LOCK_DIR || n === LOCK_OWNER)).toEqual([]);
  }, 240_000);
});
