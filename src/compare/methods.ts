/**
 * Balancing methods `switchyard compare` knows, each named as the config names it and defined as the
 * config overrides that switch it on over the base config (whose own balancing is switched off first).
 */
export const METHODS: Record<string, { describe: string; overrides: string[]; causal?: false; note?: string }> = {
  none: { describe: 'plain top-k, no balancing (the seeds\' "raw top-k")', overrides: ['use_load_balance=false'] },
  switch: { describe: 'Switch/GShard loss E·Σ f_i·P_i, α = 0.01', overrides: ['aux_loss.type=switch', 'aux_loss.weight=0.01'] },
  kl: { describe: 'KL(U ‖ P̄) to uniform, α = 0.01 (seed 000)', overrides: ['aux_loss.type=kl', 'aux_loss.weight=0.01'] },
  cv2: { describe: 'importance + load CV² (Shazeer 2017), α = 0.01', overrides: ['aux_loss.type=cv2', 'aux_loss.weight=0.01'] },
  variance: { describe: 'seed 004 load-variance loss, α = 0.01', overrides: ['aux_loss.type=variance', 'aux_loss.weight=0.01'] },
  aux_free: { describe: 'DeepSeek-V3 aux-loss-free bias, u = 0.001', overrides: ['aux_loss.type=none', 'balance.aux_free.enabled=true', 'balance.aux_free.update_rate=0.001'] },
  expert_choice: {
    describe: 'expert choice routing (Zhou et al. 2022), capacity factor 1', overrides: ['aux_loss.type=none', 'router.type=expert_choice', 'capacity_factor=1', 'drop_policy=dropless'],
    causal: false,
    note: 'expert choice: each expert picks its top tokens over the whole batch, so in training a token\'s routing depends on the other tokens, in an LM on later tokens (not causal): its training loss is not comparable with the others\'; its validation loss is causal (each token routed to its own top-k experts at evaluation)',
  },
  sinkhorn: { describe: 'Sinkhorn balanced assignment (BASE/S-BASE)', overrides: ['aux_loss.type=none', 'router.type=sinkhorn'] },
  noisy_topk: { describe: 'noisy top-k gating + CV² loss (Shazeer 2017)', overrides: ['router.type=noisy_topk', 'aux_loss.type=cv2', 'aux_loss.weight=0.01'] },
  gate_adjust: { describe: 'load-aware gate adjustment (seeds\' "RL gating"), learned strength', overrides: ['aux_loss.type=none', 'balance.gate_adjust.enabled=true', 'balance.gate_adjust.learned=true'] },
  grad_reweight: { describe: 'Switch loss + expert-gradient reweighting by utilization (seed 004)', overrides: ['aux_loss.type=switch', 'aux_loss.weight=0.01', 'balance.grad_reweight.enabled=true'] },
};

export const DEFAULT_METHODS = ['none', 'kl', 'switch', 'aux_free', 'expert_choice', 'sinkhorn'];

/** The overrides for one method, after errors for unknown names. */
export function methodOverrides(name: string): string[] {
  const m = METHODS[name];
  if (!m) throw new Error(`compare: unknown method '${name}', expected one of ${Object.keys(METHODS).join(', ')}`);
  // Every method starts from "no balancing" so the base config's own balancing does not leak into it.
  const reset = ['use_load_balance=true', 'aux_loss.type=none', 'balance.aux_free.enabled=false', 'balance.gate_adjust.enabled=false', 'balance.grad_reweight.enabled=false', 'balance.dynamic_capacity.enabled=false'];
  return [...reset, ...m.overrides];
}
