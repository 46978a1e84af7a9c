/**
 * Compliance in BigQuery: which post ids were ingested in a window (what to ask X about), and
 * applying X's compliance events to `posts`, journaled in `compliance_actions`.
 *
 * Applying the events of one X job (idempotent, so re-running the same job changes nothing):
 *   1. read which of the job's posts are already journaled (`compliance_actions` rows of the job);
 *   2. count, per id, the `posts` rows there are to act on (delete: every row of the id; redact:
 *      the rows whose text, raw or author columns are not all NULL yet);
 *   3. FIRST journal the events not journaled yet, insert-if-absent keyed (job_id, post_id), with
 *      `rows_affected` = that count (0 when no row was stored);
 *   4. THEN act: `DELETE FROM posts WHERE id IN UNNEST(@ids)`, or (redact) `UPDATE posts SET text,
 *      raw and the author columns to NULL WHERE id IN UNNEST(@ids) AND <not redacted yet>`.
 * A crash between 3 and 4 leaves events journaled and not yet applied; the retry journals nothing
 * new and applies them. A second run finds every event journaled and no row left to act on.
 * Counting before acting is how rows are counted: the emulator reports no DML statistics.
 *
 * Both BigQuery and the goccy emulator run this. Timestamps in conditions are TIMESTAMP literals
 * built from checked ISO strings (timestamp parameters in conditions match nothing on the
 * emulator); id lists are STRING array parameters; the journal's INT64 goes as a typed string (see
 * writer.ts); DML runs as jobs with ids derived from the X job id and the ids acted on, `_2`, `_3`…
 * when a retried attempt meets its earlier job. Reads go through `jobs.query`.
 *
 * Cost on BigQuery: the window query scans `posts.id` and `posts.ingested_at` (no partition pruning:
 * `posts` is partitioned by `created_at`, and gap fill can load old posts); the statements of step
 * 2 and 4 scan the id column (and, to redact, the redacted columns) once per chunk of ids.
 */
import { createHash } from 'node:crypto';
import type { BigQuery } from '@google-cloud/bigquery';
import { COMPLIANCE_ACTIONS_TABLE, type Row } from '../../domain/bigquery-schema';
import type { Logger } from '../../observability/logger';
import { classifyBigQueryError } from './errors';
import { runDml } from './jobs';
import { fqn, tableIds, type BigQueryTarget } from './provision';
import { isConcurrentUpdate } from './repair';
import { buildInsertIfAbsent, chunkRows, type ParameterisedSql } from './writer';

export type ComplianceMode = 'delete' | 'redact';

/** One compliance event of X's result file, as the apply step takes it. */
export interface ComplianceEventInput {
  id: string;
  action: string;
  reason?: string;
  createdAt?: string;
  redactedAt?: string;
}

export interface ComplianceApplyReport {
  jobId: string;
  mode: ComplianceMode;
  /** Distinct post ids in X's result. */
  events: number;
  /** Events journaled by this run (0 on a re-run). */
  journaled: number;
  /** Events a previous run had journaled already. */
  alreadyJournaled: number;
  /** `posts` rows deleted or redacted by this run (0 on a re-run). */
  rowsAffected: number;
}

/** `posts` columns a redaction sets to NULL: the text (also inside raw) and the author. */
export const REDACTED_COLUMNS = [
  'text',
  'raw',
  'author_id',
  'author_username',
  'author_name',
  'author_verified',
  'author_followers_count',
] as const;

/** Ids per statement (an array parameter each). */
export const IDS_PER_STATEMENT = 10_000;

const ISO_TIMESTAMP_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$/;

/** A TIMESTAMP literal of a checked ISO-8601 UTC time (never a parameter: see the module comment). */
export function timestampLiteral(iso: string): string {
  if (!ISO_TIMESTAMP_RE.test(iso) || !Number.isFinite(Date.parse(iso)))
    throw new Error(`not an ISO-8601 UTC timestamp: ${JSON.stringify(iso)}`);
  return `TIMESTAMP '${iso}'`;
}

const NOT_REDACTED = `(${REDACTED_COLUMNS.map((c) => `${c} IS NOT NULL`).join(' OR ')})`;

/** The SQL of each step, exported so unit tests can check it offline. */
export const complianceSql = {
  /**
   * Distinct ids ingested in (since, until], after `@after_id` in id order, at most `limit`. With no
   * `since`, every row up to `until`, and rows without `ingested_at` too (the first run).
   */
  ingestedIds: (posts: string, since: string | null, until: string, limit: number) => {
    const window = since
      ? `ingested_at > ${timestampLiteral(since)} AND ingested_at <= ${timestampLiteral(until)}`
      : `(ingested_at IS NULL OR ingested_at <= ${timestampLiteral(until)})`;
    return `SELECT DISTINCT id FROM ${posts} WHERE ${window} AND id > @after_id ORDER BY id LIMIT ${Math.trunc(limit)}`;
  },
  /** Per id of @ids, the rows to act on. */
  rowsToAct: (posts: string, mode: ComplianceMode) =>
    mode === 'delete'
      ? `SELECT id, COUNT(*) AS n FROM ${posts} WHERE id IN UNNEST(@ids) GROUP BY id`
      : `SELECT id, COUNT(*) AS n FROM ${posts} WHERE id IN UNNEST(@ids) AND ${NOT_REDACTED} GROUP BY id`,
  /** Post ids already journaled for @job_id. */
  journaled: (actions: string) => `SELECT post_id FROM ${actions} WHERE job_id = @job_id`,
  /** The action itself. */
  act: (posts: string, mode: ComplianceMode) =>
    mode === 'delete'
      ? `DELETE FROM ${posts} WHERE id IN UNNEST(@ids)`
      : `UPDATE ${posts} SET ${REDACTED_COLUMNS.map((c) => `${c} = NULL`).join(', ')} WHERE id IN UNNEST(@ids) AND ${NOT_REDACTED}`,
};

/** The `compliance_actions` rows of the events to journal. */
export function complianceRows(
  events: readonly ComplianceEventInput[],
  counts: ReadonlyMap<string, number>,
  jobId: string,
  mode: ComplianceMode,
  appliedAt: string,
): Row[] {
  return events.map((e) => ({
    job_id: jobId,
    post_id: e.id,
    action: mode === 'delete' ? 'deleted' : 'redacted',
    x_action: e.action,
    x_reason: e.reason ?? null,
    // When X recorded the event; the post's creation time when X gave no event time.
    x_created_at: e.redactedAt ?? e.createdAt ?? null,
    rows_affected: counts.get(e.id) ?? 0,
    applied_at: appliedAt,
  }));
}

/** The first event of each id, in file order. */
export function distinctEvents<T extends { id: string }>(events: readonly T[]): T[] {
  const seen = new Set<string>();
  return events.filter((e) => !seen.has(e.id) && seen.add(e.id));
}

export function chunks<T>(xs: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += size) out.push(xs.slice(i, i + size));
  return out;
}

/** The base of the DML job ids: the X job, the mode and a hash of the ids acted on. */
export function complianceJobBase(jobId: string, mode: ComplianceMode, ids: readonly string[]): string {
  const h = createHash('sha256').update(ids.join('\n')).digest('hex').slice(0, 16);
  return `compliance_${jobId.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 100)}_${mode}_${h}`;
}

export interface ComplianceStore {
  /** Distinct post ids ingested in (since, until] after `afterId`, in id order, at most `limit`. */
  ingestedIds(window: {
    since: string | null;
    until: string;
    afterId: string;
    limit: number;
  }): Promise<string[]>;
  /** Applies one X job's events; see the module comment. Idempotent. */
  apply(args: {
    jobId: string;
    mode: ComplianceMode;
    events: readonly ComplianceEventInput[];
    appliedAt: string;
    onProgress?: (step: string) => void;
  }): Promise<ComplianceApplyReport>;
}

export function createComplianceStore(bq: BigQuery, gcp: BigQueryTarget, logger?: Logger): ComplianceStore {
  const ids = tableIds(gcp);
  const posts = fqn(gcp, ids.posts);
  const actions = fqn(gcp, ids.compliance_actions);

  const read = async <T>(sql: string, params: Record<string, unknown>, types: ParameterisedSql['types']) => {
    const [rows] = await bq.query({ query: sql, location: gcp.location, params, types });
    return rows as T[];
  };

  const dml = (
    sql: string,
    jobId: string,
    params: Record<string, unknown>,
    types: ParameterisedSql['types'],
  ) => runDml(bq, gcp.location, sql, jobId, params, types);

  return {
    async ingestedIds({ since, until, afterId, limit }) {
      try {
        const rows = await read<{ id: string }>(
          complianceSql.ingestedIds(posts, since, until, limit),
          { after_id: afterId },
          { after_id: 'STRING' },
        );
        return rows.map((r) => String(r.id));
      } catch (err) {
        throw classifyBigQueryError(err, {
          operation: 'compliance: ingested ids',
          table: `${gcp.dataset}.${ids.posts}`,
        });
      }
    },

    async apply({ jobId, mode, events, appliedAt, onProgress }) {
      const progress = onProgress ?? (() => undefined);
      const all = distinctEvents(events);
      const report: ComplianceApplyReport = {
        jobId,
        mode,
        events: all.length,
        journaled: 0,
        alreadyJournaled: 0,
        rowsAffected: 0,
      };
      if (all.length === 0) return report;
      let step = 'read journal';
      let table = `${gcp.dataset}.${ids.compliance_actions}`;
      try {
        progress(step);
        const done = new Set(
          (
            await read<{ post_id: string }>(
              complianceSql.journaled(actions),
              { job_id: jobId },
              { job_id: 'STRING' },
            )
          ).map((r) => String(r.post_id)),
        );
        const fresh = all.filter((e) => !done.has(e.id));
        report.alreadyJournaled = all.length - fresh.length;

        step = 'count rows';
        table = `${gcp.dataset}.${ids.posts}`;
        const counts = new Map<string, number>();
        for (const chunk of chunks(
          all.map((e) => e.id),
          IDS_PER_STATEMENT,
        )) {
          progress(step);
          for (const r of await read<{ id: string; n: unknown }>(
            complianceSql.rowsToAct(posts, mode),
            { ids: chunk },
            { ids: ['STRING'] },
          ))
            counts.set(String(r.id), Number(r.n));
        }

        const base = complianceJobBase(
          jobId,
          mode,
          all.map((e) => e.id),
        );
        step = 'journal';
        table = `${gcp.dataset}.${ids.compliance_actions}`;
        const rows = complianceRows(fresh, counts, jobId, mode, appliedAt);
        for (const [i, chunk] of chunkRows(rows).entries()) {
          progress(step);
          // Keyed by (job_id, post_id) over the whole (small) table: an event journaled by an
          // earlier attempt or run is not journaled again.
          const stmt = buildInsertIfAbsent(
            actions,
            COMPLIANCE_ACTIONS_TABLE,
            COMPLIANCE_ACTIONS_TABLE.columns,
            chunk,
            null,
          );
          const params = Object.fromEntries(
            Object.entries(stmt.params).map(([k, v]) => [
              k,
              stmt.types[k] === 'TIMESTAMP' ? bq.timestamp(String(v)) : v,
            ]),
          );
          await dml(stmt.sql, `${base}_journal_${i}`, params, stmt.types);
        }
        report.journaled = fresh.length;

        step = mode;
        table = `${gcp.dataset}.${ids.posts}`;
        const toAct = all.map((e) => e.id).filter((id) => (counts.get(id) ?? 0) > 0);
        for (const [i, chunk] of chunks(toAct, IDS_PER_STATEMENT).entries()) {
          progress(step);
          await dml(
            complianceSql.act(posts, mode),
            `${base}_${mode}_${i}`,
            { ids: chunk },
            { ids: ['STRING'] },
          );
        }
        report.rowsAffected = toAct.reduce((n, id) => n + (counts.get(id) ?? 0), 0);
        logger?.debug({ ...report }, 'compliance events applied');
        return report;
      } catch (err) {
        // A DELETE/UPDATE that meets a concurrent mutation is refused by BigQuery; the retry redoes it.
        if (isConcurrentUpdate(err)) throw err instanceof Error ? err : new Error(String(err));
        throw classifyBigQueryError(err, { operation: `compliance: ${step}`, table });
      }
    },
  };
}
