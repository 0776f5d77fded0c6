/**
 * `switchyard import megatron ARGS_FILE [--out FILE]`: a Switchyard config for the MoE a Megatron-Core command line
 * trains, so a balancing issue can be reproduced on one machine.
 */
import * as fs from 'node:fs';
import type { Command } from 'commander';
import { configToYaml, parseConfig } from '../config/load.ts';
import { fromMegatronArgs, parseMegatronArgs } from '../export/megatron.ts';
import { writeFileAtomic } from '../io/atomic.ts';

/** Adds `switchyard import` and its `megatron` source. */
export function register(program: Command): void {
  const imp = program.command('import').description('bring a run from another engine (megatron: a Switchyard config from Megatron-Core arguments)');
  imp
    .command('megatron')
    .description('Switchyard config from a Megatron-Core command line or args file (shell continuations and comments allowed)')
    .argument('<args_file>', 'file holding the Megatron-LM arguments (e.g. the training script)')
    .option('--out <file>', 'write the config YAML here (default: print)')
    .action((file: string, f: { out?: string }) => {
      let text: string;
      try { text = fs.readFileSync(file, 'utf8'); } catch { throw new Error(`args file not found: ${file}`); }
      const imp = fromMegatronArgs(parseMegatronArgs(text), file);
      const cfg = parseConfig(imp.config, `config from ${file}`);
      const header = `# Imported from Megatron-Core arguments in ${file} by switchyard import megatron.\n${imp.warnings.map((w) => `# WARNING: ${w}\n`).join('')}`;
      const yaml = header + configToYaml(cfg);
      if (f.out) {
        writeFileAtomic(f.out, yaml);
        for (const w of imp.warnings) console.error(`warning: ${w}`);
        console.log(`wrote ${f.out} (train it: switchyard train --config ${f.out}; shrink it with --set dim=… expert_hidden=…)`);
      } else {
        process.stdout.write(yaml);
      }
    });
}
