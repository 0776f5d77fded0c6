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
export { expertCapacity, applyCapacity, CAPACITY_POLICIES, type CapacityPolicy, type CapacityInput, type CapacityResult } from './moe/capacity.ts';
export { planTokenChoice, planExpertChoice, type DispatchPlan } from './moe/plan.ts';
export { dispatch, combine } from './moe/dispatch/gather.ts';
export { runExperts, ffn, gelu, silu, createExperts, ACTIVATIONS, type Activation, type ExpertWeights } from './moe/experts.ts';
export { MoELayer, fineGrained, routerEntropy, AUX_LOSSES, type MoEConfig, type MoEOutput, type MoEStats, type AuxLossName, type ForwardContext } from './moe/layer.ts';

// tensor ops
export { gatherRows } from './ops/gather_rows.ts';
export { scatterRows } from './ops/scatter_rows.ts';
export { takeAlongRows } from './ops/take_along_rows.ts';
export { stopGradient } from './ops/stop_gradient.ts';

// files
export { encodeSafetensors, decodeSafetensors, readSafetensorsFile, writeSafetensorsAtomic, checkTensorsAgainst, SafetensorsError } from './io/safetensors.ts';
export { parseYamlSafe, readYamlFile, YamlError } from './io/yaml_safe.ts';
export { writeFileAtomic, writeJsonAtomic } from './io/atomic.ts';

// config, model, training
export { loadConfig, parseConfig, applyOverrides, configToYaml, ConfigError } from './config/load.ts';
export { DEFAULT_CONFIG, type Config } from './config/schema.ts';
export { MoEModel, moeConfigFromConfig, crossEntropy } from './model/model.ts';
export { generateTokens } from './model/generate.ts';
export { train, openTrainer, runFolderEnv, type TrainOptions, type TrainSummary } from './train/run.ts';
export { Trainer, type TrainerEnv, type DataSource, type Batch } from './train/step.ts';
export { evaluate } from './train/evaluate.ts';
export { AdamW } from './optim/adamw.ts';
export { learningRate } from './optim/schedule.ts';
export { clipByGlobalNorm } from './optim/clip.ts';
export { globalBatchAux, type GlobalBalanceStats } from './losses/global_batch.ts';
export { createControllers, SparseGradientAccumulator, type Controller, type ControllerContext } from './train/controllers/index.ts';
export { runCompare, type MethodResult } from './compare/compare.ts';
export { METHODS } from './compare/methods.ts';

// metrics and reports
export { loadShare, loadCv, maxLoadShare, maxVio, maxVioGlobal, droppedFraction, expertUtilization, utilizationStd, summarizeLoad, summarizeLayers, DeadExpertTracker } from './metrics/balance.ts';
export { MetricsWriter, readMetrics, type MetricRecord } from './metrics/jsonl.ts';
export { writeReport, textReport } from './report/report.ts';
export { screenshotReport } from './report/screenshot.ts';

// cluster scale
export { rebalanceExperts, type EplbPlan } from './plan/eplb.ts';
export { planPlacement, type PlanOptions, type PlanReport } from './plan/planner.ts';
export { readLoadFile } from './plan/load_formats.ts';
export { toSglang, toVllm, readPlacement } from './plan/placement_io.ts';
export { readMegatronTpe, type MegatronGrid } from './plan/load_megatron_tpe.ts';
export {
  readPlacementFile, toVllmAscend, toTrtllm, sglangViolations, vllmAscendViolations, trtllmViolations, type PlacementData,
} from './plan/placement_engines.ts';
export { toMegatronArgs, formatMegatronArgs, parseMegatronArgs, fromMegatronArgs } from './export/megatron.ts';
export { simulate, simulateLayer } from './sim/simulate.ts';

// expert parallelism
export { ExpertParallel, type ExpertParallelOptions } from './parallel/expert_parallel.ts';
export { expertToRank, placementFromPhy2Log, defaultPlacement, type Placement } from './parallel/placement.ts';
