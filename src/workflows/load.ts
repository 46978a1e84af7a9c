/**
 * The load child workflow: drains the subscription into BigQuery in batches, on an interval, and at
 * once while there is a backlog. Deterministic code only; posts never pass through its history (the
 * activity moves the data, the workflow moves counts). History stays bounded by continue-as-new,
 * which carries the cumulative counters forward.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  condition,
  continueAsNew,
  log,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { LoadBatchResult, createLoadActivities } from '../activities/bigquery';
import { BigQueryFailureType, LOAD_ATTEMPT_SUPERSEDED, PubSubFailureType } from '../domain/failure-types';
import { loadStatsQuery, loadStopSignal, type LoadTotals } from './messages';

export type { LoadStats, LoadTotals } from './messages';

/** Settings only: no secrets, no data. */
export interface LoadWorkflowInput {
  /** Wait between batches when there is no backlog. */
  intervalMs: number;
  /** Messages per batch (one load job + one insert-if-absent statement per batch). */
  batchSize: number;
  /** A batch with at least this many messages means a backlog: run the next one at once. */
  backlogThreshold: number;
  /** Continue-as-new after this many batches even if Temporal does not suggest it yet. @default 500 */
  maxIterationsPerRun?: number;
  /** Provision/evolve the tables at the start of every run. @default true */
  ensureTables?: boolean;
  /** Lease of pulled messages (seconds). @default 60 */
  ackDeadlineSeconds?: number;
  /** The lane this child drains (`domain/lanes.ts`) and the lane count. @default 0 of 1 */
  lane?: number;
  lanes?: number;
  /** Fence every batch (see `LaneFence` in adapters/bigquery/writer.ts). @default true */
  fenced?: boolean;
  /** Carried across continue-as-new: the last fencing base handed out, so the next is larger. */
  lastFence?: number;
  /** Counters carried across continue-as-new. */
  totals?: LoadTotals;
}

export interface LoadWorkflowResult extends LoadTotals {
  stoppedBy: 'signal';
}

const emptyTotals = (): LoadTotals => ({
  batches: 0,
  messages: 0,
  rowsLoaded: 0,
  duplicatesSkipped: 0,
  deadLetters: 0,
  columnsAdded: [],
  runs: 1,
});

/**
 * Both activities heartbeat every 5 s, so a worker that dies (a SIGKILL, an evicted pod) is noticed
 * after 30 s and the activity retried on another worker, instead of waiting out its start-to-close
 * timeout. (It was 1 minute, and ensureTables did not heartbeat: a crash during provisioning held
 * the whole loader for that long.)
 */
const { loadBatch, ensureTables } = proxyActivities<ReturnType<typeof createLoadActivities>>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '30 seconds',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    nonRetryableErrorTypes: [
      BigQueryFailureType.permissionDenied,
      BigQueryFailureType.notFound,
      BigQueryFailureType.invalid,
      BigQueryFailureType.breakingSchemaChange,
      PubSubFailureType.notFound,
      PubSubFailureType.permissionDenied,
      PubSubFailureType.invalid,
    ],
  },
});

/** The lane's newest token when `err` is a batch superseded in its lane, else undefined. */
function supersededBy(err: unknown): number | undefined {
  if (!(err instanceof ActivityFailure) || !(err.cause instanceof ApplicationFailure)) return undefined;
  if (err.cause.type !== LOAD_ATTEMPT_SUPERSEDED) return undefined;
  const details = err.cause.details?.[0] as { newestToken?: number } | undefined;
  return Number(details?.newestToken ?? 0);
}

export async function loadWorkflow(input: LoadWorkflowInput): Promise<LoadWorkflowResult> {
  const totals: LoadTotals = input.totals ? { ...input.totals } : emptyTotals();
  const maxIterations = input.maxIterationsPerRun ?? 500;
  let stopping = false;
  let loading = false;
  let iterations = 0;
  let lastBatch: LoadBatchResult | null = null;
  let lastBatchAt: string | null = null;

  setHandler(loadStopSignal, () => {
    stopping = true;
  });
  setHandler(loadStatsQuery, () => ({
    ...totals,
    columnsAdded: [...totals.columnsAdded],
    iterationsThisRun: iterations,
    lastBatch,
    lastBatchAt,
    loading,
    stopping,
  }));

  if (input.ensureTables ?? true) await ensureTables();
  let lastFence = input.lastFence ?? 0;

  while (!stopping) {
    loading = true;
    // Workflow time (deterministic), strictly larger than every earlier batch's of this lane.
    const fence = Math.max(Date.now(), lastFence + 1);
    lastFence = fence;
    let result: LoadBatchResult;
    try {
      result = await loadBatch({
        batchSize: input.batchSize,
        ackDeadlineSeconds: input.ackDeadlineSeconds,
        lane: input.lane ?? 0,
        lanes: input.lanes ?? 1,
        ...((input.fenced ?? true) ? { fence } : {}),
      });
    } catch (err) {
      const newest = supersededBy(err);
      if (newest === undefined) throw err;
      // Another attempt holds a newer token (a clock that went back, a second load child of the same
      // lane): this batch wrote nothing and goes back to the subscription; the next one outranks it.
      log.warn('load batch superseded in its lane; taking a newer fence', { newest });
      lastFence = Math.max(lastFence, Math.ceil(newest / 1000));
      loading = false;
      continue;
    }
    loading = false;
    iterations++;
    lastBatch = result;
    lastBatchAt = new Date().toISOString();
    if (result.pulled > 0) totals.batches++;
    totals.messages += result.pulled;
    totals.rowsLoaded += result.rowsLoaded;
    totals.duplicatesSkipped += result.duplicatesSkipped;
    totals.deadLetters += result.deadLetters;
    for (const c of result.columnsAdded) if (!totals.columnsAdded.includes(c)) totals.columnsAdded.push(c);

    const backlog = result.pulled >= Math.min(input.backlogThreshold, input.batchSize);
    if (!backlog) await condition(() => stopping, input.intervalMs);
    if (stopping) break;
    if (workflowInfo().continueAsNewSuggested || iterations >= maxIterations) {
      await continueAsNew<typeof loadWorkflow>({
        ...input,
        ensureTables: false,
        lastFence,
        totals: { ...totals, runs: totals.runs + 1 },
      });
    }
  }
  return { ...totals, stoppedBy: 'signal' };
}
