/**
 * The dead-letter replay activity (issue #14): one page of `posts_dead_letter` at a time, re-validated
 * with the loader's own code (`validatePost`, `decideSchemaEvolution`, `toPostRow`), the rows that now
 * pass written through the loader's sink (`LoadSink.insertPosts`: staging load job + insert of the ids
 * not in `posts` yet), and every dead letter of the page journaled in `dead_letter_replays` as
 * `replayed`, `already_loaded` or `still_failing` with where and why it fails now. The dead-letter
 * table is never changed. A factory over ports (STYLE.md rule 3).
 *
 * Exactly once: the page's run id is derived from the replay id and the page number, so every attempt
 * of a page stamps its `posts` rows with the same `load_run_id`. After the insert the activity reads
 * back which load holds each post id: a dead letter is `replayed` when its post's row carries this run
 * id and its message id, `already_loaded` when another load (the pipeline, an earlier page or replay)
 * holds the id. A retried attempt therefore inserts nothing and journals the same outcomes, and the
 * journal insert is itself insert-if-absent on (payload_hash, replay_id).
 *
 * Dry run: the same reads and decisions, no writes (no posts, no columns, no journal, no load_runs).
 */
import { createHash } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import {
  checkDeadLetterFilter,
  type DeadLetterRecord,
  type DeadLetterStore,
  type ReplayJournalRow,
} from '../adapters/bigquery/dead-letters';
import { dateRange, type LoadSink } from '../adapters/bigquery/writer';
import {
  POSTS_TABLE,
  decideSchemaEvolution,
  toPostRow,
  validatePost,
  type Column,
  type DeadLetterStage,
  type LoadRunRow,
  type Row,
} from '../domain/bigquery-schema';
import type { Post } from '../domain/post';
import type { Logger } from '../observability/logger';
import type { Metrics } from '../observability/metrics';

/** What a replay decided for one dead letter. */
export type ReplayOutcome = 'replayed' | 'already_loaded' | 'still_failing';

export interface ReplayCounts {
  /** Dead letters read (and, unless a dry run, journaled). */
  examined: number;
  /** Now in `posts` from this replay (dry run: would be). */
  replayed: number;
  /** Their post id was already in `posts` (loaded by the pipeline or an earlier replay). */
  alreadyLoaded: number;
  /** Fail again; journaled with where and why. */
  stillFailing: number;
}

/** One dead letter and what became of it, for the report (a few per page, bounded). */
export interface ReplayExample {
  replayKey: string;
  messageId: string;
  postId: string | null;
  /** The stage it was dead-lettered at. */
  stage: string;
  outcome: ReplayOutcome;
  /** still_failing: where and why it fails now. */
  errorStage?: string;
  reason?: string;
}

export interface ReplayPageInput {
  /** The replay's id (its workflow id): recorded in the journal, names run ids and jobs. */
  replayId: string;
  /** 0, 1, 2… within the replay: with the replay id, derives the page's run id. */
  page: number;
  /** Replay key of the previous page's last row; null = from the start. */
  after: string | null;
  since?: string;
  until?: string;
  stage?: string;
  dryRun: boolean;
  batchSize: number;
  /** When the replay started (ISO, workflow time): bounds the journal partitions a retry can meet. */
  startedAt: string;
}

export interface ReplayPageResult extends ReplayCounts {
  /** Per original `error_stage`. */
  byStage: Record<string, ReplayCounts>;
  /** Where the next page starts; null = this was the last page. */
  nextCursor: string | null;
  /** The page's load_runs.run_id (null when nothing was inserted or on a dry run). */
  runId: string | null;
  /** Columns added to `posts` for fields the loader did not know (dry run: would be added). */
  columnsAdded: string[];
  /** The first {@link REPLAY_EXAMPLES_PER_PAGE} still-failing dead letters, then the first others. */
  examples: ReplayExample[];
}

export const REPLAY_EXAMPLES_PER_PAGE = 10;
/** The failure type of a replay asked for something that cannot be read (a bad window or stage). */
export const INVALID_REPLAY_INPUT = 'InvalidReplayInput';
/** Owner of the replay's staging slots (all replays share them; see `stagingSlotId`). */
export const REPLAY_STAGING_OWNER = 'dead_letter_replay';

export interface ReplayActivityDeps {
  store: DeadLetterStore;
  /** The loader's sink (`createBigQueryLoadSink`): replayed posts take the loader's path into `posts`. */
  sink: LoadSink;
  logger: Logger;
  metrics?: Pick<Metrics, 'rowsLoaded'>;
  clock?: () => Date;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The page's run id: the same for every attempt of the page, different for every page and replay. */
export function replayRunId(replayId: string, page: number): string {
  return `dr_${sha256(`${replayId}|${page}`).slice(0, 24)}`;
}

/** A dead letter re-validated: the post the loader would load, or where and why it still fails. */
export type Revalidation =
  | { ok: true; post: Post; extras: Column[]; extraValues: Row; attributes: Record<string, string> }
  | { ok: false; stage: DeadLetterStage; reason: string };

/** The stored attributes (a JSON object of strings); anything else counts as none. */
export function parseAttributes(text: string | null): Record<string, string> {
  if (!text) return {};
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return {};
    return Object.fromEntries(
      Object.entries(v as Record<string, unknown>).filter(
        (e): e is [string, string] => typeof e[1] === 'string',
      ),
    );
  } catch {
    return {};
  }
}

/**
 * The loader's decision for a message (`loadBatch`, step 1), taken again on the stored dead letter:
 * a message the stream marked malformed stays malformed; the payload must decode as UTF-8 JSON
 * (payloads stored as `base64:…` were not UTF-8 and are decoded first); then `validatePost`.
 */
export function revalidate(dl: Pick<DeadLetterRecord, 'payload' | 'attributes'>): Revalidation {
  const attributes = parseAttributes(dl.attributes);
  if (attributes.malformed === 'true') {
    let reason = attributes.error ?? 'malformed';
    try {
      const m = JSON.parse(dl.payload ?? '') as { reason?: unknown };
      if (typeof m.reason === 'string') reason = m.reason;
    } catch {
      // keep the attribute's reason
    }
    return { ok: false, stage: 'malformed', reason };
  }
  if (dl.payload === null) return { ok: false, stage: 'decode', reason: 'no payload stored' };
  let value: unknown;
  try {
    const text = dl.payload.startsWith('base64:')
      ? utf8.decode(Buffer.from(dl.payload.slice('base64:'.length), 'base64'))
      : dl.payload;
    value = JSON.parse(text);
  } catch (err) {
    return { ok: false, stage: 'decode', reason: `not UTF-8 JSON: ${(err as Error).message}` };
  }
  const v = validatePost(value);
  if (!v.ok) return v;
  return { ok: true, post: v.post, extras: v.extras, extraValues: v.extraValues, attributes };
}

export const emptyCounts = (): ReplayCounts => ({
  examined: 0,
  replayed: 0,
  alreadyLoaded: 0,
  stillFailing: 0,
});

/** Adds one outcome to the counts (in place) and returns them. */
export function countOutcome(counts: ReplayCounts, outcome: ReplayOutcome): ReplayCounts {
  counts.examined++;
  if (outcome === 'replayed') counts.replayed++;
  else if (outcome === 'already_loaded') counts.alreadyLoaded++;
  else counts.stillFailing++;
  return counts;
}

/** The first few examples, still-failing ones first (they are what an operator acts on). */
export function pickExamples(examples: ReplayExample[], max = REPLAY_EXAMPLES_PER_PAGE): ReplayExample[] {
  const failing = examples.filter((e) => e.outcome === 'still_failing');
  const others = examples.filter((e) => e.outcome !== 'still_failing');
  return [...failing, ...others].slice(0, max);
}

function currentContext(): {
  heartbeat: (d?: unknown) => void;
  checkpoint: () => void;
  activityId: string;
  attempt: number;
} {
  try {
    const ctx = Context.current();
    return {
      heartbeat: (d) => ctx.heartbeat(d),
      checkpoint: () => ctx.cancellationSignal.throwIfAborted(),
      activityId: ctx.info.activityId,
      attempt: ctx.info.attempt,
    };
  } catch {
    return { heartbeat: () => undefined, checkpoint: () => undefined, activityId: 'direct', attempt: 1 };
  }
}

interface Candidate {
  dl: DeadLetterRecord;
  post: Post;
  extras: Column[];
  extraValues: Row;
  attributes: Record<string, string>;
}

export function createReplayActivities(deps: ReplayActivityDeps) {
  const { store, sink, logger } = deps;
  const clock = deps.clock ?? (() => new Date());

  async function replayDeadLetterPage(input: ReplayPageInput): Promise<ReplayPageResult> {
    const problems = checkDeadLetterFilter(input);
    if (!Number.isSafeInteger(input.batchSize) || input.batchSize < 1)
      problems.push(`batchSize: expected a positive integer, got ${input.batchSize}`);
    if (problems.length > 0) {
      throw ApplicationFailure.nonRetryable(
        `dead-letter replay: ${problems.join('; ')}`,
        INVALID_REPLAY_INPUT,
      );
    }
    const started = clock();
    const now = started.toISOString();
    const { heartbeat, checkpoint, activityId, attempt } = currentContext();
    const runId = replayRunId(input.replayId, input.page);
    const log = logger.child({ replayId: input.replayId, page: input.page, runId, dryRun: input.dryRun });
    const beat = setInterval(() => heartbeat({ page: input.page, phase: 'working' }), 5000);
    beat.unref();
    try {
      heartbeat({ page: input.page, phase: 'read dead letters' });
      const page = await store.readPage({
        replayId: input.replayId,
        after: input.after,
        since: input.since,
        until: input.until,
        stage: input.stage,
        limit: input.batchSize,
      });
      const result: ReplayPageResult = {
        ...emptyCounts(),
        byStage: {},
        nextCursor: page.length >= input.batchSize ? page[page.length - 1]!.replayKey : null,
        runId: null,
        columnsAdded: [],
        examples: [],
      };
      if (page.length === 0) return result;

      // 1. The loader's decisions, taken again with today's code.
      const failing = new Map<string, { stage: DeadLetterStage; reason: string }>();
      let candidates: Candidate[] = [];
      for (const dl of page) {
        const v = revalidate(dl);
        if (v.ok) candidates.push({ dl, ...v });
        else failing.set(dl.replayKey, { stage: v.stage, reason: v.reason });
      }

      // 2. Additive schema evolution, as the loader does it (fields it did not know become columns).
      const extraColumns = new Map<string, Column>();
      if (candidates.some((c) => c.extras.length > 0 || Object.keys(c.extraValues).length > 0)) {
        const evolution = decideSchemaEvolution(candidates, await sink.postsColumns());
        for (const { post: c, reason } of evolution.conflicts) {
          failing.set(c.dl.replayKey, { stage: 'schema_conflict', reason });
        }
        candidates = evolution.fitting;
        for (const col of evolution.newColumns) extraColumns.set(col.name, col);
        if (extraColumns.size > 0) {
          if (input.dryRun) result.columnsAdded = [...extraColumns.keys()];
          else {
            checkpoint();
            result.columnsAdded = await sink.addPostsColumns([
              ...POSTS_TABLE.columns,
              ...extraColumns.values(),
            ]);
            log.info({ columnsAdded: result.columnsAdded }, 'posts schema evolved by a replay');
          }
        }
      }

      // 3. One row per post id (earliest publish wins, as in the loader; then the replay-key order).
      const chosen = new Map<string, Candidate>();
      for (const c of candidates) {
        const prev = chosen.get(c.post.id);
        if (!prev || (c.dl.publishTime ?? '') < (prev.dl.publishTime ?? '')) chosen.set(c.post.id, c);
      }
      const usedExtras = new Map<string, Column>();
      const rows = [...chosen.values()].map((c) => {
        for (const name of Object.keys(c.extraValues)) {
          const col = extraColumns.get(name) ?? c.extras.find((x) => x.name === name);
          if (col) usedExtras.set(name, col);
        }
        return toPostRow(
          c.post,
          {
            messageId: c.dl.messageId,
            publishTime: c.dl.publishTime,
            ingestedAt: now,
            loadRunId: runId,
            attributes: c.attributes,
          },
          c.extraValues,
        );
      });
      const existingCols = usedExtras.size > 0 && !input.dryRun ? await sink.postsColumns() : [];
      const columns: Column[] = [
        ...POSTS_TABLE.columns,
        ...[...usedExtras.values()].map((c) => {
          const actual = existingCols.find((a) => a.name.toLowerCase() === c.name.toLowerCase());
          return { ...c, type: (actual?.type as Column['type']) ?? c.type, mode: 'NULLABLE' as const };
        }),
      ];

      // 4. The loader's insert-if-absent into posts (not on a dry run); rows BigQuery refuses still fail.
      let inserted = 0;
      let rejected = 0;
      if (!input.dryRun && rows.length > 0) {
        checkpoint();
        heartbeat({ page: input.page, phase: 'insert posts' });
        const merged = await sink.insertPosts(runId, rows, columns, REPLAY_STAGING_OWNER);
        inserted = merged.inserted;
        rejected = merged.rejected.length;
        for (const r of merged.rejected) {
          const c = chosen.get(String(r.row.id));
          if (c) failing.set(c.dl.replayKey, { stage: 'bigquery_insert', reason: r.reason });
        }
        result.runId = runId;
      }

      // 5. Which load holds each post id now: this page's run (replayed) or another (already loaded).
      checkpoint();
      heartbeat({ page: input.page, phase: 'look up posts' });
      const live = candidates.filter((c) => !failing.has(c.dl.replayKey));
      const loaded = await store.loadedPosts(
        live.map((c) => c.post.id),
        dateRange(
          live.map((c) => ({ created_at: c.post.created_at })),
          'created_at',
        ),
      );
      const journal: ReplayJournalRow[] = [];
      const examples: ReplayExample[] = [];
      const liveByKey = new Map(live.map((c) => [c.dl.replayKey, c]));
      for (const dl of page) {
        const fail = failing.get(dl.replayKey);
        const c = liveByKey.get(dl.replayKey);
        let outcome: ReplayOutcome;
        let holder: string | null = null;
        if (fail || !c) {
          outcome = 'still_failing';
        } else {
          const row = loaded.get(c.post.id);
          const mine = chosen.get(c.post.id) === c;
          if (input.dryRun) {
            outcome = !row && mine ? 'replayed' : 'already_loaded';
            holder = row?.loadRunId ?? null;
          } else if (!row) {
            // Not rejected, not there: the staged rows did not arrive. Retry the page (same run id).
            throw ApplicationFailure.retryable(
              `post ${c.post.id} (dead letter ${dl.replayKey}) is not in posts after replay run ${runId}`,
              'ReplayedPostMissing',
            );
          } else {
            outcome =
              row.loadRunId === runId && row.messageId === dl.messageId ? 'replayed' : 'already_loaded';
            holder = row.loadRunId;
          }
        }
        countOutcome(result, outcome);
        countOutcome((result.byStage[dl.errorStage] ??= emptyCounts()), outcome);
        examples.push({
          replayKey: dl.replayKey,
          messageId: dl.messageId,
          postId: c?.post.id ?? dl.postId,
          stage: dl.errorStage,
          outcome,
          ...(fail ? { errorStage: fail.stage, reason: fail.reason } : {}),
        });
        journal.push({
          payload_hash: dl.replayKey,
          message_id: dl.messageId,
          replay_id: input.replayId,
          outcome,
          post_id: c?.post.id ?? dl.postId,
          error_stage: fail?.stage ?? null,
          error_message: fail?.reason ?? null,
          load_run_id: holder,
          replayed_at: now,
        });
      }
      result.examples = pickExamples(examples);

      // 6. The audit row of the batch written to posts, then the journal (insert-if-absent, both).
      if (!input.dryRun) {
        checkpoint();
        heartbeat({ page: input.page, phase: 'journal' });
        if (rows.length > 0) {
          const publishTimes = rows
            .map((r) => r.publish_time)
            .filter((t): t is string => typeof t === 'string')
            .sort();
          const valid = rows.length - rejected;
          const finished = clock();
          const loadRun: LoadRunRow = {
            run_id: runId,
            batch_id: sha256(page.map((d) => d.replayKey).join('\n')).slice(0, 20),
            workflow_id: input.replayId,
            activity_id: activityId,
            attempt,
            started_at: now,
            finished_at: finished.toISOString(),
            duration_ms: finished.getTime() - started.getTime(),
            message_count: page.length,
            valid_count: valid,
            rows_loaded: inserted,
            duplicates_skipped: Math.max(0, valid - inserted),
            dead_letters: 0,
            first_publish_time: publishTimes[0] ?? null,
            last_publish_time: publishTimes[publishTimes.length - 1] ?? null,
            columns_added: result.columnsAdded,
            outcome: result.stillFailing > 0 ? 'partial' : 'loaded',
          };
          await sink.recordLoadRun(loadRun);
        }
        const since = new Date(Date.parse(input.startedAt) - 86_400_000).toISOString().slice(0, 10);
        await store.journal(journal, `replay_${runId}`, /^\d{4}-\d{2}-\d{2}$/.test(since) ? since : null);
        deps.metrics?.rowsLoaded.inc(inserted);
      }
      log.info(
        {
          examined: result.examined,
          replayed: result.replayed,
          alreadyLoaded: result.alreadyLoaded,
          stillFailing: result.stillFailing,
        },
        input.dryRun ? 'dead-letter replay page (dry run)' : 'dead-letter replay page done',
      );
      return result;
    } finally {
      clearInterval(beat);
    }
  }

  return { replayDeadLetterPage };
}
