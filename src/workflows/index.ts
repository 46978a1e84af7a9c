/** Every workflow the workers register (the prebuilt bundle is built from this file). */
export { supervisorWorkflow } from './supervisor';
export { loadWorkflow } from './load';
export { qualityWorkflow } from './quality';
export { gapFillWorkflow } from './gap-fill';
export { replayDeadLetters } from './replay-dead-letters';
export { complianceWorkflow } from './compliance';
