/**
 * The supervisor: one per X app stream (workflow id `x-ingest-<streamName>`, so a second start for
 * the same stream is refused by the id). It owns the app's single stream connection and its whole
 * rule set, runs the stream activity (X → Pub/Sub), keeps the load and quality children alive, and
 * is steered with signals (`pause`, `resume`, `stop`), an update (`setRules`) and a query (`status`).
 *
 * Posts never enter its history: the activity moves data and reports counts every few seconds
 * (`progress` signal), so history grows with time, not with posts, and continue-as-new keeps it
 * bounded, carrying the whole state forward.
 */
import {
  ActivityCancellationType,
  ApplicationFailure,
  CancellationScope,
  ParentClosePolicy,
  WorkflowIdReusePolicy,
  allHandlersFinished,
  condition,
  continueAsNew,
  isCancellation,
  log,
  proxyActivities,
  setHandler,
  sleep,
  startChild,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
  type ActivityOptions,
  type ChildWorkflowHandle,
} from '@temporalio/workflow';
import type { WorkerSettings, createStreamActivities } from '../activities/stream';
import { XFailureType } from '../domain/failure-types';
import type {
  ChildStatus,
  DataQualityVerdict,
  MinuteCount,
  PipelineState,
  PipelineStatus,
  ProgressReport,
  StreamProgress,
} from '../domain/pipeline-status';
import { emptyProgress, loadWorkflowId, qualityWorkflowId } from '../domain/pipeline-status';
import { validateRules, type ActiveRule, type StreamRule } from '../domain/rules';
import { loadWorkflow } from './load';
import {
  dataQualityVerdictSignal,
  loadStopSignal,
  pauseSignal,
  progressSignal,
  resumeSignal,
  runChecksSignal,
  setRulesUpdate,
  statusQuery,
  stopSignal,
} from './messages';
import { qualityWorkflow } from './quality';

/** Input: settings only (never secrets). Everything is optional; the worker's configuration fills the rest. */
export interface SupervisorInput {
  streamName: string;
  /** Desired rules; default: the stream worker's `X_RULES`. */
  rules?: StreamRule[];
  /** Override the worker's `X_BACKFILL_MINUTES`. */
  backfillMinutes?: number;
  /** Start paused (no X connection until `resume`). */
  startPaused?: boolean;
  /** Start the load and quality children. @default true */
  children?: { load?: boolean; quality?: boolean };
  /** Continue-as-new after this many history events even if the server does not suggest it. @default 10000 */
  maxHistoryEvents?: number;
  /** Minutes of per-minute published counts kept for reconciliation. @default 180 */
  reconciliationMinutes?: number;
  /** State carried across continue-as-new (set by the workflow itself). */
  carried?: CarriedState;
}

export interface CarriedState {
  state: PipelineState;
  settings: WorkerSettings;
  rules: StreamRule[];
  /** Totals of finished activity attempts. */
  base: StreamProgress;
  publishedByMinute: MinuteCount[];
  children: { load: ChildStatus; quality: ChildStatus };
  lastDataQuality?: DataQualityVerdict;
  lastError?: string;
  generation: number;
  startedAt: string;
}

const STREAM_HEARTBEAT_TIMEOUT = '30 seconds';

const settingsActivities = proxyActivities<ReturnType<typeof createStreamActivities>>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds' },
});

const ruleActivities = proxyActivities<ReturnType<typeof createStreamActivities>>({
  startToCloseTimeout: '2 minutes',
  retry: {
    initialInterval: '2 seconds',
    maximumInterval: '1 minute',
    maximumAttempts: 5,
    nonRetryableErrorTypes: [XFailureType.rule, XFailureType.auth],
  },
});

const STREAM_ACTIVITY_OPTIONS: ActivityOptions = {
  // The stream runs until cancelled; the heartbeat timeout is what detects a dead worker.
  startToCloseTimeout: '3650 days',
  heartbeatTimeout: STREAM_HEARTBEAT_TIMEOUT,
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    nonRetryableErrorTypes: [XFailureType.auth],
  },
};

/** The stream activity, with the Web UI summary naming the rules it reads. */
function streamActivity(rules: StreamRule[]) {
  const summary = `X filtered stream → Pub/Sub; rules: ${rules.map((r) => (r.tag ? `${r.value} [${r.tag}]` : r.value)).join('; ')}`;
  return proxyActivities<ReturnType<typeof createStreamActivities>>({
    ...STREAM_ACTIVITY_OPTIONS,
    summary: summary.length > 200 ? `${summary.slice(0, 199)}…` : summary,
  }).streamToPubSub;
}

/** Adds the counters of `b` to `a` (state fields come from `b`). */
export function addProgress(a: StreamProgress, b: StreamProgress): StreamProgress {
  const reasons = { ...a.reconnectsByReason };
  for (const [k, v] of Object.entries(b.reconnectsByReason)) reasons[k] = (reasons[k] ?? 0) + v;
  return {
    connected: b.connected,
    connectedSince: b.connected ? b.connectedSince : undefined,
    postsReceived: a.postsReceived + b.postsReceived,
    postsPublished: a.postsPublished + b.postsPublished,
    malformedPublished: a.malformedPublished + b.malformedPublished,
    duplicatesSuppressed: a.duplicatesSuppressed + b.duplicatesSuppressed,
    reconnects: a.reconnects + b.reconnects,
    reconnectsByReason: reasons,
    backpressurePauses: a.backpressurePauses + b.backpressurePauses,
    lastPostId: b.lastPostId ?? a.lastPostId,
    lastPostAt: b.lastPostAt ?? a.lastPostAt,
    lastError: b.lastError ?? a.lastError,
    updatedAt: b.updatedAt ?? a.updatedAt,
  };
}

/** Adds per-minute deltas and keeps the newest `keepMinutes` minutes, oldest first. */
export function mergeMinutes(into: MinuteCount[], deltas: MinuteCount[], keepMinutes: number): MinuteCount[] {
  const map = new Map(into.map((m) => [m.minute, m.published]));
  for (const d of deltas) map.set(d.minute, (map.get(d.minute) ?? 0) + d.published);
  return [...map.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .slice(-keepMinutes)
    .map(([minute, published]) => ({ minute, published }));
}

function childStatus(workflowId: string): ChildStatus {
  return { workflowId, state: 'not started', restarts: 0 };
}

function errorMessage(err: unknown): string {
  let e: unknown = err;
  // Unwrap ActivityFailure / ChildWorkflowFailure to the cause that says what happened.
  while (e && typeof e === 'object' && 'cause' in e && (e as { cause?: unknown }).cause) {
    e = (e as { cause: unknown }).cause;
  }
  return e instanceof Error ? e.message : String(e);
}

export async function supervisorWorkflow(input: SupervisorInput): Promise<PipelineStatus> {
  const info = workflowInfo();
  const keepMinutes = input.reconciliationMinutes ?? 180;
  const maxEvents = input.maxHistoryEvents ?? 10_000;
  const wantLoad = input.children?.load ?? true;
  const wantQuality = input.children?.quality ?? true;

  const carried = input.carried;
  const settings: WorkerSettings = carried?.settings ?? (await settingsActivities.resolveSettings());
  let state: PipelineState = carried?.state ?? (input.startPaused ? 'paused' : 'starting');
  let rules: StreamRule[] = carried?.rules ?? input.rules ?? settings.rules;
  let base: StreamProgress = carried?.base ?? emptyProgress();
  let publishedByMinute: MinuteCount[] = carried?.publishedByMinute ?? [];
  const children = carried?.children ?? {
    load: childStatus(loadWorkflowId(input.streamName)),
    quality: childStatus(qualityWorkflowId(input.streamName)),
  };
  let lastDataQuality = carried?.lastDataQuality;
  let lastError = carried?.lastError;
  const generation = carried?.generation ?? 0;
  const startedAt = carried?.startedAt ?? new Date().toISOString();
  const backfillMinutes = input.backfillMinutes ?? settings.backfillMinutes;

  // Progress of the activity attempt(s) currently reporting, keyed by reporter.
  const live = new Map<string, { sequence: number; progress: StreamProgress }>();
  let stopRequested = state === 'stopping';
  let pauseRequested = state === 'paused';
  let streamScope: CancellationScope | undefined;

  const totals = (): StreamProgress => {
    let p = base;
    for (const r of live.values()) p = addProgress(p, r.progress);
    return p;
  };

  const status = (): PipelineStatus => ({
    streamName: input.streamName,
    state,
    rules,
    progress: totals(),
    publishedByMinute,
    children,
    lastDataQuality,
    lastError,
    generation,
    startedAt,
  });

  const publishState = () => {
    upsertSearchAttributes({
      PipelineState: [state],
      StreamName: [input.streamName],
      XRuleTags: [...new Set(rules.map((r) => r.tag ?? r.value))],
      ...(lastDataQuality ? { DataQuality: [lastDataQuality.status] } : {}),
    });
    upsertMemo({ rules: rules.map((r) => (r.tag ? `${r.value} [${r.tag}]` : r.value)).join('; ') });
  };

  const setState = (next: PipelineState) => {
    if (next === state) return;
    state = next;
    publishState();
  };

  // --- message handlers -------------------------------------------------------------------------
  setHandler(statusQuery, status);

  setHandler(pauseSignal, () => {
    if (stopRequested) return;
    pauseRequested = true;
    streamScope?.cancel();
  });

  setHandler(resumeSignal, () => {
    if (stopRequested) return;
    pauseRequested = false;
    lastError = undefined;
  });

  setHandler(stopSignal, () => {
    stopRequested = true;
    streamScope?.cancel();
  });

  setHandler(progressSignal, (report: ProgressReport) => {
    const prev = live.get(report.reporter);
    if (prev && report.sequence <= prev.sequence) return; // a re-delivered report
    if (!prev) {
      // A new activity attempt: fold the finished attempts' last reports into the base.
      for (const [k, r] of live) {
        base = addProgress(base, { ...r.progress, connected: false });
        live.delete(k);
      }
    }
    live.set(report.reporter, { sequence: report.sequence, progress: report.progress });
    publishedByMinute = mergeMinutes(publishedByMinute, report.publishedByMinute, keepMinutes);
  });

  // `temporal workflow signal --name runChecks` on the supervisor runs the quality suite now.
  setHandler(runChecksSignal, async () => {
    await childHandles.quality?.signal(runChecksSignal);
  });

  setHandler(dataQualityVerdictSignal, (verdict: DataQualityVerdict) => {
    const changed = lastDataQuality?.status !== verdict.status;
    lastDataQuality = verdict;
    if (changed) publishState();
  });

  setHandler(
    setRulesUpdate,
    async (next: StreamRule[]): Promise<ActiveRule[]> => {
      const normalised = validateRules(next);
      let applied: ActiveRule[];
      try {
        await ruleActivities.validateRules(normalised);
        applied = await ruleActivities.syncRules(normalised);
      } catch (err) {
        // Surface X's reason itself (not "activity task failed") to `temporal workflow update`.
        throw ApplicationFailure.nonRetryable(errorMessage(err), XFailureType.rule);
      }
      rules = applied.map(({ value, tag }) => (tag ? { value, tag } : { value }));
      publishState();
      log.info('rules replaced', { rules: rules.map((r) => r.value) });
      return applied;
    },
    {
      validator: (next: StreamRule[]) => {
        if (!Array.isArray(next)) throw new Error('setRules expects a JSON array of {"value","tag"} rules');
        if (stopRequested) throw new Error('the pipeline is stopping');
        validateRules(next); // throws with a message naming the bad rule
      },
    },
  );

  // --- children ---------------------------------------------------------------------------------
  const childHandles: { load?: ChildWorkflowHandle<never>; quality?: ChildWorkflowHandle<never> } = {};
  const childScopes = { load: new CancellationScope(), quality: new CancellationScope() };

  function keepChild(kind: 'load' | 'quality'): Promise<void> {
    return childScopes[kind]
      .run(() => superviseChild(kind))
      .catch((err) => {
        if (!isCancellation(err)) throw err;
        children[kind].state = 'stopped';
      });
  }

  async function superviseChild(kind: 'load' | 'quality'): Promise<void> {
    const st = children[kind];
    let delayMs = 1000;
    while (!stopRequested) {
      try {
        const handle =
          kind === 'load'
            ? await startChild(loadWorkflow, {
                workflowId: st.workflowId,
                taskQueue: settings.batchTaskQueue,
                args: [
                  {
                    intervalMs: settings.loadIntervalMs,
                    batchSize: settings.loadBatchSize,
                    backlogThreshold: settings.loadBacklogThreshold,
                  },
                ],
                parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
                workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
                staticSummary: `Pub/Sub → BigQuery loader of ${input.streamName}`,
              })
            : await startChild(qualityWorkflow, {
                workflowId: st.workflowId,
                taskQueue: settings.batchTaskQueue,
                args: [
                  {
                    intervalMs: settings.dqIntervalMs,
                    parentWorkflowId: info.workflowId,
                    streamName: input.streamName,
                  },
                ],
                parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
                workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
                staticSummary: `Data-quality checks of ${input.streamName}`,
              });
        childHandles[kind] = handle as ChildWorkflowHandle<never>;
        st.state = 'running';
        delayMs = 1000;
        await handle.result();
        childHandles[kind] = undefined;
        if (stopRequested) break;
        // A child that completes on its own is restarted too: it must run as long as the supervisor.
        st.state = 'restarting';
        st.restarts += 1;
      } catch (err) {
        childHandles[kind] = undefined;
        if (stopRequested || isCancellation(err)) break;
        st.state = 'restarting';
        st.lastError = errorMessage(err);
        // "already started" right after a continue-as-new: the previous run's child is still closing.
        if (!/already started|AlreadyStarted/i.test(st.lastError)) st.restarts += 1;
        log.warn(`${kind} child ended; restarting`, { error: st.lastError, restarts: st.restarts });
        await sleep(delayMs);
        delayMs = Math.min(delayMs * 2, 60_000);
      }
    }
    st.state = 'stopped';
  }

  // --- the stream -------------------------------------------------------------------------------
  const shouldContinueAsNew = () =>
    workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > maxEvents;

  async function runStream(): Promise<'stopped' | 'continue-as-new'> {
    let rulesSynced = carried !== undefined;
    while (!stopRequested) {
      if (pauseRequested) {
        setState('paused');
        await condition(() => !pauseRequested || stopRequested || shouldContinueAsNew());
        if (stopRequested) break;
        if (pauseRequested) return 'continue-as-new';
      }
      if (!rulesSynced) {
        try {
          const applied = await ruleActivities.syncRules(rules);
          rules = applied.map(({ value, tag }) => (tag ? { value, tag } : { value }));
          rulesSynced = true;
        } catch (err) {
          // A bad rule or token cannot fix itself: pause with the reason until an operator acts.
          lastError = errorMessage(err);
          log.error('rule sync failed; pausing until resume or setRules', { error: lastError });
          pauseRequested = true;
          continue;
        }
      }
      setState('running');
      streamScope = new CancellationScope();
      try {
        await streamScope.run(() =>
          streamActivity(rules)({ supervisorWorkflowId: info.workflowId, backfillMinutes }),
        );
      } catch (err) {
        if (!isCancellation(err)) {
          lastError = errorMessage(err);
          log.error('stream activity failed; pausing until resume', { error: lastError });
          pauseRequested = true;
        }
      } finally {
        streamScope = undefined;
      }
      if (shouldContinueAsNew() && !stopRequested) return 'continue-as-new';
    }
    return 'stopped';
  }

  // A loop that ends the stream for continue-as-new when history grows.
  const canWatcher = CancellationScope.nonCancellable(async () => {
    await condition(() => stopRequested || (shouldContinueAsNew() && state === 'running'));
    if (!stopRequested) streamScope?.cancel();
  });

  publishState();
  const childLoops = [
    ...(wantLoad ? [keepChild('load')] : []),
    ...(wantQuality ? [keepChild('quality')] : []),
  ];
  const outcome = await runStream();

  if (outcome === 'continue-as-new') {
    await condition(allHandlersFinished);
    const next: CarriedState = {
      state: pauseRequested ? 'paused' : 'running',
      settings,
      rules,
      base: { ...totals(), connected: false },
      publishedByMinute,
      children,
      lastDataQuality,
      lastError,
      generation: generation + 1,
      startedAt,
    };
    // Children are cancelled by the parent-close policy and restarted by the next run.
    return continueAsNew<typeof supervisorWorkflow>({ ...input, carried: next });
  }

  // stop: the stream is closed and flushed. The load child finishes its current batch on `stop`;
  // the quality child is cancelled (it holds no data).
  setState('stopping');
  if (childHandles.load) {
    try {
      await childHandles.load.signal(loadStopSignal);
    } catch (err) {
      log.warn('could not signal the load child to stop', { error: errorMessage(err) });
      childScopes.load.cancel();
    }
  }
  childScopes.quality.cancel();
  await Promise.all(childLoops);
  await canWatcher;
  base = { ...totals(), connected: false };
  live.clear();
  setState('stopped');
  await condition(allHandlersFinished);
  return status();
}
