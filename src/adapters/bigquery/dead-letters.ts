/**
 * The SQL of the dead-letter replay (issue #14): reads pages of `posts_dead_letter`, looks up which
 * post ids `posts` already holds, and writes the replay journal `dead_letter_replays`. The dead-letter
 * table is only ever read here; nothing in it is changed or deleted.
 *
 * Pages are keyset-paginated on the replay key (the dead letter's `payload_hash`, its table key; rows
 * from before that column have none and are keyed `message:<message_id>` instead), in ascending order,
 * so a page is the same set of rows however often it is read. Dead letters that an earlier replay
 * already journaled as `replayed` or `already_loaded` are left out; rows journaled by this same
 * replay are not, so a retried page sees what its first attempt saw.
 *
 * Both BigQuery and the goccy emulator run this (see writer.ts for the emulator's constraints): the
 * time window is inlined as validated TIMESTAMP and DATE literals (timestamp parameters in conditions
 * match nothing on the emulator), the rest are typed parameters, reads go through `jobs.query`, and
 * the journal insert is `buildInsertIfAbsent` under a deterministic job id.
 */
import type { BigQuery } from '@google-cloud/bigquery';
import { DEAD_LETTER_REPLAYS_TABLE, type DeadLetterStage, type Row } from '../../domain/bigquery-schema';
import type { Logger } from '../../observability/logger';
import { classifyBigQueryError } from './errors';
import { runDml } from './jobs';
import { fqn, tableIds, type BigQueryTarget } from './provision';
import { buildInsertIfAbsent, chunkRows, type ParameterisedSql } from './writer';

/** A dead letter as the replay reads it. */
export interface DeadLetterRecord {
  /** `payload_hash`, or `message:<message_id>` for a row from before that column. */
  replayKey: string;
  messageId: string;
  postId: string | null;
  payload: string | null;
  /** The message attributes, as the JSON text the loader stored. */
  attributes: string | null;
  errorStage: string;
  errorMessage: string;
  /** ISO-8601, or null. */
  publishTime: string | null;
  firstSeen: string | null;
  loadRunId: string | null;
}

/** Which dead letters a replay covers. */
export interface DeadLetterFilter {
  /** ISO-8601 or YYYY-MM-DD: dead letters first seen at or after this (UTC). */
  since?: string;
  /** ISO-8601 or YYYY-MM-DD: dead letters first seen before this (UTC). */
  until?: string;
  /** Only dead letters of this `error_stage`. */
  stage?: string;
}

export interface DeadLetterPageQuery extends DeadLetterFilter {
  /** The replay reading (its rows in the journal do not exclude anything). */
  replayId: string;
  /** The replay key of the previous page's last row; absent = from the start. */
  after?: string | null;
  limit: number;
}

/** The `posts` row that holds a post id: which load wrote it and from which message. */
export interface LoadedPost {
  loadRunId: string | null;
  messageId: string | null;
}

/** The `dead_letter_replays` row of one dead letter in one replay. */
export interface ReplayJournalRow extends Row {
  payload_hash: string;
  message_id: string | null;
  replay_id: string;
  outcome: 'replayed' | 'already_loaded' | 'still_failing';
  post_id: string | null;
  error_stage: string | null;
  error_message: string | null;
  load_run_id: string | null;
  replayed_at: string;
}

/** The port the replay activity reads and journals through; tests hand in a double of it. */
export interface DeadLetterStore {
  /** One page of dead letters, in replay-key order; see the module comment. */
  readPage(query: DeadLetterPageQuery): Promise<DeadLetterRecord[]>;
  /**
   * The `posts` rows of `ids` (at most one is expected per id; the earliest ingested wins when there
   * are more). `createdDays` ([min, max] YYYY-MM-DD of the posts' created_at) prunes partitions.
   */
  loadedPosts(ids: string[], createdDays: [string, string] | null): Promise<Map<string, LoadedPost>>;
  /**
   * Journals `rows` (insert-if-absent on payload_hash + replay_id, so a retry journals nothing twice).
   * `jobBase` names the DML jobs; `since` (YYYY-MM-DD) bounds the journal partitions the existence check reads.
   */
  journal(rows: ReplayJournalRow[], jobBase: string, since: string | null): Promise<void>;
}

const ISO_DAY_RE = /^\d{4}-\d{2}-\d{2}$/;
const ISO_TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

/**
 * A `--since` / `--until` bound as a canonical UTC instant (ISO-8601 with milliseconds and `Z`):
 * a calendar day (YYYY-MM-DD, its midnight UTC) or a timestamp with a zone. Anything else (and a day
 * that does not exist) is refused with the reason, so nothing unchecked reaches the SQL.
 */
export function parseReplayBound(value: string): { ok: true; iso: string } | { ok: false; reason: string } {
  const day = ISO_DAY_RE.test(value);
  if (!day && !ISO_TIME_RE.test(value)) {
    return { ok: false, reason: `expected YYYY-MM-DD or an ISO-8601 timestamp with a zone, got ${value}` };
  }
  const t = Date.parse(day ? `${value}T00:00:00Z` : value);
  if (!Number.isFinite(t)) return { ok: false, reason: `not a real date: ${value}` };
  const iso = new Date(t).toISOString();
  if (day && iso.slice(0, 10) !== value) return { ok: false, reason: `not a real date: ${value}` };
  return { ok: true, iso };
}

const bound = (name: string, value: string): string => {
  const b = parseReplayBound(value);
  if (!b.ok) throw new Error(`dead-letter replay: ${name}: ${b.reason}`);
  return b.iso;
};

/** The replay key in SQL (see {@link DeadLetterRecord.replayKey}). */
export const REPLAY_KEY_SQL = `COALESCE(D.payload_hash, CONCAT('message:', D.message_id))`;

/** The statements, exported so unit tests can check their filters offline. */
export const deadLetterSql = {
  /** A page of dead letters; parameters: @replayId, @after, and @stage when a stage is given. */
  page(deadLetters: string, journal: string, q: DeadLetterFilter & { limit: number }): string {
    const where: string[] = [];
    if (q.since) {
      const since = bound('since', q.since);
      where.push(`DATE(D.first_seen) >= DATE '${since.slice(0, 10)}'`);
      where.push(`D.first_seen >= TIMESTAMP '${since}'`);
    }
    if (q.until) {
      const until = bound('until', q.until);
      where.push(`DATE(D.first_seen) <= DATE '${until.slice(0, 10)}'`);
      where.push(`D.first_seen < TIMESTAMP '${until}'`);
    }
    if (q.stage !== undefined) where.push('D.error_stage = @stage');
    where.push(`${REPLAY_KEY_SQL} > @after`);
    where.push(
      `${REPLAY_KEY_SQL} NOT IN (SELECT J.payload_hash FROM ${journal} J ` +
        `WHERE J.outcome IN ('replayed', 'already_loaded') AND J.replay_id != @replayId)`,
    );
    const limit = Math.trunc(q.limit);
    if (!(limit >= 1))
      throw new Error(`dead-letter replay: limit must be a positive integer, got ${q.limit}`);
    return [
      `SELECT ${REPLAY_KEY_SQL} AS replay_key, D.message_id, D.post_id, D.payload, D.attributes,`,
      `  D.error_stage, D.error_message, D.publish_time, D.first_seen, D.load_run_id`,
      `FROM ${deadLetters} D`,
      `WHERE ${where.join('\n  AND ')}`,
      `ORDER BY replay_key`,
      `LIMIT ${limit}`,
    ].join('\n');
  },
  /** The posts rows of @ids, earliest ingested first. */
  loadedPosts(posts: string, createdDays: [string, string] | null): string {
    const days =
      createdDays && ISO_DAY_RE.test(createdDays[0]) && ISO_DAY_RE.test(createdDays[1])
        ? ` AND DATE(created_at) BETWEEN DATE '${createdDays[0]}' AND DATE '${createdDays[1]}'`
        : '';
    return (
      `SELECT id, load_run_id, message_id, ingested_at FROM ${posts} ` +
      `WHERE id IN UNNEST(@ids)${days} ORDER BY id, ingested_at`
    );
  },
};

const tsValue = (v: unknown): string | null => {
  if (v === null || v === undefined) return null;
  const raw = typeof v === 'object' && 'value' in v ? String((v as { value: unknown }).value) : String(v);
  const t = Date.parse(raw);
  return Number.isFinite(t) ? new Date(t).toISOString() : raw;
};
const str = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

export interface BigQueryDeadLetterStoreDeps {
  bq: BigQuery;
  gcp: BigQueryTarget;
  logger?: Logger;
}

export function createBigQueryDeadLetterStore({ bq, gcp }: BigQueryDeadLetterStoreDeps): DeadLetterStore {
  const ids = tableIds(gcp);
  const deadLetters = fqn(gcp, ids.posts_dead_letter);
  const journalTable = fqn(gcp, ids.dead_letter_replays);
  const posts = fqn(gcp, ids.posts);

  const read = async (sql: string, params: Record<string, unknown>, types: ParameterisedSql['types']) => {
    const [rows] = await bq.query({ query: sql, location: gcp.location, params, types });
    return rows as Record<string, unknown>[];
  };

  return {
    async readPage(q) {
      const params: Record<string, unknown> = { replayId: q.replayId, after: q.after ?? '' };
      const types: ParameterisedSql['types'] = { replayId: 'STRING', after: 'STRING' };
      if (q.stage !== undefined) {
        params.stage = q.stage;
        types.stage = 'STRING';
      }
      try {
        const rows = await read(deadLetterSql.page(deadLetters, journalTable, q), params, types);
        return rows.map((r): DeadLetterRecord => ({
          replayKey: String(r.replay_key),
          messageId: String(r.message_id),
          postId: str(r.post_id),
          payload: str(r.payload),
          attributes: str(r.attributes),
          errorStage: String(r.error_stage),
          errorMessage: String(r.error_message),
          publishTime: tsValue(r.publish_time),
          firstSeen: tsValue(r.first_seen),
          loadRunId: str(r.load_run_id),
        }));
      } catch (err) {
        throw classifyBigQueryError(err, {
          operation: 'read dead letters',
          table: `${gcp.dataset}.${ids.posts_dead_letter}`,
        });
      }
    },

    async loadedPosts(postIds, createdDays) {
      const found = new Map<string, LoadedPost>();
      if (postIds.length === 0) return found;
      try {
        const rows = await read(
          deadLetterSql.loadedPosts(posts, createdDays),
          { ids: [...new Set(postIds)] },
          { ids: ['STRING'] },
        );
        for (const r of rows) {
          const id = String(r.id);
          if (!found.has(id)) found.set(id, { loadRunId: str(r.load_run_id), messageId: str(r.message_id) });
        }
        return found;
      } catch (err) {
        throw classifyBigQueryError(err, {
          operation: 'look up posts',
          table: `${gcp.dataset}.${ids.posts}`,
        });
      }
    },

    async journal(rows, jobBase, since) {
      const spec = DEAD_LETTER_REPLAYS_TABLE;
      try {
        for (const [i, chunk] of chunkRows(rows).entries()) {
          const stmt = buildInsertIfAbsent(journalTable, spec, spec.columns, chunk, since);
          const params = Object.fromEntries(
            Object.entries(stmt.params).map(([k, v]) => [
              k,
              stmt.types[k] === 'TIMESTAMP' ? bq.timestamp(String(v)) : v,
            ]),
          );
          await runDml(bq, gcp.location, stmt.sql, `${jobBase}_journal_${i}`, params, stmt.types);
        }
      } catch (err) {
        throw classifyBigQueryError(err, {
          operation: 'journal replay',
          table: `${gcp.dataset}.${ids.dead_letter_replays}`,
        });
      }
    },
  };
}

/** Every `error_stage` the loader writes (the compiler checks this list against `DeadLetterStage`). */
const STAGES = {
  malformed: true,
  decode: true,
  validate: true,
  schema_version: true,
  schema_conflict: true,
  bigquery_insert: true,
} satisfies Record<DeadLetterStage, true>;
export const DEAD_LETTER_STAGES = Object.keys(STAGES) as DeadLetterStage[];

/** Problems with a replay's filter, one line each naming the setting (empty = fine). */
export function checkDeadLetterFilter(f: DeadLetterFilter): string[] {
  const problems: string[] = [];
  for (const name of ['since', 'until'] as const) {
    const v = f[name];
    if (v === undefined) continue;
    const b = parseReplayBound(v);
    if (!b.ok) problems.push(`${name}: ${b.reason}`);
  }
  if (f.since && f.until && problems.length === 0) {
    const s = parseReplayBound(f.since);
    const u = parseReplayBound(f.until);
    if (s.ok && u.ok && s.iso >= u.iso) problems.push(`until (${f.until}) must be after since (${f.since})`);
  }
  if (f.stage !== undefined && !(DEAD_LETTER_STAGES as string[]).includes(f.stage)) {
    problems.push(`stage: expected one of ${DEAD_LETTER_STAGES.join(', ')}, got ${f.stage}`);
  }
  return problems;
}
