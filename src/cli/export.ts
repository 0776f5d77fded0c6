/**
 * `switchyard export megatron --config FILE [--ep N] [--out FILE]`: the Megatron-Core arguments that train the same MoE,
 * with every setting Megatron-Core cannot express listed as a warning.
 */
import type { Command } from 'commander';
import { MAX_EXPERTS, MAX_GPUS } from '../limits.ts';
import { loadConfig } from '../config/load.ts';
import { formatMegatronArgs, toMegatronArgs } from '../export/megatron.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { registerHf } from './export_hf.ts';
import { intFlag } from './plan.ts';

interface MegatronFlags { config?: string; ep?: string; out?: string; set: string[] }

/** Adds `switchyard export` and its `megatron` target. */
export function register(program: Command): void {
  const exp = program.command('export').description('hand a run to another engine (megatron: Megatron-Core arguments; hf: a Hugging Face Mixtral folder)');
  registerHf(exp);
  exp
    .command('megatron')
    .description('Megatron-Core (Megatron-LM pretrain_gpt.py) arguments for the MoE a Switchyard config trains')
    .option('--config <file>', 'Switchyard run config (YAML)')
    .option('--ep <n>', '--expert-model-parallel-size (default: parallel.ep_size)')
    .option('--out <file>', 'write the arguments here (a bash array MOE_ARGS; default: print)')
    .option('--set <key=value>', 'override a config field (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .action((f: MegatronFlags) => {
      if (!f.config) throw new Error('--config FILE is required');
      const cfg = loadConfig(f.config, f.set);
      const x = toMegatronArgs(cfg, f.ep === undefined ? {} : { ep: intFlag(f.ep, '--ep', undefined, MAX_GPUS) });
      const text = formatMegatronArgs(x, f.config);
      if (f.out) {
        writeFileAtomic(f.out, text);
        for (const w of x.warnings) console.error(`warning: ${w}`);
        console.log(`wrote ${f.out}: ${x.args.length} Megatron-Core flags, ${x.warnings.length} warning${x.warnings.length === 1 ? '' : 's'} (source it, then: torchrun … pretrain_gpt.py "\${MOE_ARGS[@]}" …)`);
      } else {
        process.stdout.write(text);
      }
    });
}
