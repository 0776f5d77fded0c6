/** `switchyard export hf RUN_DIR --out DIR`: a trained run as a Hugging Face Mixtral folder (src/export/hf.ts). */
import type { Command } from 'commander';
import { exportHfRun } from '../export/hf_run.ts';

/** Adds the `hf` target to `switchyard export`. */
export function registerHf(exp: Command): void {
  exp
    .command('hf')
    .description('write a trained run as a Hugging Face Mixtral folder (config.json, model.safetensors, tokenizer.json)')
    .argument('<run_dir>', 'a folder written by `switchyard train`')
    .requiredOption('--out <dir>', 'new (or empty) folder to write')
    .action((runDir: string, o: { out: string }) => {
      const r = exportHfRun(runDir, o.out);
      for (const w of r.warnings) console.error(`warning: ${w}`);
      console.log(`wrote ${r.outDir}: MixtralForCausalLM, ${r.tensors} tensors, ${r.parameters.toLocaleString('en-US')} parameters, from step ${r.step}`);
      console.log(`load it with: AutoModelForCausalLM.from_pretrained(${JSON.stringify(r.outDir)}) (transformers)`);
    });
}
