/**
 * `switchyard report PATH [--out FILE] [--text] [--screenshot FILE.png]`: one self-contained HTML page (or a text
 * report) for a training run folder, a compare folder, or plan / simulate JSON output.
 */
import type { Command } from 'commander';
import { textReport, writeReport } from '../report/report.ts';
import { screenshotReport } from '../report/screenshot.ts';

interface ReportFlags { out?: string; text?: boolean; screenshot?: string; load?: string }

/** Adds `switchyard report`. */
export function register(program: Command): void {
  program
    .command('report')
    .description('HTML report (charts inlined, opens offline) of a run folder, compare folder, or plan/simulate JSON')
    .argument('<path>', 'run folder (metrics.jsonl), compare folder (compare.json), plan JSON or simulate JSON')
    .option('--out <file>', 'HTML file (default: report.html in the folder, <name>.report.html beside a JSON file)')
    .option('--load <file>', 'plan JSON: the load file the plan was made from, for per-GPU loads (a path inside the plan is never opened)')
    .option('--text', 'print the summary tables and a Unicode load heatmap instead (for SSH)')
    .option('--screenshot <png>', 'also save a full-page screenshot (headless Chromium, 1280 px wide)')
    .action(async (p: string, f: ReportFlags) => {
      if (f.text) {
        if (f.out || f.screenshot || f.load) throw new Error('--text prints to stdout; it does not combine with --out, --screenshot or --load');
        process.stdout.write(textReport(p));
        return;
      }
      const out = await writeReport(p, { out: f.out, load: f.load });
      console.log(`wrote ${out}`);
      if (f.screenshot) console.log(`wrote ${await screenshotReport(out, f.screenshot)}`);
    });
}
