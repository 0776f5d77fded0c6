/** Switchyard's public API: re-exports only. */
export { initBackend, currentBackend, BACKENDS, type BackendName } from './backend.ts';
export { Rng } from './rng.ts';

// routing
export { routeTopK, topKIndices, type TopKOptions } from './router/topk.ts';
export { routeNoisyTopK, noisyTopKLoad, normalCdf, type NoisyTopKOptions, type NoisyTopKRouting } from './router/noisy.ts';
export { routeGumbel, gumbelNoise, annealTau, type GumbelOptions, type TauSchedule } from './router/gumbel.ts';
export { routeExpertChoice, expertChoiceCapacity, type ExpertChoiceOptions } from './router/expert_choice.ts';
export { routeSinkhorn, sinkhorn, type SinkhornRouterOptions } from './router/sinkhorn.ts';
export { routeGroupLimited, type GroupLimitedOptions } from './router/group_limited.ts';
export { route, ROUTER_TYPES, type RouterConfig, type RouterType } from './router/route.ts';
export type { Routing, TokenChoiceRouting, ExpertChoiceRouting } from './router/types.ts';

// balance losses
export {
  switchLoss, switchLossFromStats, expertCounts, klUniformLoss, klUniformFromStats, klUniformCountMetric,
  cvSquaredLoss, cvSquaredFromStats, cvSquared, loadVarianceLoss, zLoss, sequenceAuxLoss, sequenceAuxFromStats,
  groupAuxLoss, groupAuxFromStats,
} from './losses/index.ts';

// capacity, dispatch, experts, layer
export { expertCapacity, applyCapacity, CAPACITY_POLICIES, type CapacityPolicy, type CapacityInput, type CapacityResult } from './capacity.ts';
export { dispatch, combine, planTokenChoice, planExpertChoice, type DispatchPlan } from './dispatch.ts';
export { runExperts, ffn, gelu, silu, createExperts, ACTIVATIONS, type Activation, type ExpertWeights } from './experts.ts';
export { MoELayer, fineGrained, routerEntropy, AUX_LOSSES, type MoEConfig, type MoEOutput, type MoEStats, type AuxLossName, type ForwardContext } from './moe_layer.ts';

// tensor ops
export { gatherRows } from './ops/gather_rows.ts';
export { scatterRows } from './ops/scatter_rows.ts';
export { takeAlongRows } from './ops/take_along_rows.ts';
export { stopGradient } from './ops/stop_gradient.ts';

// files
export { encodeSafetensors, decodeSafetensors, readSafetensorsFile, writeSafetensorsAtomic, checkTensorsAgainst, SafetensorsError } from './io/safetensors.ts';
export { parseYamlSafe, readYamlFile, YamlError } from './io/yaml_safe.ts';
export { writeFileAtomic, writeJsonAtomic } from './io/atomic.ts';
