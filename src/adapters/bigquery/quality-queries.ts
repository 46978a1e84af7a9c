/**
 * The data-quality queries and the `dq_results` writer. Every query is parameterised and
 * partition-pruned: `posts` by a lower bound on `created_at`, `posts_dead_letter` by `first_seen`,
 * `dq_results` by `checked_at`. Written in the subset both BigQuery and the goccy emulator execute
 * (verified on the emulator): numeric parameters are sent as typed strings (the emulator rejects
 * JSON numbers), and a dead letter's `received_at` is read with REGEXP_EXTRACT rather than
 * JSON_VALUE, which aborts the whole query on the emulator when a payload is not JSON.
 */
import type { BigQuery, Query } from '@google-cloud/bigquery';
import type { GcpConfig } from '../../config';
import type { LiveColumn, RequiredField } from '../../domain/quality';
import {
  DQ_RESULTS_TABLE,
  METRIC_COLUMNS,
  type CompletenessObservation,
  type DeadLetterObservation,
  type DqResultRow,
  type FreshnessObservation,
  type ReconciliationObservation,
  type UniquenessObservation,
  type ValidityObservation,
} from '../../domain/quality';
import type { Logger } from '../../observability/logger';
import { classifyBigQueryError } from './errors';

export type QualityTarget = Pick<GcpConfig, 'projectId' | 'dataset' | 'location' | 'tables'>;

/** The port the quality activities read and write through; tests may hand in a double. */
export interface QualityStore {
  ensureResultsTable(): Promise<void>;
  freshness(from: string): Promise<FreshnessObservation>;
  /** Posts per window of `windowSeconds` in `[from, to)`, oldest first (`count` windows). */
  volume(from: string, to: string, windowSeconds: number, count: number): Promise<number[]>;
  uniqueness(from: string): Promise<UniquenessObservation>;
  completeness(from: string, fields: RequiredField[]): Promise<CompletenessObservation>;
  validity(from: string, futureLimit: string, languages: string[]): Promise<ValidityObservation>;
  postsSchema(): Promise<LiveColumn[]>;
  deadLetters(from: string, to: string, createdFrom: string): Promise<DeadLetterObservation>;
  reconciliation(start: string, end: string, createdFrom: string): Promise<ReconciliationObservation>;
  /** Writes a run's rows once: a retry with the same run id inserts nothing. */
  writeResults(runId: string, checkedAt: string, rows: DqResultRow[]): Promise<void>;
}

const fq = (gcp: QualityTarget, tableId: string) => `\`${gcp.projectId}.${gcp.dataset}.${tableId}\``;

/** A dead letter's received_at: from the payload's top-level JSON field, else the publish time. */
const DEAD_LETTER_RECEIVED_AT = `COALESCE(SAFE_CAST(REGEXP_EXTRACT(payload, r'"received_at"\\s*:\\s*"([^"]+)"') AS TIMESTAMP), publish_time)`;

const STRING_FIELDS = new Set<RequiredField>(['id', 'text', 'author_id']);
const REQUIRED_FIELDS = new Set<RequiredField>(['id', 'text', 'created_at', 'author_id']);

/** The SQL of each query, exported so unit tests can check pruning and parameters offline. */
export const qualitySql = {
  freshness: (posts: string) =>
    `SELECT COUNT(*) AS n, MAX(ingested_at) AS max_ingested, MAX(created_at) AS max_created
FROM ${posts} WHERE created_at >= @from`,
  volume: (posts: string) =>
    `SELECT DIV(TIMESTAMP_DIFF(created_at, @from, SECOND), @window_seconds) AS bucket, COUNT(*) AS n
FROM ${posts} WHERE created_at >= @from AND created_at < @to
GROUP BY bucket ORDER BY bucket`,
  uniqueness: (posts: string) =>
    `SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS ids FROM ${posts} WHERE created_at >= @from`,
  uniquenessExamples: (posts: string) =>
    `SELECT id, COUNT(*) AS c FROM ${posts} WHERE created_at >= @from
GROUP BY id HAVING COUNT(*) > 1 ORDER BY c DESC, id LIMIT 5`,
  completeness: (posts: string, fields: RequiredField[]) => {
    const parts = fields.map((f) => {
      if (!REQUIRED_FIELDS.has(f)) throw new Error(`completeness: unknown field ${String(f)}`);
      const cond = STRING_FIELDS.has(f) ? `${f} IS NULL OR TRIM(${f}) = ''` : `${f} IS NULL`;
      return `COUNTIF(${cond}) AS missing_${f}`;
    });
    return `SELECT COUNT(*) AS n${parts.map((p) => `, ${p}`).join('')}
FROM ${posts} WHERE created_at >= @from`;
  },
  validity: (posts: string) => {
    const badId = `(id IS NULL OR NOT REGEXP_CONTAINS(id, r'^[0-9]{1,20}$'))`;
    const future = `(created_at > @future_limit)`;
    const badLang = `(lang IS NOT NULL AND lang NOT IN UNNEST(@languages))`;
    const negative = `(${METRIC_COLUMNS.map((c) => `COALESCE(${c}, 0) < 0`).join(' OR ')})`;
    const any = [badId, future, badLang, negative].join(' OR ');
    return `SELECT COUNT(*) AS n, COUNTIF(${any}) AS invalid, COUNTIF(${badId}) AS bad_id,
  COUNTIF(${future}) AS future, COUNTIF(${badLang}) AS bad_lang, COUNTIF(${negative}) AS negative
FROM ${posts} WHERE created_at >= @from`;
  },
  validityExamples: (posts: string) =>
    `SELECT id FROM ${posts} WHERE created_at >= @from AND (
  id IS NULL OR NOT REGEXP_CONTAINS(id, r'^[0-9]{1,20}$') OR created_at > @future_limit
  OR (lang IS NOT NULL AND lang NOT IN UNNEST(@languages))
  OR ${METRIC_COLUMNS.map((c) => `COALESCE(${c}, 0) < 0`).join(' OR ')}
) ORDER BY id LIMIT 5`,
  deadLetters: (deadLetter: string) =>
    `SELECT error_stage AS stage, COUNT(DISTINCT message_id) AS n
FROM ${deadLetter} WHERE first_seen >= @from AND first_seen < @to GROUP BY error_stage`,
  postsIngested: (posts: string) =>
    `SELECT COUNT(*) AS n FROM ${posts}
WHERE created_at >= @created_from AND ingested_at >= @from AND ingested_at < @to`,
  reconciliationPosts: (posts: string) =>
    `SELECT COUNT(DISTINCT id) AS n FROM ${posts}
WHERE created_at >= @created_from AND received_at >= @start AND received_at < @end`,
  reconciliationDeadLetters: (deadLetter: string) =>
    `SELECT COUNT(DISTINCT message_id) AS n FROM ${deadLetter}
WHERE first_seen >= @start AND ${DEAD_LETTER_RECEIVED_AT} >= @start AND ${DEAD_LETTER_RECEIVED_AT} < @end`,
  /**
   * Insert-if-absent in one statement: a retried write of the same run inserts nothing. NULL cells
   * are written as typed NULL literals (`nulls[i]` = the null columns of row i): the emulator
   * mistypes NULL query parameters inside an array of structs.
   */
  writeResults: (results: string, nulls: ReadonlySet<string>[]) => {
    const cols = DQ_RESULTS_TABLE.columns;
    const structs = nulls.map(
      (isNull, i) =>
        `STRUCT(${cols
          .map(
            (c) => `${isNull.has(c.name) ? `CAST(NULL AS ${c.type})` : `@${c.name}_${i}`} AS \`${c.name}\``,
          )
          .join(', ')})`,
    );
    const names = cols.map((c) => `\`${c.name}\``);
    return `INSERT INTO ${results} (${names.join(', ')})
SELECT ${names.map((n) => `r.${n}`).join(', ')} FROM UNNEST([${structs.join(',\n  ')}]) AS r
WHERE NOT EXISTS (SELECT 1 FROM ${results} WHERE checked_at = @checked_at AND run_id = @run_id)`;
  },
};

type Params = Record<string, unknown>;
type Types = Record<string, string | string[]>;

export interface BigQueryQualityStoreDeps {
  bq: BigQuery;
  gcp: QualityTarget;
  logger?: Logger;
}

const num = (v: unknown): number => (v === null || v === undefined ? 0 : Number(v));
const tsValue = (v: unknown): string | null => {
  if (v === null || v === undefined) return null;
  if (typeof v === 'object' && 'value' in (v as object))
    return new Date(String((v as { value: string }).value)).toISOString();
  return new Date(String(v)).toISOString();
};

const alreadyExists = (err: unknown) => {
  const e = err as { code?: number; message?: string };
  return e?.code === 409 || /already (exists|created)/i.test(e?.message ?? '');
};

export function createBigQueryQualityStore({ bq, gcp, logger }: BigQueryQualityStoreDeps): QualityStore {
  const posts = fq(gcp, gcp.tables.posts);
  const deadLetter = fq(gcp, gcp.tables.deadLetter);
  const results = fq(gcp, gcp.tables.dqResults);
  const ts = (s: string) => bq.timestamp(s);

  async function query<T = Record<string, unknown>>(
    table: string,
    sql: string,
    params: Params,
    types?: Types,
  ): Promise<T[]> {
    try {
      const opts: Query = { query: sql, params, location: gcp.location };
      if (types) opts.types = types;
      // `jobs.query`, not `jobs.insert` + results: the same on BigQuery, but the emulator would
      // keep an anonymous results dataset and table per check run (see adapters/bigquery/writer.ts).
      const [rows] = await bq.query(opts);
      return rows as T[];
    } catch (err) {
      throw classifyBigQueryError(err, { operation: 'data-quality query', table: `${gcp.dataset}.${table}` });
    }
  }

  return {
    async ensureResultsTable() {
      const where = `${gcp.dataset}.${gcp.tables.dqResults}`;
      try {
        const ds = bq.dataset(gcp.dataset, { location: gcp.location });
        const [dsExists] = await ds.exists();
        if (!dsExists)
          await ds.create({ location: gcp.location }).catch((e) => {
            if (!alreadyExists(e)) throw e;
          });
        const table = ds.table(gcp.tables.dqResults);
        const [exists] = await table.exists();
        if (exists) return;
        await table.create({
          schema: {
            fields: DQ_RESULTS_TABLE.columns.map((c) => ({
              name: c.name,
              type: c.type,
              mode: c.mode,
              description: c.description,
            })),
          },
          description: DQ_RESULTS_TABLE.description,
          timePartitioning: { type: 'DAY', field: DQ_RESULTS_TABLE.partitionField },
          clustering: { fields: DQ_RESULTS_TABLE.clustering },
        });
        logger?.info({ table: where }, 'created table');
      } catch (err) {
        if (alreadyExists(err)) return;
        throw classifyBigQueryError(err, { operation: 'create table', table: where });
      }
    },

    async freshness(from) {
      const [r] = await query(gcp.tables.posts, qualitySql.freshness(posts), { from: ts(from) });
      return {
        rows: num(r?.n),
        maxIngestedAt: tsValue(r?.max_ingested),
        maxCreatedAt: tsValue(r?.max_created),
      };
    },

    async volume(from, to, windowSeconds, count) {
      const rows = await query<{ bucket: unknown; n: unknown }>(
        gcp.tables.posts,
        qualitySql.volume(posts),
        { from: ts(from), to: ts(to), window_seconds: String(windowSeconds) },
        { window_seconds: 'INT64' },
      );
      const counts = new Array<number>(count).fill(0);
      for (const r of rows) {
        const b = num(r.bucket);
        if (b >= 0 && b < count) counts[b] = num(r.n);
      }
      return counts;
    },

    async uniqueness(from) {
      const params = { from: ts(from) };
      const [r] = await query(gcp.tables.posts, qualitySql.uniqueness(posts), params);
      const rows = num(r?.n);
      const distinctIds = num(r?.ids);
      const examples =
        rows > distinctIds
          ? (
              await query<{ id: string; c: unknown }>(
                gcp.tables.posts,
                qualitySql.uniquenessExamples(posts),
                params,
              )
            ).map((e) => ({ id: e.id, count: num(e.c) }))
          : [];
      return { rows, distinctIds, examples };
    },

    async completeness(from, fields) {
      const [r] = await query(gcp.tables.posts, qualitySql.completeness(posts, fields), { from: ts(from) });
      const missing: CompletenessObservation['missing'] = {};
      for (const f of fields) missing[f] = num(r?.[`missing_${f}`]);
      return { rows: num(r?.n), missing };
    },

    async validity(from, futureLimit, languages) {
      const params = { from: ts(from), future_limit: ts(futureLimit), languages };
      const types: Types = { languages: ['STRING'] };
      const [r] = await query(gcp.tables.posts, qualitySql.validity(posts), params, types);
      const invalidRows = num(r?.invalid);
      const examples =
        invalidRows > 0
          ? (
              await query<{ id: string | null }>(
                gcp.tables.posts,
                qualitySql.validityExamples(posts),
                params,
                types,
              )
            ).map((e) => e.id ?? 'NULL')
          : [];
      return {
        rows: num(r?.n),
        invalidRows,
        badId: num(r?.bad_id),
        futureCreatedAt: num(r?.future),
        unknownLang: num(r?.bad_lang),
        negativeMetric: num(r?.negative),
        examples,
      };
    },

    async postsSchema() {
      try {
        const [meta] = await bq.dataset(gcp.dataset).table(gcp.tables.posts).getMetadata();
        return ((meta.schema?.fields ?? []) as LiveColumn[]).map((f) => ({
          name: f.name,
          type: f.type,
          mode: f.mode,
          description: f.description,
        }));
      } catch (err) {
        throw classifyBigQueryError(err, {
          operation: 'read schema',
          table: `${gcp.dataset}.${gcp.tables.posts}`,
        });
      }
    },

    async deadLetters(from, to, createdFrom) {
      const stages = await query<{ stage: string; n: unknown }>(
        gcp.tables.deadLetter,
        qualitySql.deadLetters(deadLetter),
        { from: ts(from), to: ts(to) },
      );
      const [p] = await query(gcp.tables.posts, qualitySql.postsIngested(posts), {
        from: ts(from),
        to: ts(to),
        created_from: ts(createdFrom),
      });
      const byStage: Record<string, number> = {};
      let deadLetters = 0;
      for (const s of stages) {
        byStage[s.stage] = num(s.n);
        deadLetters += num(s.n);
      }
      return { deadLetters, postsIngested: num(p?.n), byStage };
    },

    async reconciliation(start, end, createdFrom) {
      const params = { start: ts(start), end: ts(end), created_from: ts(createdFrom) };
      const [p] = await query(gcp.tables.posts, qualitySql.reconciliationPosts(posts), params);
      const [d] = await query(
        gcp.tables.deadLetter,
        qualitySql.reconciliationDeadLetters(deadLetter),
        params,
      );
      return { loaded: num(p?.n), deadLetters: num(d?.n) };
    },

    async writeResults(runId, checkedAt, rows) {
      if (rows.length === 0) return;
      const params: Params = { run_id: runId, checked_at: ts(checkedAt) };
      const types: Types = {};
      const nulls = rows.map((row, i) => {
        const isNull = new Set<string>();
        for (const c of DQ_RESULTS_TABLE.columns) {
          const v = row[c.name as keyof DqResultRow];
          const key = `${c.name}_${i}`;
          if (v === null || v === undefined) {
            isNull.add(c.name);
            continue;
          }
          types[key] = c.type;
          params[key] = c.type === 'TIMESTAMP' ? ts(String(v)) : c.type === 'FLOAT64' ? String(v) : v;
        }
        return isNull;
      });
      await query(gcp.tables.dqResults, qualitySql.writeResults(results, nulls), params, types);
    },
  };
}
