/** `switchyard train` and `switchyard demo`: wiring from flags to the trainer, progress and signals. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { loadConfig, type Config } from '../config/load.ts';
import { loadBar, summaryTable } from '../report/terminal.ts';
import { createProgress } from './progress.ts';
import { summarizeLoad } from '../metrics/balance.ts';
import { writeReport } from '../report/report.ts';
import { DEFAULT_DASHBOARD_PORT, startDashboard, type Dashboard } from '../report/dashboard.ts';
import { hostWarning, parsePort } from './dashboard.ts';
import { train, type TrainSummary } from '../train/run.ts';

const collect = (v: string, prev: string[]) => [...prev, v];

/** The repository's configs/ folder (the demo's config ships there). */
export const CONFIG_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../configs');

/** Where train --dashboard serves. */
export interface DashboardFlags { port: number; host?: string }

/** Runs training with a progress display; SIGINT saves a checkpoint and stops cleanly. A dashboard, if given, is poked after each logged step. */
export async function runTraining(cfg: Config, outDir: string, resume: boolean, dashboard: Dashboard | null = null): Promise<TrainSummary> {
  const tty = Boolean(process.stderr.isTTY);
  const progress = createProgress({ total: cfg.steps, tty });
  const stop = { requested: false };
  const onSigint = () => {
    if (stop.requested) process.exit(130); // a second Ctrl-C does not wait
    stop.requested = true;
    progress.log('SIGINT: saving a checkpoint after this step (Ctrl-C again to quit at once)');
  };
  process.on('SIGINT', onSigint);
  try {
    return await train(cfg, {
      outDir, resume, stop,
      log: (line) => progress.log(line),
      onRecord: (r) => {
        progress.update(r.step, { loss: r.loss, load_cv: r.load_cv, maxvio: r.maxvio, loadBar: loadBar(r.expert_load[0] ?? [], 32) });
        if (typeof r.val_loss === "number") progress.log(`step ${r.step}: val_loss ${r.val_loss.toFixed(4)} (ppl ${r.val_ppl?.toFixed(2)})`);
        dashboard?.poke();
      },
    });
  } finally {
    progress.stop();
    process.off('SIGINT', onSigint);
  }
}

/** The end-of-run table: losses, then per layer the load shares and balance numbers. */
export function summaryText(s: TrainSummary): string {
  const head = summaryTable([
    { metric: 'task loss (first step)', value: s.first_loss },
    { metric: 'task loss (last step)', value: s.final_loss },
    { metric: 'validation loss', value: s.val_loss },
    { metric: 'validation perplexity', value: s.val_ppl },
    { metric: 'tokens/s', value: s.tokens_per_s },
    { metric: 'parameters', value: s.params },
  ], ['metric', { key: 'value', digits: 4 }]);
  const rows = s.per_layer_load.map((load, l) => {
    const m = summarizeLoad(load);
    return { layer: l, load: loadBar(load, 32), shares: m.share.map((x) => (100 * x).toFixed(1)).join(' '), cv: m.cv, maxvio: m.maxVio };
  });
  return `${head}\n\nexpert load of the last step (shares in %):\n${summaryTable(rows, ['layer', 'load', 'shares', { key: 'cv', digits: 3 }, { key: 'maxvio', digits: 3 }])}`;
}

export function register(program: Command): void {
  program.command('train')
    .description('train an MoE model from a YAML config into a run folder')
    .option('--config <file>', 'YAML config (see configs/)')
    .option('--out <dir>', 'run folder (default runs/<config name>-<time>)')
    .option('--steps <n>', 'override steps')
    .option('--backend <name>', 'override backend: wasm | cpu | webgpu')
    .option('--set <key=value>', 'override a config field (repeatable), e.g. --set router.type=sinkhorn', collect, [])
    .option('--resume <run_dir>', 'continue the run in this folder from its newest checkpoint')
    .option('--report', 'write report.html into the run folder at the end')
    .option('--dashboard', 'serve the live dashboard of this run (127.0.0.1; stays up after training until Ctrl-C)')
    .option('--port <n>', `dashboard port (0 = any free port; default ${DEFAULT_DASHBOARD_PORT})`)
    .option('--host <addr>', 'dashboard interface (default 127.0.0.1: this machine only)')
    .action(async (o: { config?: string; out?: string; steps?: string; backend?: string; set: string[]; resume?: string; report?: boolean; dashboard?: boolean; port?: string; host?: string }) => {
      if (!o.dashboard && (o.port !== undefined || o.host !== undefined)) throw new Error('--port and --host set up the dashboard: add --dashboard');
      const port = o.port === undefined ? DEFAULT_DASHBOARD_PORT : parsePort(o.port);
      const sets = [...o.set];
      if (o.steps !== undefined) sets.push(`steps=${o.steps}`);
      if (o.backend !== undefined) sets.push(`backend=${o.backend}`);
      let outDir: string;
      let cfg: Config;
      if (o.resume) {
        outDir = o.resume;
        const saved = path.join(outDir, 'config.yaml');
        if (!fs.existsSync(saved)) throw new Error(`--resume ${outDir}: no config.yaml there (not a run folder)`);
        cfg = loadConfig(o.config ?? saved, sets);
      } else {
        if (!o.config) throw new Error('train: --config FILE is required (or --resume RUN_DIR)');
        cfg = loadConfig(o.config, sets);
        outDir = o.out ?? defaultRunDir(path.basename(o.config, path.extname(o.config)));
      }
      let dash: Dashboard | null = null;
      if (o.dashboard) {
        const warn = o.host ? hostWarning(o.host) : null;
        if (warn) console.error(warn);
        dash = await startDashboard({ runs: [outDir], port, host: o.host, allowPending: true });
        console.log(`dashboard: ${dash.url}`);
      }
      let stopped = false;
      try {
        const s = await runTraining(cfg, outDir, Boolean(o.resume), dash);
        stopped = s.stopped_early;
        console.log(summaryText(s));
        console.log(`\nrun folder: ${outDir}`);
        if (o.report) {
          console.log(`report: ${await writeReport(outDir)}`);
        }
      } catch (e) {
        await dash?.close();
        throw e;
      }
      if (dash) {
        dash.poke();
        console.log(`training ${stopped ? 'stopped' : 'done'}; the dashboard stays up at ${dash.url} until Ctrl-C`);
        await new Promise<void>((resolve) => process.once('SIGINT', resolve));
        await dash.close();
      }
    });

  program.command('demo')
    .description('train the built-in tiny MoE language model (configs/tiny.yaml), print a summary and the report command')
    .option('--out <dir>', 'run folder (default runs/demo-<time>)')
    .option('--set <key=value>', 'override a config field (repeatable)', collect, [])
    .action(async (o: { out?: string; set: string[] }) => { await runDemo(o, (line) => console.log(line)); });
}

/** The default run folder of a command: runs/<name>-<ISO time with : and . replaced>. */
export function defaultRunDir(name: string, now = new Date()): string {
  return path.join('runs', `${name}-${now.toISOString().replace(/[:.]/g, '-')}`);
}

/** A path as one shell word (quoted only when it needs to be). */
const shellWord = (p: string) => (/^[\w./@%+=:,-]+$/.test(p) ? p : `'${p.replace(/'/g, `'\\''`)}'`);

/** `switchyard demo`: trains configs/tiny.yaml into a kept run folder, prints the summary and, last, the report command. */
export async function runDemo(o: { out?: string; set: string[] }, print: (line: string) => void): Promise<string> {
  const cfg = loadConfig(path.join(CONFIG_DIR, 'tiny.yaml'), o.set);
  const outDir = o.out ?? defaultRunDir('demo');
  print(`switchyard demo: ${cfg.layers}-layer MoE LM (${cfg.expert_num} experts, top-${cfg.top_k}) on nlp-corpus, ${cfg.steps} steps, backend ${cfg.backend}`);
  const s = await runTraining(cfg, outDir, false);
  print(summaryText(s));
  print(`\nrun folder: ${outDir}  (metrics.jsonl, checkpoints/, summary.json, config.yaml)`);
  print(`next: charts of this run in one HTML page:\n  switchyard report ${shellWord(outDir)}`);
  return outDir;
}
