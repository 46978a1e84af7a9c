/**
 * Activities of the stream worker: rule management and the long-running stream → Pub/Sub activity.
 * Thin factory over adapters (X source, X rules client, Pub/Sub publisher); the worker is the
 * composition root.
 */
import { ApplicationFailure, Context, activityInfo } from '@temporalio/activity';
import { missingLaneSubscriptions } from '../adapters/pubsub/admin';
import type { PubSub } from '@google-cloud/pubsub';
import type { AppConfig } from '../config';
import { classifyXError } from '../adapters/x/errors';
import type { XRulesClient } from '../adapters/x/rules-client';
import type { StreamMessage, XStreamSource, StreamEvent } from '../adapters/x/stream-source';
import { PostPublisher, publisherSettings } from '../adapters/pubsub/publisher';
import { WORKER_SHUTDOWN_FAILURE_TYPE, XFailureType } from '../domain/failure-types';
import type { BudgetNotice, BudgetSettings } from '../domain/budget';
import { GapTracker, type GapFillSettings, type GapReport, type OpenGap } from '../domain/gaps';
import { postJson } from '../adapters/webhook';
import type { PostAttributes } from '../domain/post';
import {
  emptyProgress,
  type MinuteCount,
  type PipelineStatus,
  type ProgressReport,
  type StreamProgress,
} from '../domain/pipeline-status';
import type { ActiveRule, StreamRule } from '../domain/rules';
import { statusQuery } from '../workflows/messages';
import type { Logger } from '../observability/logger';
import type { Metrics } from '../observability/metrics';

/** Non-secret settings the supervisor resolves from the worker's configuration once per start. */
export interface WorkerSettings {
  rules: StreamRule[];
  batchTaskQueue: string;
  backfillMinutes: number;
  loadIntervalMs: number;
  loadBatchSize: number;
  loadBacklogThreshold: number;
  /** LOAD_LANES; absent in supervisors started before lanes existed (one lane). */
  loadLanes?: number;
  dqIntervalMs: number;
  /** Absent in supervisors started before gap fill existed (the defaults apply). */
  gapFill?: GapFillSettings;
  budget?: BudgetSettings;
}

export interface StreamActivityInput {
  supervisorWorkflowId: string;
  /** Ask X to replay up to this many missed minutes after a gap (0 = off). */
  backfillMinutes: number;
  /**
   * The gap the supervisor has open (the stream was not delivering since `start`: a pause, a failed
   * attempt, a continue-as-new); the first post this activity receives closes and reports it.
   */
  gap?: OpenGap;
}

export interface StreamActivityResult {
  postsPublished: number;
  malformedPublished: number;
  stoppedBecause: 'cancelled' | 'worker-shutdown';
}

/** What the activity heartbeats; a retried attempt reads it back (e.g. to ask for backfill minutes). */
export interface StreamHeartbeat {
  progress: StreamProgress;
  /** Epoch ms of the last post received, for backfill after a crash. */
  lastPostAtMs?: number;
  /** X's `created_at` of the newest post received: a retried attempt's gap starts there. */
  lastPostCreatedAt?: string;
  /** The gap open when the attempt heartbeated (a disconnect not yet followed by a post). */
  openGap?: OpenGap;
  /** Gaps closed but not yet delivered to the supervisor in a progress report. */
  pendingGaps?: GapReport[];
}

/**
 * Where the gap tracker of an attempt starts. A first attempt carries the supervisor's open gap; a
 * retried attempt (its predecessor crashed, was shut down or timed out) carries its predecessor's
 * heartbeat: its open gap, its unreported gaps, and otherwise a `worker-restart` gap from the
 * predecessor's last post (or, before any post, the supervisor's gap or the predecessor's start).
 */
export function carriedGaps(
  input: Pick<StreamActivityInput, 'gap'>,
  previous: StreamHeartbeat | undefined,
): ConstructorParameters<typeof GapTracker>[1] {
  if (!previous) return { open: input.gap };
  const start =
    previous.lastPostCreatedAt ??
    input.gap?.start ??
    previous.progress.connectedSince ??
    previous.progress.updatedAt;
  const open: OpenGap | undefined =
    previous.openGap ?? (start ? { start, reason: 'worker-restart' } : undefined);
  return { open, closed: previous.pendingGaps, lastPostCreatedAt: previous.lastPostCreatedAt };
}

export interface StreamActivityDeps {
  config: Pick<AppConfig, 'x' | 'publish' | 'gcp' | 'load' | 'dq' | 'temporal'>;
  /** Injected for tests: where budget warnings are POSTed. @default the webhook adapter */
  postWebhook?: typeof postJson;
  logger: Logger;
  metrics?: Metrics;
  pubsub: PubSub | undefined;
  /** Builds the X source (one connection at a time). */
  createSource: () => XStreamSource;
  /** Undefined when no bearer token is configured. */
  rulesClient: XRulesClient | undefined;
  /** Delivers a progress report to the supervisor (a Temporal signal in production). */
  reportProgress: (workflowId: string, report: ProgressReport) => Promise<void>;
  /** Aborted when the worker begins a graceful shutdown. */
  shutdownSignal?: AbortSignal;
  /** Override for tests: publish function instead of Pub/Sub. */
  publishFn?: (data: Buffer, attributes: Record<string, string>) => Promise<string>;
  /** Size of the recent-id window used to suppress exact duplicate deliveries. */
  dedupWindow?: number;
  /**
   * Reads the supervisor's status after each progress report, for the budget and open-gap gauges
   * (only with `metrics`). @default the `status` query through the activity context's client
   */
  readStatus?: (workflowId: string) => Promise<PipelineStatus>;
}

const MINUTE = 60_000;
/** How many minutes of published counts a report may carry (older deltas are folded in). */
const MAX_MINUTES_PER_REPORT = 240;

export function minuteOf(iso: string): string {
  const t = Date.parse(iso);
  const ms = Number.isNaN(t) ? Date.now() : t;
  return new Date(Math.floor(ms / MINUTE) * MINUTE).toISOString();
}

/** A bounded set of recently seen ids (FIFO eviction). */
export class RecentIds {
  private readonly set = new Set<string>();
  constructor(private readonly capacity: number) {}
  /** Returns true when `id` was already present. */
  seen(id: string): boolean {
    if (this.set.has(id)) return true;
    this.set.add(id);
    if (this.set.size > this.capacity) {
      const oldest = this.set.values().next().value as string;
      this.set.delete(oldest);
    }
    return false;
  }
}

/**
 * Minutes of backfill a (retried) attempt asks X for, at most `cap`: since the last post the previous
 * attempt heartbeated, or since its last heartbeat when it had none yet. The SDK throttles heartbeats
 * (to ~0.8 × the heartbeat timeout), so a crash soon after a start leaves only the first heartbeat,
 * sent before any post: the gap starts there. A retry with no heartbeat at all asks for the cap.
 */
export function resumeBackfillMinutes(
  cap: number,
  attempt: number,
  previous: StreamHeartbeat | undefined,
  now = Date.now(),
): number {
  if (cap <= 0) return 0;
  const since = previous?.lastPostAtMs ?? (previous ? Date.parse(previous.progress.updatedAt ?? '') : NaN);
  if (Number.isFinite(since)) return Math.min(cap, Math.max(1, Math.ceil((now - since) / MINUTE)));
  return attempt > 1 ? cap : 0;
}

export function createStreamActivities(deps: StreamActivityDeps) {
  const { config, logger, metrics } = deps;
  metrics?.loadIntervalSeconds.set(config.load.intervalMs / 1000);
  /** A failure the supervisor does not retry holds the stream until an operator acts. */
  const pausesSupervisor = (err: unknown): void => {
    if (err instanceof ApplicationFailure && err.nonRetryable)
      metrics?.pausedByItself.set({ reason: err.type ?? 'unknown' }, 1);
  };

  function requireRules(): XRulesClient {
    if (!deps.rulesClient) {
      throw ApplicationFailure.nonRetryable(
        'no X bearer token configured on the stream worker: set X_BEARER_TOKEN or X_BEARER_TOKEN_FILE',
        XFailureType.auth,
      );
    }
    return deps.rulesClient;
  }

  /**
   * Calls X, heartbeating every 5 s meanwhile: the rule activities have a short heartbeat timeout,
   * so a worker that dies in the middle of a rule sync is noticed in seconds, not after the
   * activity's whole start-to-close timeout (a demo whose stream worker was killed right after
   * start waited two minutes for its rules).
   */
  async function callX<T>(fn: () => Promise<T>): Promise<T> {
    const ctx = Context.current();
    const beat = setInterval(() => ctx.heartbeat(), 5000);
    try {
      return await fn();
    } catch (err) {
      throw classifyXError(err);
    } finally {
      clearInterval(beat);
    }
  }

  return {
    /** The worker's non-secret settings; the supervisor records them in history once per run. */
    async resolveSettings(): Promise<WorkerSettings> {
      // With several lanes, a lane whose subscription does not exist would lose its posts on real
      // Pub/Sub (a message no subscription matches is dropped): refuse to start until `setup` ran.
      if (config.load.lanes > 1 && deps.pubsub) {
        const missing = await missingLaneSubscriptions(deps.pubsub, config.gcp, config.load.lanes);
        if (missing.length > 0) {
          throw ApplicationFailure.nonRetryable(
            `LOAD_LANES=${config.load.lanes} but the lane subscription(s) ${missing.join(', ')} do not exist: ` +
              "run `npm run setup` (or the image's setup) with this LOAD_LANES first",
            'LaneSubscriptionsMissing',
          );
        }
      }
      return {
        rules: config.x.rules,
        batchTaskQueue: config.temporal.batchTaskQueue,
        backfillMinutes: config.x.backfillMinutes,
        loadIntervalMs: config.load.intervalMs,
        loadBatchSize: config.load.batchSize,
        loadBacklogThreshold: config.load.backlogThreshold,
        loadLanes: config.load.lanes,
        dqIntervalMs: config.dq.intervalMs,
        gapFill: config.x.gapFill,
        budget: config.x.budget,
      };
    },

    /**
     * A read-budget warning (80 %, 100 %) or X's usage cap: logged, counted
     * (`x_read_budget_warnings_total`, `x_read_budget_used_ratio`) and POSTed to `DQ_WEBHOOK_URL`
     * when set. Never fails: a webhook that is down must not hold the supervisor.
     */
    async notifyBudget(n: BudgetNotice): Promise<{ delivered: boolean }> {
      const { status } = n;
      metrics?.budgetWarnings.inc({ level: n.level });
      if (status.monthlyPosts) metrics?.budgetUsedRatio.set(status.monthPosts / status.monthlyPosts);
      metrics?.budgetMonthPosts.set(status.monthPosts);
      if (n.level !== 'warn') metrics?.pausedByItself.set({ reason: n.level }, 1);
      const text =
        n.level === 'x-usage-cap'
          ? `X usage cap reached for stream ${n.streamName}: ${status.hold?.detail ?? ''}; the stream is held until ${status.hold?.until ?? 'an operator resumes it'}`
          : `X read budget ${n.level === 'warn' ? 'at 80 %' : 'exhausted'} for stream ${n.streamName}: ${status.monthPosts} of ${status.monthlyPosts} posts read in ${status.month} (about $${status.estimatedCostMonthUsd})${n.level === 'exhausted' ? `; the stream is held until ${status.hold?.until ?? 'the month turns'} or setBudget raises it` : ''}`;
      logger.warn({ level: n.level, month: status.month, monthPosts: status.monthPosts }, text);
      const url = config.dq.webhookUrl;
      if (!url) return { delivered: false };
      const res = await (deps.postWebhook ?? postJson)(
        url,
        { kind: 'x-read-budget', text, ...n },
        { logger },
      );
      return { delivered: res.delivered };
    },

    /** Validates rules with X's `dry_run`; rejects (non-retryable `XRuleError`) with X's reasons. */
    async validateRules(rules: StreamRule[]): Promise<void> {
      await callX(() => requireRules().validate(rules));
    },

    /** Makes X's rule set equal to `rules` (dry-run first, never half-applied); returns the applied set. */
    async syncRules(rules: StreamRule[]): Promise<ActiveRule[]> {
      const result = await callX(() => requireRules().sync(rules)).catch((err: unknown) => {
        pausesSupervisor(err);
        throw err;
      });
      logger.info(
        {
          added: result.added.length,
          deleted: result.deleted.length,
          rules: result.applied.map((r) => r.value),
        },
        'X stream rules synced',
      );
      return result.applied;
    },

    /**
     * Holds the X filtered stream open and publishes every message to Pub/Sub until cancelled
     * (pause/stop) or the worker shuts down. Heartbeats progress; reports it to the supervisor.
     */
    async streamToPubSub(input: StreamActivityInput): Promise<StreamActivityResult> {
      const ctx = Context.current();
      const info = activityInfo();
      const previous = info.heartbeatDetails as StreamHeartbeat | undefined;
      const reporter = `${info.workflowExecution?.runId}/${info.activityId}/${info.attempt}`;
      const progress = emptyProgress();
      let lastPostAtMs = previous?.lastPostAtMs;
      const pendingMinutes = new Map<string, number>();
      const recent = new RecentIds(deps.dedupWindow ?? 100_000);
      let sequence = 0;
      const gaps = new GapTracker(reporter, carriedGaps(input, previous));
      progress.lastPostCreatedAt = gaps.lastPostCreatedAt;
      // The supervisor wants the stream: whatever held it before is over.
      metrics?.pausedByItself.reset();
      metrics?.streamRunning.set(1);
      /** Gaps the supervisor holds unfilled (from its status after each report). */
      let supervisorGaps = 0;
      const readStatus =
        deps.readStatus ?? (async (id: string) => ctx.client.workflow.getHandle(id).query(statusQuery));

      // After a crash or a gap, ask X for the minutes missed (Enterprise; capped at 5, 0 = off).
      const backfillMinutes = resumeBackfillMinutes(input.backfillMinutes, info.attempt, previous);

      const publisher = new PostPublisher(deps.pubsub, {
        ...publisherSettings(config),
        logger,
        publishFn: deps.publishFn,
        // Counted when Pub/Sub acknowledged, per minute of the message's received_at (reconciliation).
        onAcked: (attrs: PostAttributes, _id: string, receivedAt: string | undefined) => {
          const latencyMs = Date.now() - Date.parse(receivedAt ?? '');
          if (latencyMs >= 0) metrics?.publishLatency.observe({ source: 'stream' }, latencyMs / 1000);
          if (attrs.malformed === 'true') progress.malformedPublished += 1;
          else {
            progress.postsPublished += 1;
            metrics?.postsPublished.inc();
          }
          const minute = minuteOf(receivedAt ?? new Date().toISOString());
          pendingMinutes.set(minute, (pendingMinutes.get(minute) ?? 0) + 1);
        },
        onBackpressure: () => {
          progress.backpressurePauses += 1;
          metrics?.publishBackpressure.inc();
        },
        onPublishError: () => metrics?.publishErrors.inc(),
      });

      const stop = new AbortController();
      const onCancel = () => stop.abort();
      ctx.cancellationSignal.addEventListener('abort', onCancel);
      deps.shutdownSignal?.addEventListener('abort', onCancel);
      if (ctx.cancellationSignal.aborted || deps.shutdownSignal?.aborted) stop.abort();

      const source = deps.createSource();

      const heartbeat = () => {
        const s = source.stats();
        progress.connected = s.connected;
        if (s.connected) progress.connectedSince ??= s.lastConnectedAt ?? new Date().toISOString();
        progress.reconnects = s.reconnects;
        progress.reconnectsByReason = { ...s.reconnectsByReason };
        progress.lastError = s.lastError;
        progress.updatedAt = new Date().toISOString();
        metrics?.streamConnected.set(s.connected ? 1 : 0);
        metrics?.gapsOpen.set((gaps.open ? 1 : 0) + gaps.pending().length + supervisorGaps);
        const details: StreamHeartbeat = {
          progress,
          lastPostAtMs,
          lastPostCreatedAt: gaps.lastPostCreatedAt,
          openGap: gaps.open,
          pendingGaps: gaps.pending(),
        };
        ctx.heartbeat(details);
      };

      let reporting: Promise<void> = Promise.resolve();
      const report = () => {
        // Reports are sequential: a slow Temporal never causes overlapping or reordered reports.
        reporting = reporting.then(async () => {
          const minutes: MinuteCount[] = [...pendingMinutes.entries()]
            .sort(([a], [b]) => (a < b ? -1 : 1))
            .slice(-MAX_MINUTES_PER_REPORT)
            .map(([minute, published]) => ({ minute, published }));
          const sent = new Map(minutes.map((m) => [m.minute, m.published]));
          sequence += 1;
          const closedGaps = gaps.pending();
          try {
            await deps.reportProgress(input.supervisorWorkflowId, {
              reporter,
              sequence,
              progress: { ...progress, reconnectsByReason: { ...progress.reconnectsByReason } },
              publishedByMinute: minutes,
              ...(closedGaps.length > 0 ? { gaps: closedGaps } : {}),
            });
            gaps.acknowledge(closedGaps.map((g) => g.id));
            // Only what was delivered is subtracted; counts that arrived meanwhile stay pending.
            for (const [minute, n] of sent) {
              const left = (pendingMinutes.get(minute) ?? 0) - n;
              if (left > 0) pendingMinutes.set(minute, left);
              else pendingMinutes.delete(minute);
            }
            if (metrics) {
              const st = await readStatus(input.supervisorWorkflowId).catch(() => undefined);
              if (st?.budget) metrics.budgetMonthPosts.set(st.budget.monthPosts);
              if (st?.budget?.monthlyPosts)
                metrics.budgetUsedRatio.set(st.budget.monthPosts / st.budget.monthlyPosts);
              if (st?.gaps) supervisorGaps = st.gaps.counts.pending;
            }
          } catch (err) {
            logger.warn(
              { err: (err as Error).message },
              'progress report to the supervisor failed; will retry',
            );
          }
        });
        return reporting;
      };

      const onMessage = async (m: StreamMessage): Promise<void> => {
        if (m.kind === 'post') {
          const post = m.post;
          progress.postsReceived += 1;
          metrics?.postsReceived.inc();
          progress.lastPostId = post.id;
          progress.lastPostAt = post.received_at;
          lastPostAtMs = Date.parse(post.received_at);
          gaps.post(post.created_at);
          progress.lastPostCreatedAt = gaps.lastPostCreatedAt;
          if (recent.seen(post.id)) {
            progress.duplicatesSuppressed += 1;
            return;
          }
          await publisher.publishPost(post);
        } else {
          metrics?.malformedMessages.inc();
          await publisher.publishMalformed(m.message);
        }
      };

      const onEvent = (e: StreamEvent) => {
        if (e.type !== 'disconnected') return;
        metrics?.reconnects.inc({ reason: e.reason });
        // Our own close (pause, stop, shutdown) is the supervisor's gap to record, not this attempt's.
        if (!stop.signal.aborted) gaps.stopped(`disconnect:${e.reason}`, new Date().toISOString());
      };

      heartbeat();
      const progressEvery = config.publish.progressReportIntervalMs;
      const hbTimer = setInterval(heartbeat, config.publish.heartbeatIntervalMs);
      const reportTimer = setInterval(() => void report(), progressEvery);
      let failure: unknown;
      try {
        await source.run({ signal: stop.signal, onMessage, onEvent, backfillMinutes });
      } catch (err) {
        failure = err;
      } finally {
        clearInterval(hbTimer);
        clearInterval(reportTimer);
        const { unacked } = await publisher.close();
        if (unacked > 0) logger.error({ unacked }, 'stream stopped with unacknowledged publishes');
        heartbeat();
        progress.connected = false;
        progress.connectedSince = undefined;
        await report();
        ctx.cancellationSignal.removeEventListener('abort', onCancel);
        deps.shutdownSignal?.removeEventListener('abort', onCancel);
        metrics?.streamConnected.set(0);
        metrics?.streamRunning.set(0);
      }
      if (failure) {
        const classified = classifyXError(failure);
        pausesSupervisor(classified);
        throw classified;
      }
      if (deps.shutdownSignal?.aborted && !ctx.cancellationSignal.aborted) {
        // Retryable on purpose: another worker picks the stream up (after the heartbeat timeout at worst).
        throw ApplicationFailure.retryable('stream worker is shutting down', WORKER_SHUTDOWN_FAILURE_TYPE);
      }
      return {
        postsPublished: progress.postsPublished,
        malformedPublished: progress.malformedPublished,
        stoppedBecause: 'cancelled',
      };
    },
  };
}

export type StreamActivities = ReturnType<typeof createStreamActivities>;
