/**
 * The load activities: pull a batch from the subscription, validate every message, write posts and
 * dead letters exactly once (see `adapters/bigquery/writer.ts`), record the `load_runs` row, and only
 * then acknowledge. A factory over ports (STYLE.md rule 3): the worker hands in the real adapters,
 * tests hand in doubles.
 */
import { createHash } from 'node:crypto';
import { Context } from '@temporalio/activity';
import type { LaneFence, LoadSink } from '../adapters/bigquery/writer';
import { keepLease, type BatchSubscriber, type PulledMessage } from '../adapters/pubsub/subscriber';
import {
  POSTS_TABLE,
  decideSchemaEvolution,
  toPostRow,
  validatePost,
  type Column,
  type DeadLetterRow,
  type DeadLetterStage,
  type LoadRunRow,
  type Row,
} from '../domain/bigquery-schema';
import type { Post } from '../domain/post';
import type { Logger } from '../observability/logger';
import type { Metrics } from '../observability/metrics';

export interface LoadBatchInput {
  /** Messages to pull at most. */
  batchSize: number;
  /** Wait for the first message when the subscription is empty. @default 5000 */
  waitMs?: number;
  /** Lease of pulled messages, renewed every third of it while the batch is written. @default 60 */
  ackDeadlineSeconds?: number;
  /** The load lane (`domain/lanes.ts`) and the lane count: which subscription to pull. @default 0 of 1 */
  lane?: number;
  lanes?: number;
  /**
   * The batch's fencing base from the load workflow (its workflow time in ms, larger for every batch
   * of the lane); the attempt's token is `fence × 1000 + attempt` (see `LaneFence`). Unset: no fence.
   */
  fence?: number;
}

export interface LoadBatchResult {
  /** load_runs.run_id, or null when nothing was pulled. */
  runId: string | null;
  pulled: number;
  valid: number;
  rowsLoaded: number;
  duplicatesSkipped: number;
  deadLetters: number;
  columnsAdded: string[];
  firstPublishTime: string | null;
  lastPublishTime: string | null;
  durationMs: number;
}

/** Who is running: from the Temporal activity context, or a fixed identity outside one (tests, bench). */
export interface RunIdentity {
  workflowId: string;
  workflowRunId: string;
  activityId: string;
  attempt: number;
}

export interface LoadActivityDeps {
  /** The subscriber of a lane (the worker caches one per lane). */
  subscriber: BatchSubscriber | ((lane: number, lanes: number) => BatchSubscriber);
  sink: LoadSink;
  logger: Logger;
  metrics?: Pick<
    Metrics,
    'rowsLoaded' | 'duplicatesSkipped' | 'deadLetters' | 'loadBatchDuration' | 'endToEndLag' | 'subscription'
  >;
  clock?: () => Date;
  /** Test seam: runs after every write, before the ack (e.g. to simulate a crash there). */
  beforeAck?: (runId: string) => Promise<void>;
  /** Test seam: runs after the lane is claimed, before the insert into posts (e.g. to stall an attempt). */
  beforeInsert?: (runId: string, attempt: number) => Promise<void>;
}

const sha256 = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');
const utf8 = new TextDecoder('utf-8', { fatal: true });

function currentIdentity(): {
  id: RunIdentity;
  heartbeat: (d?: unknown) => void;
  /** Throws once Temporal cancelled the attempt (timed out, superseded, workflow gone). */
  checkpoint: () => void;
} {
  try {
    const ctx = Context.current();
    const info = ctx.info;
    return {
      id: {
        workflowId: info.workflowExecution?.workflowId ?? 'standalone',
        workflowRunId: info.workflowExecution?.runId ?? info.activityId,
        activityId: info.activityId,
        attempt: info.attempt,
      },
      heartbeat: (d) => ctx.heartbeat(d),
      checkpoint: () => ctx.cancellationSignal.throwIfAborted(),
    };
  } catch {
    return {
      id: { workflowId: 'direct', workflowRunId: 'direct', activityId: 'direct', attempt: 1 },
      heartbeat: () => undefined,
      checkpoint: () => undefined,
    };
  }
}

/** Batch id: a hash of the sorted message ids, the same for the same set of messages. */
export function batchIdOf(messageIds: string[]): string {
  return sha256([...messageIds].sort().join('\n')).slice(0, 20);
}

/** Run id: deterministic per (workflow run, activity, attempt, batch), so every attempt has its row. */
export function runIdOf(id: RunIdentity, batchId: string): string {
  return `lr_${sha256([id.workflowRunId, id.activityId, id.attempt, batchId].join('|')).slice(0, 24)}`;
}

/** One dead letter per payload (the table's key): the same line delivered twice is one row. */
function uniqueByPayload(rows: DeadLetterRow[]): DeadLetterRow[] {
  const byHash = new Map<string, DeadLetterRow>();
  for (const r of rows) if (!byHash.has(r.payload_hash)) byHash.set(r.payload_hash, r);
  return [...byHash.values()];
}

interface Candidate {
  msg: PulledMessage;
  post: Post;
  extras: Column[];
  extraValues: Row;
}

export function createLoadActivities(deps: LoadActivityDeps) {
  const { sink, logger } = deps;
  const clock = deps.clock ?? (() => new Date());
  const subscriberOf = (lane: number, lanes: number) =>
    typeof deps.subscriber === 'function' ? deps.subscriber(lane, lanes) : deps.subscriber;

  function deadLetter(
    msg: PulledMessage,
    stage: DeadLetterStage,
    reason: string,
    runId: string,
    now: string,
    err?: unknown,
  ): DeadLetterRow {
    let payload: string;
    try {
      payload = utf8.decode(msg.data);
    } catch {
      payload = `base64:${msg.data.toString('base64')}`;
    }
    return {
      message_id: msg.messageId,
      post_id: msg.attributes.post_id ?? null,
      payload,
      attributes: JSON.stringify(msg.attributes),
      error_stage: stage,
      error_message: reason,
      stack: err instanceof Error ? (err.stack ?? null) : null,
      publish_time: msg.publishTime,
      first_seen: now,
      load_run_id: runId,
      payload_hash: sha256(msg.data),
    };
  }

  async function loadBatch(input: LoadBatchInput): Promise<LoadBatchResult> {
    const started = clock();
    const { id, heartbeat, checkpoint } = currentIdentity();
    const leaseSeconds = input.ackDeadlineSeconds ?? 60;
    const subscriber = subscriberOf(input.lane ?? 0, input.lanes ?? 1);
    const messages = await subscriber.pull({
      maxMessages: input.batchSize,
      waitMs: input.waitMs,
      ackDeadlineSeconds: leaseSeconds,
    });
    const empty: LoadBatchResult = {
      runId: null,
      pulled: 0,
      valid: 0,
      rowsLoaded: 0,
      duplicatesSkipped: 0,
      deadLetters: 0,
      columnsAdded: [],
      firstPublishTime: null,
      lastPublishTime: null,
      durationMs: clock().getTime() - started.getTime(),
    };
    if (messages.length === 0) return empty;
    deps.metrics?.subscription.pulled(messages);

    const ackIds = messages.map((m) => m.ackId);
    const batchId = batchIdOf(messages.map((m) => m.messageId));
    const runId = runIdOf(id, batchId);
    const log = logger.child({ runId, batchId, messages: messages.length });
    const stopLease = keepLease(subscriber, ackIds, {
      seconds: leaseSeconds,
      intervalMs: Math.max(1000, (leaseSeconds * 1000) / 3),
      onError: (err) =>
        log.warn({ err }, 'could not extend the ack deadline; redelivery will be de-duplicated'),
    });
    const beat = setInterval(() => heartbeat({ runId, phase: 'writing' }), 5000);
    beat.unref();
    try {
      const now = started.toISOString();
      const deadLetters: DeadLetterRow[] = [];
      const candidates: Candidate[] = [];

      // 1. Decode and validate every message.
      for (const msg of messages) {
        if (msg.attributes.malformed === 'true') {
          let reason = msg.attributes.error ?? 'malformed';
          try {
            const m = JSON.parse(utf8.decode(msg.data)) as { reason?: unknown };
            if (typeof m.reason === 'string') reason = m.reason;
          } catch {
            // keep the attribute's reason
          }
          deadLetters.push(deadLetter(msg, 'malformed', reason, runId, now));
          continue;
        }
        let value: unknown;
        try {
          value = JSON.parse(utf8.decode(msg.data));
        } catch (err) {
          deadLetters.push(
            deadLetter(msg, 'decode', `not UTF-8 JSON: ${(err as Error).message}`, runId, now, err),
          );
          continue;
        }
        const v = validatePost(value);
        if (!v.ok) {
          deadLetters.push(deadLetter(msg, v.stage, v.reason, runId, now));
          continue;
        }
        candidates.push({ msg, post: v.post, extras: v.extras, extraValues: v.extraValues });
      }

      // 2. Additive schema evolution: fields this code does not know become columns.
      let columnsAdded: string[] = [];
      const extraColumns = new Map<string, Column>();
      if (candidates.some((c) => c.extras.length > 0 || Object.keys(c.extraValues).length > 0)) {
        const evolution = decideSchemaEvolution(candidates, await sink.postsColumns());
        for (const { post: c, reason } of evolution.conflicts) {
          deadLetters.push(deadLetter(c.msg, 'schema_conflict', reason, runId, now));
        }
        candidates.splice(0, candidates.length, ...evolution.fitting);
        for (const col of evolution.newColumns) extraColumns.set(col.name, col);
        if (extraColumns.size > 0) {
          columnsAdded = await sink.addPostsColumns([...POSTS_TABLE.columns, ...extraColumns.values()]);
          log.info({ columnsAdded }, 'posts schema evolved');
        }
      }

      // 3. One row per post id within the batch (earliest publish wins; the insert-if-absent handles earlier batches).
      const byId = new Map<string, Candidate>();
      for (const c of candidates) {
        const prev = byId.get(c.post.id);
        if (!prev || (c.msg.publishTime ?? '') < (prev.msg.publishTime ?? '')) byId.set(c.post.id, c);
      }
      const usedExtras = new Map<string, Column>();
      const rows = [...byId.values()].map((c) => {
        for (const name of Object.keys(c.extraValues)) {
          const col = extraColumns.get(name) ?? c.extras.find((x) => x.name === name);
          if (col) usedExtras.set(name, col);
        }
        return toPostRow(
          c.post,
          {
            messageId: c.msg.messageId,
            publishTime: c.msg.publishTime,
            ingestedAt: now,
            loadRunId: runId,
            attributes: c.msg.attributes,
          },
          c.extraValues,
        );
      });
      const existingCols = usedExtras.size > 0 ? await sink.postsColumns() : [];
      const columns: Column[] = [
        ...POSTS_TABLE.columns,
        ...[...usedExtras.values()].map((c) => {
          const actual = existingCols.find((a) => a.name.toLowerCase() === c.name.toLowerCase());
          return { ...c, type: (actual?.type as Column['type']) ?? c.type, mode: 'NULLABLE' as const };
        }),
      ];

      // 4. Claim the lane (the fencing token), then write posts, then dead letters (including rows
      //    BigQuery rejected), then the audit row. Every step first checks the attempt is still
      //    wanted: a cancelled (timed out, retried elsewhere) attempt stops there.
      checkpoint();
      const fence: LaneFence | undefined =
        input.fence === undefined
          ? undefined
          : {
              lane: id.workflowId,
              token: input.fence * 1000 + Math.min(id.attempt, 999),
              claimedAt: clock().toISOString(),
            };
      if (fence && rows.length > 0) {
        heartbeat({ runId, phase: 'claim lane' });
        await sink.claimLane(fence, runId);
      }
      await deps.beforeInsert?.(runId, id.attempt);
      checkpoint();
      heartbeat({ runId, phase: 'insert posts' });
      const merged = await sink.insertPosts(runId, rows, columns, id.workflowId, fence);
      checkpoint();
      const byMessage = new Map(messages.map((m) => [m.messageId, m]));
      for (const r of merged.rejected) {
        const msg = byMessage.get(String(r.row.message_id));
        if (msg) deadLetters.push(deadLetter(msg, 'bigquery_insert', r.reason, runId, now));
      }
      heartbeat({ runId, phase: 'insert dead letters' });
      await sink.insertDeadLetters(runId, uniqueByPayload(deadLetters));

      const valid = candidates.length - merged.rejected.length;
      const publishTimes = messages
        .map((m) => m.publishTime)
        .filter((t): t is string => !!t)
        .sort();
      const finished = clock();
      const result: LoadBatchResult = {
        runId,
        pulled: messages.length,
        valid,
        rowsLoaded: merged.inserted,
        duplicatesSkipped: Math.max(0, valid - merged.inserted),
        deadLetters: deadLetters.length,
        columnsAdded,
        firstPublishTime: publishTimes[0] ?? null,
        lastPublishTime: publishTimes[publishTimes.length - 1] ?? null,
        durationMs: finished.getTime() - started.getTime(),
      };
      const loadRun: LoadRunRow = {
        run_id: runId,
        batch_id: batchId,
        workflow_id: id.workflowId,
        activity_id: id.activityId,
        attempt: id.attempt,
        started_at: now,
        finished_at: finished.toISOString(),
        duration_ms: result.durationMs,
        message_count: result.pulled,
        valid_count: result.valid,
        rows_loaded: result.rowsLoaded,
        duplicates_skipped: result.duplicatesSkipped,
        dead_letters: result.deadLetters,
        first_publish_time: result.firstPublishTime,
        last_publish_time: result.lastPublishTime,
        columns_added: columnsAdded,
        outcome: valid > 0 ? (deadLetters.length > 0 ? 'partial' : 'loaded') : 'dead_letters_only',
      };
      await sink.recordLoadRun(loadRun);
      await deps.beforeAck?.(runId);

      // 5. Only now: acknowledge. A crash before this line means redelivery, which the inserts-if-absent absorb.
      await stopLease();
      await subscriber.acknowledge(ackIds);

      deps.metrics?.subscription.settled(messages, 'acked');
      deps.metrics?.loadBatchDuration.observe(result.durationMs / 1000);
      // Received → queryable, per row (a redelivered duplicate counts from its first receipt).
      for (const c of byId.values()) {
        const lagMs = finished.getTime() - Date.parse(c.post.received_at);
        if (lagMs >= 0) deps.metrics?.endToEndLag.observe(lagMs / 1000);
      }
      deps.metrics?.rowsLoaded.inc(result.rowsLoaded);
      deps.metrics?.duplicatesSkipped.inc(result.duplicatesSkipped);
      for (const d of deadLetters) deps.metrics?.deadLetters.inc({ stage: d.error_stage });
      log.info({ ...result }, 'load batch done');
      return result;
    } catch (err) {
      // Hand the batch back at once (deadline 0) so the retry gets the redelivery without waiting
      // for the lease to expire. Best effort: if this fails too, the lease expires on its own.
      await stopLease();
      await subscriber
        .modifyAckDeadline(ackIds, 0)
        .catch((e: unknown) => log.warn({ err: e }, 'could not release the batch'));
      deps.metrics?.subscription.settled(messages, 'released');
      throw err;
    } finally {
      clearInterval(beat);
      await stopLease();
    }
  }

  return {
    loadBatch,
    /** Provisions the dataset and tables (idempotent); run once when the load workflow starts. */
    async ensureTables(): Promise<void> {
      const { heartbeat } = currentIdentity();
      const beat = setInterval(() => heartbeat({ phase: 'ensure tables' }), 5000);
      try {
        const report = await sink.ensureTables();
        logger.info({ report }, 'BigQuery tables ready');
      } finally {
        clearInterval(beat);
      }
    },
  };
}

export type LoadActivities = ReturnType<typeof createLoadActivities>;
