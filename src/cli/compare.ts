/** `switchyard compare`: every balancing method on the same model and data, side by side. */
import type { Command } from 'commander';
import { runCompare, compareTable } from '../compare/compare.ts';
import { DEFAULT_METHODS, METHODS } from '../compare/methods.ts';

const collect = (v: string, prev: string[]) => [...prev, v];

export function register(program: Command): void {
  program.command('compare')
    .description('train the same model once per balancing method (and seed) and tabulate loss and balance')
    .requiredOption('--config <file>', 'base YAML config (e.g. configs/seed000.yaml)')
    .option('--methods <list>', `comma-separated, from: ${Object.keys(METHODS).join(', ')}`, DEFAULT_METHODS.join(','))
    .option('--seeds <n>', 'seeds per method', '1')
    .option('--out <dir>', 'output folder', 'runs/compare')
    .option('--set <key=value>', 'override a config field for every run (repeatable)', collect, [])
    .action(async (o: { config: string; methods: string; seeds: string; out: string; set: string[] }) => {
      const seeds = Number(o.seeds);
      const results = await runCompare({
        config: o.config, methods: o.methods.split(',').map((m) => m.trim()).filter(Boolean), seeds, out: o.out, sets: o.set,
        log: (line) => process.stderr.write(`${line}\n`),
      });
      console.log(compareTable(results));
      console.log(`\nwrote ${o.out}/compare.json and ${o.out}/compare.md`);
    });
}
