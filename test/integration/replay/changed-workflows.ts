/**
 * A deliberately incompatible version of the supervisor, used by the replay test to prove that it
 * catches a change that breaks running workflows: it validates the rules (a new activity call)
 * before doing what the real supervisor does, so its first command differs from every recorded run.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { createStreamActivities } from '../../../src/activities/stream';
import { supervisorWorkflow as current, type SupervisorInput } from '../../../src/workflows/supervisor';

const { validateRules } = proxyActivities<ReturnType<typeof createStreamActivities>>({
  startToCloseTimeout: '1 minute',
});

export async function supervisorWorkflow(input: SupervisorInput): ReturnType<typeof current> {
  await validateRules(input.rules ?? []);
  return current(input);
}
