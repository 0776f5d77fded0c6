/**
 * `switchyard export hf`: a run folder's newest checkpoint written as a Hugging Face Mixtral folder (src/export/hf.ts).
 * The folder is assembled beside the target and renamed into place, so a failure leaves nothing half-written.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadConfig } from '../config/load.ts';
import { readSafetensorsFile, writeSafetensorsAtomic, type SafeTensor } from '../io/safetensors.ts';
import { writeFileAtomic, writeJsonAtomic } from '../io/atomic.ts';
import { listCheckpoints } from '../train/checkpoint.ts';
import { byteTokenizerJson, configJsonText, mixtralConfig, mixtralMismatches, mixtralTensors, type PlainTensor } from './hf.ts';

export interface HfExport {
  outDir: string;
  step: number;
  tensors: number;
  parameters: number;
  warnings: string[];
}

/** Writes config.json, model.safetensors and tokenizer.json for the run's newest checkpoint into outDir (new or empty). */
export function exportHfRun(runDir: string, outDir: string): HfExport {
  const cfgFile = path.join(runDir, 'config.yaml');
  if (!fs.existsSync(cfgFile)) throw new Error(`${runDir}: not a run folder (no config.yaml)`);
  const cfg = loadConfig(cfgFile);
  const why = mixtralMismatches(cfg);
  if (why.length) throw new Error(`export hf: ${runDir} does not map to Mixtral:\n  ${why.join('\n  ')}`);
  const ckpts = listCheckpoints(runDir);
  if (ckpts.length === 0) throw new Error(`${runDir}: no checkpoint to export`);
  const dir = ckpts[ckpts.length - 1];
  const { tensors } = readSafetensorsFile(path.join(dir, 'model.safetensors'));
  const params: Record<string, PlainTensor> = {};
  for (const [name, t] of Object.entries(tensors)) {
    if (t.dtype !== 'F32') throw new Error(`${dir}/model.safetensors: tensor '${name}' is ${t.dtype}, expected F32`);
    params[name] = { data: t.data as Float32Array, shape: t.shape };
  }
  // Mixtral's router has no bias: an aux-free selection bias or a gate adjustment cannot be carried over.
  for (const [name, t] of Object.entries(params)) {
    if (/^moe\.\d+\.(expert_bias|logit_adjust)$/.test(name) && t.data.some((v) => v !== 0)) {
      throw new Error(`export hf: ${name} is non-zero (an aux-free bias or gate adjustment steered routing); Mixtral's router has no bias, so the exported model would route differently`);
    }
  }
  const tokFile = path.join(runDir, 'tokenizer.json');
  const tok = fs.existsSync(tokFile) ? (JSON.parse(fs.readFileSync(tokFile, 'utf8')) as { type?: string }) : { type: cfg.data.tokenizer };
  const vocab = params.tok_emb?.shape[0];
  if (!vocab) throw new Error(`${dir}/model.safetensors: no tok_emb tensor`);
  const warnings: string[] = [];
  if (cfg.drop_policy !== 'dropless') warnings.push(`trained with drop_policy ${cfg.drop_policy} (capacity factor ${cfg.capacity_factor}); Mixtral is dropless, so tokens the capacity dropped in training are computed there`);
  if (tok.type !== 'byte') warnings.push(`tokenizer '${tok.type}' is not exported (only the byte tokenizer maps exactly to a Hugging Face tokenizer.json); token ids are ours`);
  const hf = mixtralTensors(cfg, params);
  const out: Record<string, SafeTensor> = Object.fromEntries(Object.entries(hf).map(([k, t]) => [k, { dtype: 'F32', shape: t.shape, data: t.data }]));
  if (fs.existsSync(outDir) && fs.readdirSync(outDir).length > 0) throw new Error(`${outDir} exists and is not empty; choose a new --out`);
  const tmp = `${outDir.replace(/[\\/]+$/, '')}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  try {
    writeFileAtomic(path.join(tmp, 'config.json'), configJsonText(mixtralConfig(cfg, vocab)));
    writeSafetensorsAtomic(path.join(tmp, 'model.safetensors'), out, { format: 'pt' });
    if (tok.type === 'byte') writeJsonAtomic(path.join(tmp, 'tokenizer.json'), byteTokenizerJson());
    writeJsonAtomic(path.join(tmp, 'generation_config.json'), { do_sample: true, temperature: 0.8, top_k: 40 });
    if (fs.existsSync(outDir)) fs.rmdirSync(outDir);
    fs.renameSync(tmp, outDir);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  const step = Number(/(\d+)$/.exec(dir)?.[1] ?? NaN);
  return { outDir, step, tensors: Object.keys(out).length, parameters: Object.values(out).reduce((s, t) => s + t.data.length, 0), warnings };
}
