/**
 * The data-quality activities: a thin factory over the BigQuery quality store, the stream's counters
 * (the supervisor's `status` query) and an optional webhook alerter (STYLE.md rule 3).
 *
 * `runQualityChecks` runs every enabled check for one run (`runId`, `asOf` chosen by the workflow,
 * so a retried attempt evaluates the same windows), writes one `dq_results` row per check
 * idempotently, logs and counts failing checks, and returns the verdict.
 *
 * `repairDuplicates` removes duplicate `posts` rows (keeping the earliest per id) and records them in
 * `load_repairs` (see `adapters/bigquery/repair.ts`); the workflow runs it when the uniqueness check
 * finds duplicates, and `npm run repair:duplicates` runs the same repair on demand.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { QualityStore } from '../adapters/bigquery/quality-queries';
import type { RemovedRow, RepairOptions, RepairReport, UnrepairableRow } from '../adapters/bigquery/repair';
import type { AlertSender } from '../adapters/webhook';
import type { Column } from '../domain/bigquery-schema';
import type { CheckOutcome, DataQualityVerdict, MinuteCount } from '../domain/pipeline-status';
import {
  CHECK_NAMES,
  checkError,
  closedWindow,
  evaluateCompleteness,
  evaluateDeadLetterRate,
  evaluateFreshness,
  evaluateReconciliation,
  evaluateSchemaDrift,
  evaluateUniqueness,
  evaluateValidity,
  evaluateVolume,
  lookbackWindow,
  resolveQualityChecks,
  toDqResultRow,
  verdictOf,
  volumeWindows,
  type CheckName,
  type CheckResult,
  type QualityChecksConfig,
  type QualityChecksOverrides,
} from '../domain/quality';
import type { Logger } from '../observability/logger';
import type { Metrics } from '../observability/metrics';

export interface QualityActivitiesDeps {
  store: QualityStore;
  logger: Logger;
  metrics?: Pick<Metrics, 'dqChecksFailed'>;
  /**
   * Messages the stream published per UTC minute of `received_at` in `[fromIso, toIso)`, from the
   * supervisor's `status` query; undefined when unavailable (reconciliation then reports ok,
   * "no stream counters").
   */
  publishedCounts: (fromIso: string, toIso: string) => Promise<MinuteCount[] | undefined>;
  /** Whether the stream reports connected; undefined = unknown (zero-volume rule skipped). */
  /** Connected now, and continuously since `since`? (see `StreamCounters.streamConnected`) */
  streamConnected?: (since?: string) => Promise<boolean | undefined>;
  /** When the pipeline (its supervisor) first started, ISO; undefined when unknown. */
  pipelineStartedAt?: () => Promise<string | undefined>;
  /** Sends a JSON alert (DQ_WEBHOOK_URL); absent when no webhook is configured. */
  alert?: AlertSender;
  /** The `posts` columns in code (schema drift). @default POSTS_TABLE.columns */
  postsColumns?: Column[];
  /** Defaults for every run, below the per-run overrides of the workflow input. */
  checks?: QualityChecksOverrides;
  /** One pass of the duplicate repair (`repairDuplicates` of `adapters/bigquery/repair.ts`); absent = no repair. */
  repair?: (opts: RepairOptions) => Promise<RepairReport>;
}

export interface RepairDuplicatesInput {
  /** Deterministic id of the repair (the quality run id): recorded in `load_repairs`, names the jobs. */
  repairId: string;
  /** The run's clock (ISO): with it and no `since`, the repair covers the uniqueness check's window. */
  asOf?: string;
  /** YYYY-MM-DD lower bound of the `posts` partitions; absent (and no asOf) = the whole table. */
  since?: string;
  /** Duplicated ids per pass. @default 5000 */
  maxIds?: number;
  /** Passes before returning with `truncated` (each handles up to maxIds ids). @default 20 */
  maxPasses?: number;
  /** Per-check overrides, as given to `runQualityChecks` (the uniqueness window). */
  checks?: QualityChecksOverrides;
  /** Plan and report only (one pass): record nothing, delete nothing. @default false */
  dryRun?: boolean;
}

/** What the repair did: counts and a few examples (bounded, it goes through workflow history). */
export interface DuplicateRepairSummary {
  repairId: string;
  /** The partition lower bound used, or null (the whole table). */
  since: string | null;
  duplicateIds: number;
  rowsRemoved: number;
  unrepairable: number;
  passes: number;
  /** More duplicated ids may remain (maxPasses passes were not enough, or a dry run). */
  truncated: boolean;
  /** The first removed rows (at most {@link REPAIR_EXAMPLES}). */
  removed: RemovedRow[];
  unrepairableRows: UnrepairableRow[];
}

export const REPAIR_EXAMPLES = 10;

export interface RunQualityChecksInput {
  /** Deterministic run id (workflow id + run sequence). */
  runId: string;
  /** The run's clock (ISO-8601), chosen by the workflow. */
  asOf: string;
  workflowId?: string;
  /** Per-check overrides of the defaults. */
  checks?: QualityChecksOverrides;
}

/** The JSON body POSTed to DQ_WEBHOOK_URL for a run with failing checks. */
export interface QualityAlert {
  kind: 'data_quality_alert';
  runId: string;
  workflowId?: string;
  status: DataQualityVerdict['status'];
  checkedAt: string;
  /** The failing checks (warnings are in the verdict and `dq_results`, not alerted). */
  failures: CheckOutcome[];
}

const MINUTE = 60_000;
const HEARTBEAT_MS = 5_000;
const minus = (iso: string, minutes: number) => new Date(Date.parse(iso) - minutes * MINUTE).toISOString();
const isPermanent = (err: unknown) => err instanceof ApplicationFailure && err.nonRetryable;
const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

export function createQualityActivities(deps: QualityActivitiesDeps) {
  const { store, logger } = deps;

  async function runCheck(name: CheckName, cfg: QualityChecksConfig, asOf: string): Promise<CheckResult> {
    switch (name) {
      case 'freshness': {
        const c = cfg.freshness;
        return evaluateFreshness(
          await store.freshness(lookbackWindow(asOf, c.lookbackMinutes).start),
          asOf,
          c,
          await deps.pipelineStartedAt?.(),
        );
      }
      case 'volume': {
        const c = cfg.volume;
        const w = volumeWindows(asOf, c);
        const counts = await store.volume(w.from, w.to, c.windowMinutes * 60, w.count);
        // "Zero while connected" needs the stream up for the whole window, not just now (a fresh start).
        const windowStart = closedWindow(asOf, c.windowMinutes, c.settleMinutes).start;
        const connected = c.zeroWhileConnected ? await deps.streamConnected?.(windowStart) : undefined;
        return evaluateVolume(counts, asOf, c, connected);
      }
      case 'uniqueness': {
        const c = cfg.uniqueness;
        return evaluateUniqueness(
          await store.uniqueness(lookbackWindow(asOf, c.lookbackMinutes).start),
          asOf,
          c,
        );
      }
      case 'completeness': {
        const c = cfg.completeness;
        const from = lookbackWindow(asOf, c.lookbackMinutes).start;
        return evaluateCompleteness(await store.completeness(from, c.fields), asOf, c);
      }
      case 'validity': {
        const c = cfg.validity;
        const from = lookbackWindow(asOf, c.lookbackMinutes).start;
        const futureLimit = new Date(Date.parse(asOf) + c.futureSkewSeconds * 1000).toISOString();
        return evaluateValidity(await store.validity(from, futureLimit, c.languages), asOf, c);
      }
      case 'schema_drift':
        return evaluateSchemaDrift(await store.postsSchema(), asOf, cfg.schema_drift, deps.postsColumns);
      case 'dead_letter_rate': {
        const c = cfg.dead_letter_rate;
        const from = minus(asOf, c.windowMinutes);
        const obs = await store.deadLetters(from, asOf, minus(from, cfg.reconciliation.createdSlackMinutes));
        return evaluateDeadLetterRate(obs, asOf, c);
      }
      case 'reconciliation': {
        const c = cfg.reconciliation;
        const w = closedWindow(asOf, c.windowMinutes, c.settleMinutes);
        const published = await deps.publishedCounts(w.start, w.end).catch((err: unknown) => {
          logger.warn({ err: messageOf(err) }, 'stream counters unavailable');
          return undefined;
        });
        const obs =
          published === undefined
            ? undefined
            : await store.reconciliation(w.start, w.end, minus(w.start, c.createdSlackMinutes));
        return evaluateReconciliation(obs, published, asOf, c);
      }
    }
  }

  return {
    /** Creates `dq_results` (and the dataset) when missing. Idempotent. */
    async ensureQualityTable(): Promise<void> {
      await store.ensureResultsTable();
    },

    /** Runs the suite once; see the module comment. Transient BigQuery errors fail the attempt (retried). */
    async runQualityChecks(input: RunQualityChecksInput): Promise<DataQualityVerdict> {
      const cfg = resolveQualityChecks(mergeOverrides(deps.checks, input.checks));
      const results: CheckResult[] = [];
      for (const name of CHECK_NAMES) {
        if (!cfg[name].enabled) continue;
        try {
          results.push(await runCheck(name, cfg, input.asOf));
        } catch (err) {
          // A permanent error (table missing, query rejected) is a failing check; anything else is
          // transient and the whole attempt is retried (the write below is idempotent).
          if (!isPermanent(err)) throw err;
          results.push(checkError(name, cfg[name], messageOf(err)));
        }
      }
      const rows = results.map((r) => toDqResultRow(input.runId, input.asOf, r));
      await store.writeResults(input.runId, input.asOf, rows);
      for (const r of results) {
        if (r.status === 'ok') continue;
        const fields = {
          runId: input.runId,
          check: r.check,
          status: r.status,
          details: r.details,
          observed: r.observed,
          threshold: r.threshold,
          windowStart: r.windowStart,
          windowEnd: r.windowEnd,
        };
        if (r.status === 'fail') logger.error(fields, `data-quality check failed: ${r.check}: ${r.details}`);
        else logger.warn(fields, `data-quality check warning: ${r.check}: ${r.details}`);
        deps.metrics?.dqChecksFailed.inc({ check: r.check, status: r.status });
      }
      const verdict = verdictOf(input.runId, results, new Date().toISOString());
      logger.info(
        { runId: input.runId, status: verdict.status, checks: results.length },
        'data-quality run finished',
      );
      return verdict;
    },

    /**
     * POSTs the run's failing checks to the webhook, when one is configured. Never throws: the
     * webhook adapter retries with a bounded budget and reports; returns whether it was delivered.
     */
    async sendQualityAlert(verdict: DataQualityVerdict, workflowId?: string): Promise<boolean> {
      if (!deps.alert) return false;
      const failing = verdict.problems.filter((p) => p.status === 'fail');
      if (failing.length === 0) return false;
      const alert: QualityAlert = {
        kind: 'data_quality_alert',
        runId: verdict.runId,
        workflowId,
        status: verdict.status,
        checkedAt: verdict.finishedAt,
        failures: failing,
      };
      const res = await deps
        .alert(alert)
        .catch((err: unknown) => ({ delivered: false, error: messageOf(err) }));
      if (!res.delivered)
        logger.warn({ runId: verdict.runId, error: res.error }, 'data-quality alert not delivered');
      return res.delivered;
    },

    /**
     * Repairs duplicate `posts` rows in passes of up to `maxIds` ids until a pass finds no more (or
     * removes nothing: what is left is unrepairable), heartbeating throughout. Idempotent: a retry
     * re-plans from the table and records nothing twice.
     */
    async repairDuplicates(input: RepairDuplicatesInput): Promise<DuplicateRepairSummary> {
      if (!deps.repair) {
        throw ApplicationFailure.nonRetryable('no duplicate repair is configured in this worker', 'NoRepair');
      }
      const since =
        input.since ??
        (input.asOf
          ? lookbackWindow(
              input.asOf,
              resolveQualityChecks(mergeOverrides(deps.checks, input.checks)).uniqueness.lookbackMinutes,
            ).start.slice(0, 10)
          : undefined);
      const maxPasses = input.maxPasses ?? 20;
      const heartbeat = activityHeartbeat();
      let step = 'start';
      heartbeat({ repairId: input.repairId, step });
      const beat = setInterval(() => heartbeat({ repairId: input.repairId, step }), HEARTBEAT_MS);
      const summary: DuplicateRepairSummary = {
        repairId: input.repairId,
        since: since ?? null,
        duplicateIds: 0,
        rowsRemoved: 0,
        unrepairable: 0,
        passes: 0,
        truncated: false,
        removed: [],
        unrepairableRows: [],
      };
      const duplicated = new Set<string>();
      try {
        for (let pass = 1; pass <= maxPasses; pass++) {
          const report = await deps.repair({
            repairId: pass === 1 ? input.repairId : `${input.repairId}:${pass}`,
            since,
            maxIds: input.maxIds,
            repairedAt: input.asOf,
            dryRun: input.dryRun,
            onProgress: (s) => {
              step = `pass ${pass}: ${s}`;
              heartbeat({ repairId: input.repairId, step });
            },
          });
          summary.passes = pass;
          summary.rowsRemoved += report.rowsRemoved;
          for (const r of report.removed) duplicated.add(r.postId);
          for (const r of report.unrepairableRows) duplicated.add(r.postId);
          summary.duplicateIds = duplicated.size;
          summary.unrepairable = report.unrepairable;
          summary.unrepairableRows = report.unrepairableRows.slice(0, REPAIR_EXAMPLES);
          summary.removed.push(...report.removed.slice(0, REPAIR_EXAMPLES - summary.removed.length));
          summary.truncated = report.truncated;
          if (!report.truncated || report.rowsRemoved === 0) break;
        }
      } finally {
        clearInterval(beat);
      }
      if (input.dryRun) logger.info(summary, 'duplicate repair (dry run): nothing written');
      else if (summary.rowsRemoved > 0 || summary.unrepairable > 0)
        logger.warn(summary, 'duplicate posts rows repaired (see load_repairs)');
      else logger.info(summary, 'duplicate repair: nothing to remove');
      return summary;
    },
  };
}

/** The current activity's heartbeat, or a no-op outside an activity (a direct call, a test). */
function activityHeartbeat(): (details: unknown) => void {
  try {
    const ctx = Context.current();
    return (d) => ctx.heartbeat(d);
  } catch {
    return () => undefined;
  }
}

function mergeOverrides(a?: QualityChecksOverrides, b?: QualityChecksOverrides): QualityChecksOverrides {
  const out: QualityChecksOverrides = {};
  for (const name of CHECK_NAMES) {
    const merged = { ...a?.[name], ...b?.[name] };
    if (Object.keys(merged).length > 0) (out as Record<string, unknown>)[name] = merged;
  }
  return out;
}

export type QualityActivities = ReturnType<typeof createQualityActivities>;
