/** Balance losses for MoE routers: each a pure, differentiable function of probs / logits returning a scalar. */
export { switchLoss, switchLossFromStats, expertCounts } from './switch.ts';
export { klUniformLoss, klUniformFromStats, klUniformCountMetric } from './kl_uniform.ts';
export { cvSquaredLoss, cvSquaredFromStats, cvSquared, loadVarianceLoss, CV_EPSILON } from './cv_squared.ts';
export { zLoss } from './z_loss.ts';
export { sequenceAuxLoss, sequenceAuxFromStats } from './sequence.ts';
export { groupAuxLoss, groupAuxFromStats, checkExpertToGroup } from './group.ts';
