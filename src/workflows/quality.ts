/**
 * The data-quality child workflow: runs the check suite every `intervalMs` and on demand
 * (`runChecks` signal, `runChecksNow` update which returns the verdict), reports each verdict to the
 * parent supervisor (`dataQualityVerdict` signal) and as the `DataQuality` search attribute
 * (ok|warn|fail) on itself, alerts on failing checks through an activity that never fails the run,
 * and continues as new when Temporal suggests it or after `maxRunsPerExecution` runs.
 * When the uniqueness check finds duplicate ids, the run repairs them (the `repairDuplicates`
 * activity: one row kept per id, the removed ones recorded in `load_repairs`) and adds what it did to
 * the verdict as a `uniqueness_repair` problem (warn; fail when rows could not be repaired).
 * Deterministic code only: the activities move data, the workflow moves ids and verdicts.
 */
import { SearchAttributeType, defineSearchAttributeKey } from '@temporalio/common';
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  log,
  patched,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { DuplicateRepairSummary, createQualityActivities } from '../activities/quality';
import type { CheckOutcome, DataQualityVerdict } from '../domain/pipeline-status';
import { qualityRunId, worstStatus, type QualityChecksOverrides } from '../domain/quality';
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
  /** Repair duplicate ids when the uniqueness check finds them. @default true */
  repairDuplicates?: boolean;
}

/** The patch id of the duplicate repair (quality runs recorded before it replay without it). */
export const REPAIR_DUPLICATES_PATCH = 'repair-duplicates';

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

const { repairDuplicates } = proxyActivities<ReturnType<typeof createQualityActivities>>({
  // Passes of a few BigQuery statements each; the activity heartbeats every 5 s and between steps.
  startToCloseTimeout: '15 minutes',
  heartbeatTimeout: '1 minute',
  retry: {
    initialInterval: '5 seconds',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    maximumAttempts: 3,
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
    let verdict: DataQualityVerdict;
    try {
      verdict = await runQualityChecks({ runId, asOf, workflowId: info.workflowId, checks: input.checks });
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
    const duplicates = verdict.problems.some((p) => p.check === 'uniqueness');
    if (duplicates && (input.repairDuplicates ?? true) && patched(REPAIR_DUPLICATES_PATCH)) {
      verdict = withProblem(verdict, await repair(runId, asOf));
    }
    return verdict;
  }

  /** Runs the duplicate repair over the uniqueness check's window; never fails the run. */
  async function repair(runId: string, asOf: string): Promise<CheckOutcome> {
    try {
      const r = await repairDuplicates({ repairId: runId, asOf, checks: input.checks });
      log.warn('duplicate posts rows repaired', { ...r });
      return {
        check: 'uniqueness_repair',
        status: r.unrepairable > 0 ? 'fail' : 'warn',
        details: repairDetails(r),
      };
    } catch (err) {
      const details = `the duplicate repair failed: ${err instanceof Error ? err.message : String(err)}`;
      log.error(details, { runId });
      return { check: 'uniqueness_repair', status: 'fail', details };
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

function withProblem(verdict: DataQualityVerdict, problem: CheckOutcome): DataQualityVerdict {
  return {
    ...verdict,
    status: worstStatus([verdict.status, problem.status]),
    problems: [...verdict.problems, problem],
  };
}

function repairDetails(r: DuplicateRepairSummary): string {
  const examples = r.removed.map((x) => `${x.postId} (run ${x.removedLoadRunId})`).join(', ');
  return [
    `removed ${r.rowsRemoved} duplicate row(s) of ${r.duplicateIds} id(s)` +
      `${r.since ? ` created since ${r.since}` : ''}, recorded in load_repairs under ${r.repairId}` +
      (examples ? ` (e.g. ${examples})` : ''),
    r.unrepairable > 0
      ? `${r.unrepairable} duplicate row(s) left in place: their load_run_id is shared with another copy or NULL, so they cannot be removed alone`
      : '',
    r.truncated ? 'more duplicated ids may remain: the next run continues' : '',
  ]
    .filter(Boolean)
    .join('; ');
}
