/**
 * `switchyard report PATH [--out FILE] [--text] [--screenshot FILE.png]`: one self-contained HTML page (or a text
 * report) for a training run folder, a compare folder, or plan / simulate JSON output.
 */
import type { Command } from 'commander';
import { MAX_EXPERTS, MAX_GPUS } from '../limits.ts';
import { textReportAsync, writeReport } from '../report/report.ts';
import { screenshotReport } from '../report/screenshot.ts';
import { intFlag } from './plan.ts';

interface ReportFlags { out?: string; text?: boolean; screenshot?: string; load?: string; ep?: string; etp?: string; pp?: string; experts?: string }

/** Adds `switchyard report`. */
export function register(program: Command): void {
  program
    .command('report')
    .description('HTML report (charts inlined, opens offline) of a run folder, compare folder, or plan/simulate JSON')
    .argument('<path>', 'run folder (metrics.jsonl), compare folder (compare.json), plan or simulate JSON, or an engine\'s load file (Megatron tokens_per_expert / router trace, SGLang, vLLM)')
    .option('--out <file>', 'HTML file (default: report.html in the folder, <name>.report.html beside a JSON file)')
    .option('--load <file>', 'plan JSON: the load file the plan was made from, for per-GPU loads (a path inside the plan is never opened)')
    .option('--text', 'print the summary tables and a Unicode load heatmap instead (for SSH)')
    .option('--screenshot <png>', 'also save a full-page screenshot (headless Chromium, 1280 px wide)')
    .option('--ep <n>', 'Megatron tokens_per_expert folder: --expert-model-parallel-size of the run')
    .option('--etp <n>', 'Megatron tokens_per_expert folder: --expert-tensor-parallel-size (default 1)')
    .option('--pp <n>', 'Megatron tokens_per_expert folder: --pipeline-model-parallel-size (default 1)')
    .option('--experts <n>', 'logical experts, when a load file cannot tell (router traces)')
    .action(async (p: string, f: ReportFlags) => {
      const load = {
        grid: {
          ...(f.ep !== undefined ? { ep: intFlag(f.ep, '--ep', undefined, MAX_GPUS) } : {}), ...(f.etp !== undefined ? { etp: intFlag(f.etp, '--etp', undefined, MAX_GPUS) } : {}),
          ...(f.pp !== undefined ? { pp: intFlag(f.pp, '--pp', undefined, MAX_GPUS) } : {}),
        },
        ...(f.experts !== undefined ? { numExperts: intFlag(f.experts, '--experts', undefined, MAX_EXPERTS) } : {}),
      };
      if (f.text) {
        if (f.out || f.screenshot || f.load) throw new Error('--text prints to stdout; it does not combine with --out, --screenshot or --load');
        process.stdout.write(await textReportAsync(p, load));
        return;
      }
      const out = await writeReport(p, { out: f.out, load: f.load, loadOptions: load });
      console.log(`wrote ${out}`);
      if (f.screenshot) console.log(`wrote ${await screenshotReport(out, f.screenshot)}`);
    });
}
