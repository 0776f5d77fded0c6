/** The speed suite's figures as one markdown table (bench/run_speed.ts prints it; the README copies it). */

type Any = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const f1 = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toFixed(2));
const shapeOf = (s: Any) => `T=${s.T}, D=${s.D}, H=${s.H}, E=${s.E}, k=${s.k}`;
const pct = (v: number) => `${(100 * v).toFixed(1)} %`;

/** Markdown table of one backend's figures. */
export function speedTable(backend: string, r: Any): string {
  const rows: string[][] = [];
  const c = r.ceiling;
  const name = (a: Any) => `${a.kernel ?? 'tf.matMul'} ${a.mkn.join('×')}`;
  rows.push([`matmul ceiling (best matmul of this run)`, `${f1(c.gflops)} GFLOPS`, '', c.all.map((a: Any) => `${name(a)}: ${f1(a.gflops)}`).join('; ')]);
  const moeRow = (label: string, m: Any) => rows.push([
    `${label}: ${shapeOf(m.shape)}, ${m.dispatcher}`, `${f1(m.median_ms)} ms · ${m.tokens_per_s} tok/s · ${f1(m.gflops)} GFLOPS`, 'matmul ceiling', `${pct(m.of_ceiling)} of ceiling`,
  ]);
  moeRow('MoE layer fwd+bwd', r.moe);
  moeRow('MoE layer fwd+bwd, fine-grained', r.moe_fine);
  rows.push([`dense FFN, equal active FLOPs (hidden ${r.dense.hidden})`, `${f1(r.dense.median_ms)} ms · ${f1(r.dense.gflops)} GFLOPS`, 'MoE step', `MoE / dense = ${r.moe_over_dense.toFixed(2)}`]);
  const b = r.breakdown;
  rows.push([`routing + capacity + dispatch + combine (${b.method ?? 'step − expert FFNs alone'})`, `${f1(b.rest_ms)} ms (host plan ${f1(b.host_plan_ms)} ms)`, `step ${f1(b.step_ms)} ms, experts ${f1(b.experts_ms)} ms`, `${pct(b.rest_share)} of step`]);
  const strategies = Object.entries(r.strategies as Any);
  const base = strategies.find(([, s]) => s.median_ms !== undefined)?.[1];
  for (const [name, s] of strategies) {
    if (s.skipped) { rows.push([`dispatcher: ${name}`, 'not run', '', s.skipped]); continue; }
    rows.push([`dispatcher: ${name}`, `${f1(s.median_ms)} ms · ${f1(s.gflops)} GFLOPS`, 'first row', `${(base.median_ms / s.median_ms).toFixed(2)}× its speed`]);
  }
  if (r.gemm) {
    const q = r.gemm.square;
    rows.push([`WGSL GEMM, ${q.n}² (best tile ${r.gemm.best.bm}×${r.gemm.best.bn}×${r.gemm.best.bk})`, `${q.wgsl_gflops} GFLOPS`, `tfjs matMul ${q.tfjs_gflops} GFLOPS`, `${(q.wgsl_gflops / q.tfjs_gflops).toFixed(2)}×`]);
  }
  if (r.torch) {
    const ours = r.moe.median_ms;
    for (const [label, t] of [['PyTorch fp32 (reference_moe_torch.py, no dx)', r.torch.as_given_no_dx], ['PyTorch fp32, with dx (as our step)', r.torch.with_dx]] as [string, Any][]) {
      if (t?.moe_step_ms_tf32_false === undefined) continue;
      rows.push([label, `${f1(t.moe_step_ms_tf32_false)} ms (tf32: ${f1(t.moe_step_ms_tf32_true)} ms)`, `ours ${f1(ours)} ms`, `ours / torch = ${(ours / t.moe_step_ms_tf32_false).toFixed(2)}`]);
    }
    const mm = r.torch.as_given_no_dx?.matmul_gflops_tf32_false;
    if (mm) rows.push(['PyTorch fp32 matmul 8192²', `${f1(mm)} GFLOPS`, `best matmul here ${f1(c.gflops)} GFLOPS`, `${(c.gflops / mm).toFixed(2)}×`]);
  }
  for (const [name, p] of Object.entries((r.profile ?? {}) as Any)) {
    const top = (p.kernels as Any[]).slice(0, 5).map((k) => `${k.name} ${f1(k.ms)} ms ×${k.calls}`).join(', ');
    rows.push([`kernel time of one step, ${name} (tf.profile)`, `${f1(p.total_ms)} ms in kernels`, '', top]);
  }
  if (r.sync_latency) rows.push(['one GPU→host sync (tiny read)', `${f1(r.sync_latency.median_ms)} ms`, '', 'a step has two: routing, and the end']);
  for (const [name, p] of Object.entries((r.phases ?? {}) as Any)) {
    rows.push([`step phases, ${name}`, `route+read ${f1(p.route)} ms · build+encode ${f1(p.encode)} ms · GPU wait ${f1(p.wait)} ms`, '', '']);
  }
  const l = r.leak;
  rows.push([`tensor-leak check: ${l.what}`, `${l.after_10.numTensors} tensors / ${l.after_10.numBytes} B after 10; ${l.after_200.numTensors} / ${l.after_200.numBytes} B after 200`, '', l.leak_free ? 'equal: no leak' : 'LEAK']);
  const lm = r.small_lm;
  rows.push(['small-LM training (configs/small-lm.yaml)', lm.skipped ? 'not run' : `${lm.tokens_per_s} tok/s (${f1(lm.median_ms)} ms / ${lm.tokens_per_step} tokens)`, '', lm.skipped ?? '']);
  rows.push(['dispatchers agree (max \\|Δy\\| / max \\|y\\|)', `${r.dispatchers_max_rel_diff}`, 'gather', '']);
  const head = `| figure (${backend}) | value | reference (same run) | ratio |\n|---|---|---|---|`;
  return [head, ...rows.map((x) => `| ${x.join(' | ')} |`)].join('\n');
}
