/**
 * The exactly-once writer. Every write goes through a per-batch staging table and a MERGE that
 * inserts only rows whose key is not in the target yet:
 *
 *   1. NDJSON load job into `_stg_<table>_<runId>` (WRITE_TRUNCATE, deterministic job id);
 *   2. `MERGE target USING staging ON key [AND partition range] WHEN NOT MATCHED THEN INSERT ...`;
 *   3. drop the staging table.
 *
 * Rerunning any step after a crash is harmless: the load truncates, the MERGE skips keys already
 * present, so redelivered or repeated messages never add a second row. Load jobs are free; only the
 * MERGE scans bytes (the key column and, for `posts`, only the partitions the batch's `created_at`
 * dates touch). Both BigQuery and the goccy emulator execute this (the emulator needs the MERGE source
 * to be a plain table and the partition filter as DATE literals, which is why it is written this way).
 */
import type { BigQuery, Job, Table } from '@google-cloud/bigquery';
import {
  DEAD_LETTER_TABLE,
  LOAD_RUNS_TABLE,
  POSTS_TABLE,
  type ActualColumn,
  type Column,
  type DeadLetterRow,
  type LoadRunRow,
  type Row,
  type TableSpec,
} from '../../domain/bigquery-schema';
import type { Logger } from '../../observability/logger';
import { classifyBigQueryError } from './errors';
import {
  ensureTable,
  ensureTables,
  fqn,
  tableIds,
  type BigQueryTarget,
  type ProvisionReport,
} from './provision';

/** A row BigQuery refused (a load or streaming-insert error), with the reason. */
export interface RejectedRow {
  row: Row;
  reason: string;
}

export interface MergeResult {
  /** Rows the MERGE inserted (keys that were not in the target yet). */
  inserted: number;
  /** Rows BigQuery rejected; they were not written and belong in the dead-letter table. */
  rejected: RejectedRow[];
}

/** The port the load activity writes through; tests hand in a double of it. */
export interface LoadSink {
  ensureTables(): Promise<ProvisionReport>;
  /** Current columns of `posts` (cached; refreshed after a patch). */
  postsColumns(): Promise<ActualColumn[]>;
  /** Adds NULLABLE columns to `posts`; returns the names added. Breaking differences throw. */
  addPostsColumns(columns: Column[]): Promise<string[]>;
  /** Rows must be unique by id. */
  mergePosts(runId: string, rows: Row[], columns: Column[]): Promise<MergeResult>;
  /** Rows must be unique by message_id. Returns rows inserted. */
  mergeDeadLetters(runId: string, rows: DeadLetterRow[]): Promise<number>;
  recordLoadRun(row: LoadRunRow): Promise<void>;
}

export interface BigQueryLoadSinkDeps {
  bq: BigQuery;
  gcp: BigQueryTarget;
  logger: Logger;
}

const STREAM_INSERT_CHUNK = 500;
const safeId = (s: string) => s.replace(/[^A-Za-z0-9_]/g, '_').slice(0, 900);
const isDuplicateJob = (err: unknown) => {
  const e = err as { code?: number; message?: string };
  return e?.code === 409 || /already (exists|created)/i.test(e?.message ?? '');
};
const ISO_DATE_RE = /^\d{4}-\d{2}-\d{2}$/;

/** [min, max] UTC dates (YYYY-MM-DD) of a TIMESTAMP column over the rows, for partition pruning. */
export function dateRange(rows: Row[], column: string): [string, string] | null {
  let lo: string | null = null;
  let hi: string | null = null;
  for (const r of rows) {
    const v = r[column];
    if (typeof v !== 'string') return null; // a NULL partition value: no pruning
    const t = Date.parse(v);
    if (!Number.isFinite(t)) return null;
    const d = new Date(t).toISOString().slice(0, 10);
    if (lo === null || d < lo) lo = d;
    if (hi === null || d > hi) hi = d;
  }
  return lo && hi && ISO_DATE_RE.test(lo) && ISO_DATE_RE.test(hi) ? [lo, hi] : null;
}

/** The MERGE statement of one staged batch (insert only when the key is not matched). */
export function buildMergeSql(
  target: string,
  staging: string,
  spec: TableSpec,
  columns: string[],
  range: [string, string] | null,
): string {
  const on = spec.key.map((k) => `T.${k} = S.${k}`);
  if (range) on.push(`DATE(T.${spec.partitionField}) BETWEEN DATE '${range[0]}' AND DATE '${range[1]}'`);
  const cols = columns.map((c) => `\`${c}\``);
  return [
    `MERGE ${target} T`,
    `USING ${staging} S`,
    `ON ${on.join(' AND ')}`,
    `WHEN NOT MATCHED THEN INSERT (${cols.join(', ')})`,
    `VALUES (${cols.map((c) => `S.${c}`).join(', ')})`,
  ].join('\n');
}

/** Maps a `PartialFailureError` of `table.insert(rows, {raw: true})` back to the rows and reasons. */
export function rejectedFromPartialFailure(err: unknown): RejectedRow[] | null {
  const e = err as {
    name?: string;
    errors?: { row?: { json?: Row } | Row; errors?: { reason?: string; message?: string }[] }[];
  };
  if (e?.name !== 'PartialFailureError' || !Array.isArray(e.errors)) return null;
  return e.errors.map((f) => {
    const raw = (f.row ?? {}) as { json?: Row };
    const row = (raw.json ?? raw) as Row;
    const reason = (f.errors ?? [])
      .map((x) => `${x.reason ?? 'error'}: ${x.message ?? ''}`.trim())
      .join('; ');
    return { row, reason: reason || 'rejected by BigQuery' };
  });
}

export function createBigQueryLoadSink({ bq, gcp, logger }: BigQueryLoadSinkDeps): LoadSink {
  const ids = tableIds(gcp);
  const dataset = bq.dataset(gcp.dataset);
  let postsColumnsCache: ActualColumn[] | undefined;

  async function runLoadJob(staging: Table, columns: Column[], rows: Row[], jobId: string): Promise<void> {
    const ndjson = rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
    const metadata = {
      sourceFormat: 'NEWLINE_DELIMITED_JSON',
      schema: { fields: columns.map((c) => ({ name: c.name, type: c.type, mode: c.mode })) },
      writeDisposition: 'WRITE_TRUNCATE',
      createDisposition: 'CREATE_IF_NEEDED',
      jobId,
    };
    const job = await new Promise<Job>((resolve, reject) => {
      const ws = staging.createWriteStream(metadata as Parameters<Table['createWriteStream']>[0]);
      ws.once('job', (j: Job) => resolve(j));
      ws.once('error', reject);
      ws.end(ndjson);
    });
    const status = (
      job.metadata as { status?: { state?: string; errorResult?: unknown; errors?: unknown[] } }
    )?.status;
    if (status?.state === 'DONE') {
      if (status.errorResult) {
        throw Object.assign(new Error(`load job ${jobId} failed`), {
          code: 400,
          errors: status.errors ?? [status.errorResult],
        });
      }
      return;
    }
    await job.promise();
  }

  /** A load job with a deterministic id; `_2`, `_3`… when that id was already used by a run that crashed. */
  async function stage(staging: Table, columns: Column[], rows: Row[], jobBase: string): Promise<void> {
    for (let n = 1; ; n++) {
      const jobId = n === 1 ? jobBase : `${jobBase}_${n}`;
      try {
        await runLoadJob(staging, columns, rows, jobId);
        return;
      } catch (err) {
        if (isDuplicateJob(err) && n < 5) continue;
        throw err;
      }
    }
  }

  /** Fallback when a load job rejects the file: stream the rows so each bad row is named. */
  async function stageByInsert(staging: Table, columns: Column[], rows: Row[], keyOf: (r: Row) => string) {
    await staging.delete().catch(() => undefined);
    await staging.create({
      schema: { fields: columns.map((c) => ({ name: c.name, type: c.type, mode: c.mode })) },
    });
    const rejected: RejectedRow[] = [];
    for (let i = 0; i < rows.length; i += STREAM_INSERT_CHUNK) {
      const chunk = rows.slice(i, i + STREAM_INSERT_CHUNK).map((r) => ({ insertId: keyOf(r), json: r }));
      try {
        await staging.insert(chunk, { raw: true, skipInvalidRows: true });
      } catch (err) {
        const bad = rejectedFromPartialFailure(err);
        if (!bad) throw err;
        rejected.push(...bad);
      }
    }
    return rejected;
  }

  async function runQuery(sql: string, jobBase: string): Promise<Job> {
    for (let n = 1; ; n++) {
      const jobId = n === 1 ? jobBase : `${jobBase}_${n}`;
      try {
        const [job] = await bq.createQueryJob({ query: sql, jobId, location: gcp.location });
        await job.getQueryResults();
        return job;
      } catch (err) {
        if (isDuplicateJob(err) && n < 5) continue;
        throw err;
      }
    }
  }

  async function insertedCount(job: Job, countSql: string, jobBase: string): Promise<number> {
    const [meta] = await job.getMetadata();
    const stats = meta?.statistics?.query as
      { dmlStats?: { insertedRowCount?: string }; numDmlAffectedRows?: string } | undefined;
    const n = stats?.dmlStats?.insertedRowCount ?? stats?.numDmlAffectedRows;
    if (n !== undefined) return Number(n);
    // The emulator reports no DML statistics: count the rows stamped with this run instead.
    const countJob = await runQuery(countSql, jobBase);
    const [rows] = await countJob.getQueryResults();
    return Number((rows[0] as { n?: number | string } | undefined)?.n ?? 0);
  }

  async function mergeViaStaging(
    spec: TableSpec,
    runId: string,
    rows: Row[],
    columns: Column[],
    keyOf: (r: Row) => string,
    prune: boolean,
  ): Promise<MergeResult> {
    const tableId = ids[spec.name];
    const where = `${gcp.dataset}.${tableId}`;
    const run = safeId(runId);
    const stagingId = `_stg_${tableId}_${run}`.slice(0, 1000);
    const staging = dataset.table(stagingId);
    let step = 'load staging';
    try {
      let rejected: RejectedRow[] = [];
      try {
        await stage(staging, columns, rows, `${run}_${tableId}_load`);
      } catch (err) {
        const e = err as { code?: number; errors?: { reason?: string }[] };
        const invalid = e?.code === 400 || (e?.errors ?? []).some((x) => x.reason === 'invalid');
        if (!invalid) throw err;
        logger.warn(
          { table: where, err },
          'load job rejected the batch; staging row by row to name bad rows',
        );
        step = 'stream staging';
        rejected = await stageByInsert(staging, columns, rows, keyOf);
      }
      const rejectedKeys = new Set(rejected.map((r) => keyOf(r.row)));
      const kept = rows.filter((r) => !rejectedKeys.has(keyOf(r)));
      if (kept.length === 0) return { inserted: 0, rejected };
      step = 'merge';
      const range = prune ? dateRange(kept, spec.partitionField) : null;
      const target = fqn(gcp, tableId);
      const sql = buildMergeSql(
        target,
        fqn(gcp, stagingId),
        spec,
        columns.map((c) => c.name),
        range,
      );
      const job = await runQuery(sql, `${run}_${tableId}_merge`);
      step = 'count';
      const rangeFilter = range
        ? ` AND DATE(${spec.partitionField}) BETWEEN DATE '${range[0]}' AND DATE '${range[1]}'`
        : '';
      const inserted = await insertedCount(
        job,
        `SELECT COUNT(*) AS n FROM ${target} WHERE ${spec.name === 'load_runs' ? 'run_id' : 'load_run_id'} = '${runId.replace(/'/g, '')}'${rangeFilter}`,
        `${run}_${tableId}_count`,
      );
      step = 'drop staging';
      await staging.delete().catch((err: { code?: number }) => {
        if (err?.code !== 404) logger.warn({ table: stagingId, err }, 'could not drop staging table');
      });
      return { inserted, rejected };
    } catch (err) {
      throw classifyBigQueryError(err, { operation: step, table: where });
    }
  }

  return {
    ensureTables: async () => {
      const report = await ensureTables(bq, gcp, logger);
      postsColumnsCache = undefined;
      return report;
    },

    async postsColumns() {
      if (!postsColumnsCache) {
        try {
          const [meta] = await dataset.table(ids.posts).getMetadata();
          postsColumnsCache = (meta.schema?.fields ?? []) as ActualColumn[];
        } catch (err) {
          throw classifyBigQueryError(err, { operation: 'get table', table: `${gcp.dataset}.${ids.posts}` });
        }
      }
      return postsColumnsCache;
    },

    async addPostsColumns(columns) {
      const added = await ensureTable(bq, gcp, ids.posts, POSTS_TABLE, columns, logger);
      postsColumnsCache = undefined;
      return added;
    },

    mergePosts: (runId, rows, columns) =>
      rows.length === 0
        ? Promise.resolve({ inserted: 0, rejected: [] })
        : mergeViaStaging(POSTS_TABLE, runId, rows, columns, (r) => String(r.id), true),

    async mergeDeadLetters(runId, rows) {
      if (rows.length === 0) return 0;
      const res = await mergeViaStaging(
        DEAD_LETTER_TABLE,
        runId,
        rows,
        DEAD_LETTER_TABLE.columns,
        (r) => String(r.message_id),
        false,
      );
      if (res.rejected.length > 0) {
        // The dead-letter table takes strings only; a rejection here is a bug, not data: fail loudly.
        throw new Error(
          `${gcp.dataset}.${ids.posts_dead_letter}: ${res.rejected.length} dead-letter rows rejected: ${res.rejected[0]!.reason}`,
        );
      }
      return res.inserted;
    },

    async recordLoadRun(row) {
      await mergeViaStaging(
        LOAD_RUNS_TABLE,
        row.run_id,
        [row],
        LOAD_RUNS_TABLE.columns,
        (r) => String(r.run_id),
        false,
      );
    },
  };
}
