/**
 * The data-quality child workflow: runs the check suite every `intervalMs` and on demand
 * (`runChecks` signal, `runChecksNow` update which returns the verdict), reports each verdict to the
 * parent supervisor (`dataQualityVerdict` signal) and as the `DataQuality` search attribute
 * (ok|warn|fail) on itself, alerts on failing checks through an activity that never fails the run,
 * and continues as new when Temporal suggests it or after `maxRunsPerExecution` runs.
 * Deterministic code only: the activities move data, the workflow moves ids and verdicts.
 */
import { SearchAttributeType, defineSearchAttributeKey } from '@temporalio/common';
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  log,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { createQualityActivities } from '../activities/quality';
import type { DataQualityVerdict } from '../domain/pipeline-status';
import { qualityRunId, type QualityChecksOverrides } from '../domain/quality';
import { dataQualityVerdictSignal, runChecksSignal, runChecksUpdate } from './messages';

/** Settings only: no secrets, no data. */
export interface QualityWorkflowInput {
  /** Time between runs (DQ_INTERVAL_MS). @default 300000 */
  intervalMs: number;
  /** The supervisor to signal each verdict to; absent = nobody is signalled. */
  parentWorkflowId?: string;
  /** For logs only. */
  streamName?: string;
  /** Per-check overrides of the defaults (see `src/domain/quality.ts`). */
  checks?: QualityChecksOverrides;
  /** Run the suite as soon as the workflow starts. @default true */
  runOnStart?: boolean;
  /** Continue-as-new after this many runs even if Temporal does not suggest it yet. @default 200 */
  maxRunsPerExecution?: number;
  /** Carried across continue-as-new: runs completed by the chain (the next run id's sequence). */
  runSequence?: number;
  /** Carried across continue-as-new: the latest verdict. */
  lastVerdict?: DataQualityVerdict;
}

export const DataQualityKey = defineSearchAttributeKey('DataQuality', SearchAttributeType.KEYWORD);

const { runQualityChecks, ensureQualityTable } = proxyActivities<ReturnType<typeof createQualityActivities>>({
  startToCloseTimeout: '3 minutes',
  retry: {
    initialInterval: '2 seconds',
    backoffCoefficient: 2,
    maximumInterval: '30 seconds',
    maximumAttempts: 5,
  },
});

const { sendQualityAlert } = proxyActivities<ReturnType<typeof createQualityActivities>>({
  // The webhook adapter retries with its own bounded budget; one more activity attempt at most.
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 2 },
});

export async function qualityWorkflow(input: QualityWorkflowInput): Promise<void> {
  const info = workflowInfo();
  const maxRuns = input.maxRunsPerExecution ?? 200;
  let sequence = input.runSequence ?? 0;
  let lastVerdict = input.lastVerdict;
  let pending = input.runOnStart ?? true;
  let running = false;
  let completed = 0; // runs finished in this execution

  setHandler(runChecksSignal, () => {
    pending = true;
  });
  setHandler(runChecksUpdate, async () => {
    // A run already in progress started before this request: wait for the one after it.
    const target = completed + (running ? 2 : 1);
    pending = true;
    await condition(() => completed >= target);
    return lastVerdict!;
  });

  if (lastVerdict) upsertSearchAttributes([{ key: DataQualityKey, value: lastVerdict.status }]);
  await ensureQualityTable();

  for (;;) {
    if (!pending) await condition(() => pending, input.intervalMs);
    pending = false;
    running = true;
    lastVerdict = await runOnce(++sequence);
    running = false;
    completed += 1;
    await report(lastVerdict);

    if (!pending && (completed >= maxRuns || workflowInfo().continueAsNewSuggested)) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof qualityWorkflow>({
        ...input,
        runOnStart: pending,
        runSequence: sequence,
        lastVerdict,
      });
    }
  }

  async function runOnce(seq: number): Promise<DataQualityVerdict> {
    const runId = qualityRunId(info.workflowId, info.firstExecutionRunId, seq);
    const asOf = new Date().toISOString(); // workflow time: deterministic, and equal on every retry
    try {
      return await runQualityChecks({ runId, asOf, workflowId: info.workflowId, checks: input.checks });
    } catch (err) {
      const details = `the data-quality suite could not run: ${err instanceof Error ? err.message : String(err)}`;
      log.error(details, { runId });
      return {
        runId,
        status: 'fail',
        finishedAt: new Date().toISOString(),
        problems: [{ check: 'suite', status: 'fail', details }],
      };
    }
  }

  async function report(verdict: DataQualityVerdict): Promise<void> {
    upsertSearchAttributes([{ key: DataQualityKey, value: verdict.status }]);
    if (input.parentWorkflowId) {
      try {
        await getExternalWorkflowHandle(input.parentWorkflowId).signal(dataQualityVerdictSignal, verdict);
      } catch (err) {
        log.warn('could not signal the verdict to the parent', {
          parent: input.parentWorkflowId,
          error: err instanceof Error ? err.message : String(err),
        });
      }
    }
    if (verdict.problems.some((p) => p.status === 'fail')) {
      try {
        await sendQualityAlert(verdict, info.workflowId);
      } catch (err) {
        log.warn('data-quality alert activity failed', {
          error: err instanceof Error ? err.message : String(err),
        });
      }
    }
  }
}
