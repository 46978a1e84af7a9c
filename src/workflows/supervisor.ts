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
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  startChild,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
  type ActivityOptions,
  type ChildWorkflowHandle,
} from '@temporalio/workflow';
import type { ComplianceSettings, createComplianceActivities } from '../activities/compliance';
import type { WorkerSettings, createStreamActivities } from '../activities/stream';
import {
  addReads,
  budgetLevel,
  budgetStatus,
  emptyUsage,
  nextMonthStart,
  rollUsage,
  type BudgetNotice,
  type BudgetSettings,
  type BudgetStatus,
  type ReadUsage,
} from '../domain/budget';
import { XFailureType, causeMessage as errorMessage, causeType } from '../domain/failure-types';
import {
  DEFAULT_GAP_FILL,
  applyFillResult,
  countGaps,
  recordGaps,
  type Gap,
  type GapFillResult,
  type GapReason,
  type OpenGap,
} from '../domain/gaps';
import type {
  ChildStatus,
  ComplianceStatus,
  DataQualityVerdict,
  MinuteCount,
  PipelineState,
  PipelineStatus,
  ProgressReport,
  StreamProgress,
} from '../domain/pipeline-status';
import {
  complianceWorkflowId,
  emptyProgress,
  gapFillWorkflowId,
  loadWorkflowId,
  qualityWorkflowId,
} from '../domain/pipeline-status';
import { validateRules, type ActiveRule, type StreamRule } from '../domain/rules';
import { complianceWorkflow } from './compliance';
import { gapFillWorkflow } from './gap-fill';
import { loadWorkflow } from './load';
import {
  complianceRunSignal,
  dataQualityVerdictSignal,
  fillGapsSignal,
  gapFilledSignal,
  loadStopSignal,
  pauseSignal,
  progressSignal,
  resumeSignal,
  runChecksSignal,
  setBudgetUpdate,
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
  /** Start the load, quality, gap-fill and compliance children. @default true */
  children?: { load?: boolean; quality?: boolean; gapFill?: boolean; compliance?: boolean };
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
  children: PipelineStatus['children'];
  lastDataQuality?: DataQualityVerdict;
  lastError?: string;
  generation: number;
  startedAt: string;
  /** The gap ledger (unfinished gaps and the newest finished ones), its totals, the gap open now. */
  gaps?: { ledger: Gap[]; found: number; postsFilled: number; open?: OpenGap };
  /** Posts read from X this day and month; the budget an operator set (`null` = no limit); a hold. */
  budget?: {
    usage: ReadUsage;
    counted: number;
    monthlyPosts?: number | null;
    hold?: BudgetStatus['hold'];
  };
  /** The compliance child's settings (resolved once) and its last reported state. */
  compliance?: { settings: ComplianceSettings; state?: ComplianceStatus };
}

const STREAM_HEARTBEAT_TIMEOUT = '30 seconds';

const settingsActivities = proxyActivities<ReturnType<typeof createStreamActivities>>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds' },
});

const ruleActivities = proxyActivities<ReturnType<typeof createStreamActivities>>({
  startToCloseTimeout: '2 minutes',
  // The activities heartbeat every 5 s while they wait on X: a dead worker is noticed in 15 s.
  heartbeatTimeout: '15 seconds',
  retry: {
    initialInterval: '2 seconds',
    maximumInterval: '1 minute',
    maximumAttempts: 5,
    nonRetryableErrorTypes: [XFailureType.rule, XFailureType.auth],
  },
});

const budgetActivities = proxyActivities<ReturnType<typeof createStreamActivities>>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 3 },
});

const complianceActivities = proxyActivities<ReturnType<typeof createComplianceActivities>>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds' },
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
    lastPostCreatedAt: laterOf(a.lastPostCreatedAt, b.lastPostCreatedAt),
    lastError: b.lastError ?? a.lastError,
    updatedAt: b.updatedAt ?? a.updatedAt,
  };
}

/** The later of two ISO times (either may be absent). */
function laterOf(a: string | undefined, b: string | undefined): string | undefined {
  if (!a || !b) return a ?? b;
  return Date.parse(b) > Date.parse(a) ? b : a;
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

export async function supervisorWorkflow(input: SupervisorInput): Promise<PipelineStatus> {
  const info = workflowInfo();
  const keepMinutes = input.reconciliationMinutes ?? 180;
  const maxEvents = input.maxHistoryEvents ?? 10_000;
  const wantLoad = input.children?.load ?? true;
  const wantQuality = input.children?.quality ?? true;
  const wantGapFill = input.children?.gapFill ?? true;

  const carried = input.carried;
  const settings: WorkerSettings = carried?.settings ?? (await settingsActivities.resolveSettings());
  let state: PipelineState = carried?.state ?? (input.startPaused ? 'paused' : 'starting');
  let rules: StreamRule[] = carried?.rules ?? input.rules ?? settings.rules;
  let base: StreamProgress = carried?.base ?? emptyProgress();
  let publishedByMinute: MinuteCount[] = carried?.publishedByMinute ?? [];
  const loadLanes = settings.loadLanes ?? 1;
  const children = carried?.children ?? {
    load: childStatus(loadWorkflowId(input.streamName, 0, loadLanes)),
    quality: childStatus(qualityWorkflowId(input.streamName)),
  };
  // One load child per lane (lane 0 is `children.load`); see domain/lanes.ts.
  if (loadLanes > 1 && !children.loadLanes) {
    children.loadLanes = Array.from({ length: loadLanes - 1 }, (_, i) =>
      childStatus(loadWorkflowId(input.streamName, i + 1, loadLanes)),
    );
  }
  let lastDataQuality = carried?.lastDataQuality;
  let lastError = carried?.lastError;
  const generation = carried?.generation ?? 0;
  const startedAt = carried?.startedAt ?? new Date().toISOString();
  const backfillMinutes = input.backfillMinutes ?? settings.backfillMinutes;
  // Supervisors started before gap fill and the read budget replay without them.
  const gapFillVersion = patched('gap-fill-and-read-budget');
  const gapFill = settings.gapFill ?? DEFAULT_GAP_FILL;
  // Supervisors started before the compliance child replay without it.
  const complianceVersion = patched('compliance-child');
  const complianceSettings: ComplianceSettings | undefined =
    carried?.compliance?.settings ??
    (complianceVersion && (input.children?.compliance ?? true)
      ? await complianceActivities.resolveComplianceSettings()
      : undefined);
  const wantCompliance =
    complianceVersion && (input.children?.compliance ?? true) && complianceSettings?.enabled === true;
  let complianceState: ComplianceStatus | undefined = carried?.compliance?.state;

  // --- the gap ledger ---
  let gapLedger: Gap[] = carried?.gaps?.ledger ?? [];
  let gapsFound = carried?.gaps?.found ?? 0;
  let postsFilled = carried?.gaps?.postsFilled ?? 0;
  /** The stream is not delivering since `start` (set when an attempt ends, cleared by its successor's first post). */
  let openGap: OpenGap | undefined = carried?.gaps?.open;
  const skipGap = (r: { reason: GapReason }) =>
    !gapFill.enabled || (r.reason === 'paused' && !gapFill.onResume);

  // --- the read budget ---
  let usage: ReadUsage = carried?.budget?.usage ?? emptyUsage(Date.now());
  /** Posts received by the stream already added to `usage`. */
  let countedReceived = carried?.budget?.counted ?? 0;
  let monthlyPosts: number | null | undefined = carried?.budget
    ? carried.budget.monthlyPosts
    : settings.budget?.monthlyPosts;
  let hold: BudgetStatus['hold'] = carried?.budget?.hold;
  const notices: BudgetNotice[] = [];
  const budgetSettings = (): BudgetSettings => ({
    costPerPostUsd: settings.budget?.costPerPostUsd ?? 0.005,
    ...(typeof monthlyPosts === 'number' ? { monthlyPosts } : {}),
  });

  // Progress of the activity attempt(s) currently reporting, keyed by reporter.
  const live = new Map<string, { sequence: number; progress: StreamProgress }>();
  let stopRequested = state === 'stopping';
  let pauseRequested = state === 'paused';
  let streamScope: CancellationScope | undefined;
  /**
   * Why the running attempt is being ended, decided when the end is asked for: the attempt takes
   * seconds to close (cancellation reaches it at its next heartbeat, then the close drain), and an
   * operator may have resumed meanwhile.
   */
  let endReason: GapReason | undefined;

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
    gaps: {
      counts: countGaps(gapLedger, openGap?.start, { found: gapsFound, postsFilled }),
      ...(openGap ? { open: openGap } : {}),
      ledger: gapLedger,
    },
    budget: budgetStatus(usage, budgetSettings(), hold),
    ...(complianceState ? { compliance: complianceState } : {}),
  });

  /** The Web UI's "current details" of the supervisor: state, gaps and reads at a glance (no command). */
  const describe = () => {
    const c = countGaps(gapLedger, openGap?.start, { found: gapsFound, postsFilled });
    const b = budgetStatus(usage, budgetSettings(), hold);
    setCurrentDetails(
      [
        `**${state}**${hold ? ` (${hold.by}: ${hold.detail}; until ${hold.until})` : ''}`,
        `gaps: ${c.found} found, ${c.open} open, ${c.pending} pending, ${c.filled} filled, ${c.unrecoverable} unrecoverable, ${c.skipped} skipped; ${c.postsFilled} posts filled`,
        `reads: ${b.dayPosts} today, ${b.monthPosts} in ${b.month}${b.monthlyPosts ? ` of ${b.monthlyPosts}` : ''} (about $${b.estimatedCostMonthUsd})`,
      ].join('\n\n'),
    );
  };

  /** Rolls the counters, raises each warning level once a month, holds the stream when spent. */
  const checkBudget = () => {
    const now = Date.now();
    usage = rollUsage(usage, now);
    const level = budgetLevel(usage, budgetSettings());
    if (hold?.by === 'budget' && level !== 'exhausted') hold = undefined;
    const percent = level === 'exhausted' ? 100 : level === 'warn' ? 80 : 0;
    if (percent < usage.warnedPercent) usage = { ...usage, warnedPercent: percent };
    if (level === 'exhausted' && !hold) {
      hold = {
        by: 'budget',
        detail: `${usage.monthPosts} posts read in ${usage.month}, budget ${budgetSettings().monthlyPosts}`,
        until: new Date(nextMonthStart(now)).toISOString(),
      };
      if (streamScope) endReason ??= 'stream-restart';
      streamScope?.cancel();
    }
    if (percent > usage.warnedPercent) {
      usage = { ...usage, warnedPercent: percent };
      const notice: BudgetNotice = {
        streamName: input.streamName,
        level: level === 'exhausted' ? 'exhausted' : 'warn',
        status: budgetStatus(usage, budgetSettings(), hold),
      };
      log.warn('X read budget warning', { level: notice.level, monthPosts: usage.monthPosts });
      notices.push(notice);
    }
    describe();
  };

  /** Adds what the stream received since the last count to the read usage. */
  const countStreamReads = () => {
    const received = totals().postsReceived;
    if (received > countedReceived) {
      usage = addReads(usage, received - countedReceived, Date.now());
      countedReceived = received;
      checkBudget();
    }
  };

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
    if (streamScope) endReason ??= 'paused';
    streamScope?.cancel();
  });

  setHandler(resumeSignal, () => {
    if (stopRequested) return;
    pauseRequested = false;
    lastError = undefined;
    // The operator says X's cap was lifted; a spent budget is raised with setBudget instead.
    if (hold?.by === 'x-usage-cap') hold = undefined;
  });

  setHandler(
    setBudgetUpdate,
    ({ monthlyPosts: next }): BudgetStatus => {
      monthlyPosts = next;
      checkBudget();
      log.info('read budget set', { monthlyPosts: next });
      return budgetStatus(usage, budgetSettings(), hold);
    },
    {
      validator: (arg: { monthlyPosts: number | null }) => {
        const v = arg?.monthlyPosts;
        if (v !== null && !(typeof v === 'number' && Number.isInteger(v) && v > 0)) {
          throw new Error(
            `setBudget expects {"monthlyPosts": <positive integer>} or {"monthlyPosts": null} for no limit; got ${JSON.stringify(arg)}`,
          );
        }
      },
    },
  );

  setHandler(complianceRunSignal, (s: ComplianceStatus) => {
    if (!complianceState || s.runs >= complianceState.runs) complianceState = s;
  });
  setHandler(gapFilledSignal, (r: GapFillResult) => {
    gapLedger = applyFillResult(gapLedger, r, new Date().toISOString());
    postsFilled += r.postsPublished;
    usage = addReads(usage, r.postsRead, Date.now(), true);
    checkBudget();
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
    if (report.gaps?.length) {
      const known = new Set(gapLedger.map((g) => g.id));
      gapLedger = recordGaps(gapLedger, report.gaps, new Date().toISOString(), skipGap);
      gapsFound += gapLedger.filter((g) => !known.has(g.id)).length;
    }
    // The attempt is delivering: the gap the supervisor held open is closed (and reported by it).
    if (report.progress.postsReceived > 0 && streamScope) openGap = undefined;
    countStreamReads();
    describe();
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
  /** `load` is lane 0; `load-<k>` the load child of lane k ≥ 1. */
  type ChildKind = 'load' | 'quality' | 'gapFill' | 'compliance' | `load-${number}`;
  const childHandles: Partial<Record<ChildKind, ChildWorkflowHandle<never>>> = {};
  const laneKinds: ChildKind[] = Array.from({ length: loadLanes - 1 }, (_, i) => `load-${i + 1}` as const);
  const childScopes = Object.fromEntries(
    (['load', 'quality', 'gapFill', 'compliance', ...laneKinds] as ChildKind[]).map((k) => [
      k,
      new CancellationScope(),
    ]),
  ) as Record<ChildKind, CancellationScope>;
  const laneOfKind = (kind: ChildKind) => (kind === 'load' ? 0 : Number(kind.slice('load-'.length)));
  const statusOf = (kind: ChildKind): ChildStatus =>
    kind === 'load' || kind === 'quality' || kind === 'gapFill' || kind === 'compliance'
      ? children[kind]!
      : children.loadLanes![laneOfKind(kind) - 1]!;
  children.gapFill ??= childStatus(gapFillWorkflowId(input.streamName));
  if (wantCompliance) children.compliance ??= childStatus(complianceWorkflowId(input.streamName));

  function startCompliance() {
    const s = complianceSettings!;
    return startChild(complianceWorkflow, {
      workflowId: children.compliance!.workflowId,
      // The stream worker's queue: the X token is there (and the BigQuery configuration).
      taskQueue: info.taskQueue,
      args: [
        {
          streamName: input.streamName,
          parentWorkflowId: info.workflowId,
          intervalMs: s.intervalMs,
          mode: s.mode,
          maxIdsPerJob: s.maxIdsPerJob,
          ...(complianceState ? { state: complianceState } : {}),
          ...(complianceState?.lastRun
            ? {
                nextRunAt: new Date(
                  Date.parse(complianceState.lastRun.finishedAt) + s.intervalMs,
                ).toISOString(),
              }
            : {}),
        },
      ],
      parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
      staticSummary: `X compliance of ${input.streamName}: batch compliance jobs → ${s.mode} in posts`,
    });
  }

  /** The ledger's gaps in `states`, as the reports the gap-fill child takes. */
  const gapsIn = (...states: Gap['state'][]) =>
    gapLedger
      .filter((g) => states.includes(g.state))
      .map(({ id, start, end, reason }) => ({ id, start, end, reason }));
  /** Unfinished gaps, handed to the gap-fill child when it starts (it may have lost its queue). */
  const unfinishedGaps = () => gapsIn('pending', 'filling');
  const markFilling = (ids: string[]) => {
    const set = new Set(ids);
    gapLedger = gapLedger.map((g) =>
      set.has(g.id) && g.state === 'pending' ? { ...g, state: 'filling' } : g,
    );
  };

  function startGapFill() {
    const gaps = unfinishedGaps();
    markFilling(gaps.map((g) => g.id));
    return startChild(gapFillWorkflow, {
      workflowId: children.gapFill!.workflowId,
      // The stream worker's queue: the fill activity needs the X token and the publisher.
      taskQueue: info.taskQueue,
      args: [
        {
          parentWorkflowId: info.workflowId,
          streamName: input.streamName,
          marginMs: gapFill.marginMs,
          fullArchive: gapFill.fullArchive,
          queue: gaps.map((gap) => ({ gap, rules })),
        },
      ],
      parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
      staticSummary: `Gap fill of ${input.streamName}: X search → Pub/Sub for every interval the stream missed`,
    });
  }

  /** Sends newly recorded gaps to the running gap-fill child. */
  async function dispatchGaps(): Promise<void> {
    for (;;) {
      await condition(
        () =>
          stopRequested ||
          (childHandles.gapFill !== undefined && gapLedger.some((g) => g.state === 'pending')),
      );
      if (stopRequested) return;
      const gaps = gapsIn('pending');
      try {
        await childHandles.gapFill!.signal(fillGapsSignal, { gaps, rules });
        markFilling(gaps.map((g) => g.id));
      } catch (err) {
        // The child is restarting: it gets every unfinished gap in its input.
        log.warn('could not send gaps to the gap-fill child', { error: errorMessage(err) });
        await condition(() => stopRequested || childHandles.gapFill === undefined);
      }
      describe();
    }
  }

  /** Hands budget warnings to the stream worker (log, metric, webhook), one at a time. */
  let noticesDone = false;
  async function sendNotices(): Promise<void> {
    for (;;) {
      await condition(() => notices.length > 0 || noticesDone);
      const notice = notices.shift();
      if (!notice) return;
      try {
        await budgetActivities.notifyBudget(notice);
      } catch (err) {
        log.warn('budget warning could not be sent', { error: errorMessage(err) });
      }
    }
  }

  function keepChild(kind: ChildKind): Promise<void> {
    return childScopes[kind]
      .run(() => superviseChild(kind))
      .catch((err) => {
        if (!isCancellation(err)) throw err;
        statusOf(kind).state = 'stopped';
      });
  }

  async function superviseChild(kind: ChildKind): Promise<void> {
    const st = statusOf(kind);
    let delayMs = 1000;
    while (!stopRequested) {
      try {
        const handle =
          kind === 'gapFill'
            ? await startGapFill()
            : kind === 'compliance'
              ? await startCompliance()
              : kind !== 'quality'
                ? await startChild(loadWorkflow, {
                    workflowId: st.workflowId,
                    taskQueue: settings.batchTaskQueue,
                    args: [
                      {
                        intervalMs: settings.loadIntervalMs,
                        batchSize: settings.loadBatchSize,
                        backlogThreshold: settings.loadBacklogThreshold,
                        ...(loadLanes > 1 ? { lane: laneOfKind(kind), lanes: loadLanes } : {}),
                      },
                    ],
                    parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
                    workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
                    staticSummary:
                      loadLanes > 1
                        ? `Pub/Sub → BigQuery loader of ${input.streamName}, lane ${laneOfKind(kind)} of ${loadLanes}`
                        : `Pub/Sub → BigQuery loader of ${input.streamName}`,
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
      if (hold) {
        // The monthly budget is spent or X's usage cap is reached: no X connection until the month
        // turns, an operator raises the budget (setBudget) or, for X's cap, resumes.
        setState('budget-exhausted');
        describe();
        const untilMs = Date.parse(hold.until);
        const cleared = await condition(
          () => !hold || stopRequested || shouldContinueAsNew(),
          Math.max(1000, untilMs - Date.now()),
        );
        if (stopRequested) break;
        if (!cleared && hold && Date.now() >= untilMs) {
          if (hold.by === 'x-usage-cap') hold = undefined;
          checkBudget(); // a new month: the counters roll over and a budget hold ends
        }
        if (hold) {
          if (shouldContinueAsNew()) return 'continue-as-new';
          continue;
        }
      }
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
      describe();
      streamScope = new CancellationScope();
      const attemptStartedAt = new Date().toISOString();
      endReason = undefined;
      let failed = false;
      try {
        await streamScope.run(() =>
          streamActivity(rules)({
            supervisorWorkflowId: info.workflowId,
            backfillMinutes,
            ...(openGap ? { gap: openGap } : {}),
          }),
        );
      } catch (err) {
        if (!isCancellation(err)) {
          failed = true;
          if (causeType(err) === XFailureType.usageCap) {
            // X says the app's cap is reached: hold, not a retry every minute.
            hold = {
              by: 'x-usage-cap',
              detail: errorMessage(err),
              until: new Date(nextMonthStart(Date.now())).toISOString(),
            };
            log.error('X usage cap reached; holding the stream', { error: hold.detail });
            notices.push({
              streamName: input.streamName,
              level: 'x-usage-cap',
              status: budgetStatus(usage, budgetSettings(), hold),
            });
          } else {
            lastError = errorMessage(err);
            log.error('stream activity failed; pausing until resume', { error: lastError });
            pauseRequested = true;
          }
        }
      } finally {
        streamScope = undefined;
      }
      if (!stopRequested) {
        // The stream stops delivering here: a gap opens at the last post received, closed by the
        // next attempt's first post. An operator's pause is the only intentional one.
        // An attempt that returned by itself was stopped by its worker shutting down.
        const reason: GapReason = failed
          ? 'stream-restart'
          : (endReason ?? (shouldContinueAsNew() ? 'continue-as-new' : 'worker-restart'));
        // Before any post, from when this attempt was scheduled: never later than the real start.
        openGap ??= { start: totals().lastPostCreatedAt ?? attemptStartedAt, reason };
      }
      countStreamReads();
      describe();
      if (shouldContinueAsNew() && !stopRequested) return 'continue-as-new';
    }
    return 'stopped';
  }

  // A loop that ends the stream for continue-as-new when history grows.
  const canWatcher = CancellationScope.nonCancellable(async () => {
    await condition(() => stopRequested || (shouldContinueAsNew() && state === 'running'));
    if (!stopRequested && streamScope) {
      endReason ??= 'continue-as-new';
      streamScope.cancel();
    }
  });

  publishState();
  describe();
  const childLoops = [
    ...(wantLoad ? [keepChild('load'), ...laneKinds.map(keepChild)] : []),
    ...(wantQuality ? [keepChild('quality')] : []),
    ...(wantGapFill && gapFillVersion ? [keepChild('gapFill')] : []),
    ...(wantCompliance ? [keepChild('compliance')] : []),
  ];
  const background = gapFillVersion ? [sendNotices()] : [];
  if (gapFillVersion && wantGapFill) void dispatchGaps();
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
      gaps: { ledger: gapLedger, found: gapsFound, postsFilled, ...(openGap ? { open: openGap } : {}) },
      budget: {
        usage,
        counted: countedReceived,
        ...(monthlyPosts !== undefined ? { monthlyPosts } : {}),
        ...(hold ? { hold } : {}),
      },
      ...(complianceSettings
        ? {
            compliance: {
              settings: complianceSettings,
              ...(complianceState ? { state: complianceState } : {}),
            },
          }
        : {}),
    };
    // Children are cancelled by the parent-close policy and restarted by the next run.
    return continueAsNew<typeof supervisorWorkflow>({ ...input, carried: next });
  }

  // stop: the stream is closed and flushed. The load child finishes its current batch on `stop`;
  // the quality child is cancelled (it holds no data).
  setState('stopping');
  for (const kind of ['load', ...laneKinds] as ChildKind[]) {
    const handle = childHandles[kind];
    if (!handle) continue;
    try {
      await handle.signal(loadStopSignal);
    } catch (err) {
      log.warn('could not signal a load child to stop', { child: kind, error: errorMessage(err) });
      childScopes[kind].cancel();
    }
  }
  childScopes.quality.cancel();
  childScopes.gapFill.cancel();
  childScopes.compliance.cancel();
  noticesDone = true;
  await Promise.all([...childLoops, ...background]);
  await canWatcher;
  base = { ...totals(), connected: false };
  live.clear();
  setState('stopped');
  await condition(allHandlersFinished);
  return status();
}
