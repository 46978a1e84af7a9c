/**
 * The exactly-once writer. Every write inserts only rows whose key is not in the target yet, so
 * rerunning any step after a crash (or a redelivered / repeated message) never adds a second row.
 *
 * `posts` (the volume): a staging table and an insert of the keys not yet present.
 *   1. NDJSON load job into a staging slot (see {@link stagingSlotId}; WRITE_TRUNCATE, deterministic job id);
 *   2. `INSERT INTO posts SELECT … FROM staging S WHERE S.load_run_id = '<run>' AND S.id NOT IN
 *      (SELECT id FROM posts [partition range])` (see buildInsertAbsentSql for why not a MERGE);
 *   3. when fewer rows went in than were staged, a check that every staged id is now in `posts`
 *      (the rest were there already); otherwise another attempt overwrote the slot, and the batch
 *      fails before its ack and is retried.
 * Load jobs are free; only the insert's key lookup scans bytes (the key column, and only the partitions the
 * batch's `created_at` dates touch), and the check in step 3 runs only for batches with duplicates.
 *
 * Why staging slots reused with WRITE_TRUNCATE, not a table per batch: the goccy emulator rebuilds its
 * whole SQL catalog (ZetaSQL compiled to wasm, whose heap never shrinks) on every table deletion,
 * about 17 MiB a time, and each creation adds about 1.3 MiB (measured with
 * `tsx dev/bench/emulator-growth.ts`); a table per batch crashed it within an hour of a demo and left a
 * database it could not reopen. A WRITE_TRUNCATE load into an existing table is a row delete there,
 * no DDL. On BigQuery both cost the same (load jobs are free; a table holds at most one batch), and
 * slots rotate every half hour so that no table gets near BigQuery's 1,500 load jobs per table per
 * day: at most 48 slots per load workflow, each used for one half hour a day.
 *
 * `posts_dead_letter` and `load_runs` (a few rows per batch): one idempotent DML statement per chunk,
 *   `INSERT INTO t (...) SELECT ... FROM UNNEST([STRUCT(...), ...]) AS S
 *    WHERE NOT EXISTS (SELECT 1 FROM t T WHERE T.key = S.key AND DATE(T.<partition>) >= DATE '...')`
 * with the values as typed query parameters. No staging table.
 *
 * Both BigQuery and the goccy emulator execute all of this. Emulator constraints that shaped it: the
 * insert's source must be a plain table; partition filters are DATE literals (timestamp parameters in
 * conditions match nothing there); numeric parameters are typed strings; a NULL inside an
 * array of structs must be a typed `CAST(NULL AS T)` literal, not a parameter; no DML statistics.
 */
import { Readable } from 'node:stream';
import type { BigQuery, Job, Table } from '@google-cloud/bigquery';
import { ApplicationFailure } from '@temporalio/common';
import {
  DEAD_LETTER_TABLE,
  LOAD_FENCES_TABLE,
  LOAD_RUNS_TABLE,
  POSTS_TABLE,
  type ActualColumn,
  type Column,
  type DeadLetterRow,
  type LoadRunRow,
  type Row,
  type TableSpec,
} from '../../domain/bigquery-schema';
import { BigQueryFailureType, LOAD_ATTEMPT_SUPERSEDED } from '../../domain/failure-types';
import type { Logger } from '../../observability/logger';
import { classifyBigQueryError } from './errors';
import { withJobIdRetry } from './jobs';
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

export interface InsertResult {
  /** Rows the insert added (keys that were not in the target yet). */
  inserted: number;
  /** Rows BigQuery rejected; they were not written and belong in the dead-letter table. */
  rejected: RejectedRow[];
}

/**
 * A load attempt's fencing token. The load workflow hands every batch a token larger than any
 * before it in its lane (workflow time in ms × 1,000 + the activity attempt, so a retry outranks the
 * attempt it replaces); the attempt claims it in `load_fences` before it writes, and its insert into
 * `posts` only goes in while the token is still the lane's largest. A zombie attempt (one that
 * outlived its heartbeat or start-to-close timeout and was retried, or whose load child was
 * terminated and restarted) therefore writes nothing once a newer attempt has claimed the lane.
 *
 * Why a token in a table, not a lock: BigQuery has no row locks across statements, and INSERTs do
 * not conflict with each other even inside transactions. The claim and the fenced insert are two
 * statements, so one window stays: a zombie insert that *started* before the newer claim committed.
 * The attempt heartbeats through the batch and stops at the next step once Temporal cancels it,
 * which keeps that window to one statement; the duplicates check and its repair
 * (`adapters/bigquery/repair.ts`) are the last line. On the emulator every statement is serialised,
 * so the window does not exist there.
 */
export interface LaneFence {
  /** The lane: its load workflow id. */
  lane: string;
  token: number;
  /** When the attempt claimed it (ISO): bounds the partitions the fence check reads. */
  claimedAt: string;
}

/** The port the load activity writes through; tests hand in a double of it. */
export interface LoadSink {
  ensureTables(): Promise<ProvisionReport>;
  /** Current columns of `posts` (cached; refreshed after a patch). */
  postsColumns(): Promise<ActualColumn[]>;
  /** Adds NULLABLE columns to `posts`; returns the names added. Breaking differences throw. */
  addPostsColumns(columns: Column[]): Promise<string[]>;
  /**
   * Rows must be unique by id. `stagingOwner` (the load workflow id) names the staging slots.
   * @default stagingOwner 'load'
   */
  insertPosts(
    runId: string,
    rows: Row[],
    columns: Column[],
    stagingOwner?: string,
    fence?: LaneFence,
  ): Promise<InsertResult>;
  /** Records `fence` as its lane's newest token (idempotent); see {@link LaneFence}. */
  claimLane(fence: LaneFence, runId: string): Promise<void>;
  /** Rows must be unique by payload_hash (the key). Returns rows inserted. */
  insertDeadLetters(runId: string, rows: DeadLetterRow[]): Promise<number>;
  recordLoadRun(row: LoadRunRow): Promise<void>;
}

export interface BigQueryLoadSinkDeps {
  bq: BigQuery;
  gcp: BigQueryTarget;
  logger: Logger;
  /** Picks the staging slot. @default () => new Date() */
  clock?: () => Date;
}

const STREAM_INSERT_CHUNK = 500;
const safeId = (s: string) => s.replace(/[^A-Za-z0-9_]/g, '_').slice(0, 900);
const ISO_DATE_RE = /^\d{4}-\d{2}-\d{2}$/;
/** Minutes a staging slot is used before the next one (48 a day; see the module comment). */
export const STAGING_SLOT_MINUTES = 30;

/**
 * The staging table of a batch: one per (load workflow, half hour of the UTC day), so a workflow's
 * batches reuse a small fixed set of tables. `owner` (the load workflow id) keeps two pipelines that
 * share a dataset apart; an attempt that overwrites a slot another attempt is still using is caught
 * by the post-insert check, not trusted.
 */
export function stagingSlotId(tableId: string, owner: string, at: Date): string {
  const minutes = at.getUTCHours() * 60 + at.getUTCMinutes();
  const slot = Math.floor(minutes / STAGING_SLOT_MINUTES);
  return `_stg_${tableId}_${safeId(owner).slice(0, 200)}_${String(slot).padStart(2, '0')}`;
}

/** NDJSON of `rows` in chunks of about `chunkBytes` characters (one JSON line per row). */
export function* ndjsonChunks(rows: Row[], chunkBytes = 256 * 1024): Generator<string> {
  let buf: string[] = [];
  let size = 0;
  for (const r of rows) {
    const line = JSON.stringify(r) + '\n';
    buf.push(line);
    size += line.length;
    if (size >= chunkBytes) {
      yield buf.join('');
      buf = [];
      size = 0;
    }
  }
  if (buf.length > 0) yield buf.join('');
}

/** Rows a DML job inserted, from its statistics; undefined when there are none (the emulator). */
function dmlInserted(meta: unknown): number | undefined {
  const stats = (meta as { statistics?: { query?: unknown } } | undefined)?.statistics?.query as
    { dmlStats?: { insertedRowCount?: string }; numDmlAffectedRows?: string } | undefined;
  const n = stats?.dmlStats?.insertedRowCount ?? stats?.numDmlAffectedRows;
  return n === undefined ? undefined : Number(n);
}

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

/**
 * The statement that moves a staged batch into its target: insert the staged rows whose key is not in
 * the target yet (partition-pruned with DATE literals). `INSERT … WHERE key NOT IN (SELECT key …)`
 * rather than `MERGE … WHEN NOT MATCHED`: the same result and billing on BigQuery, but the goccy
 * emulator runs a MERGE as a nested loop (116 s for 2,000 staged rows against 6,000, growing with the
 * table) and this as a hashed lookup (55 ms for the same rows, measured here).
 */
export function buildInsertAbsentSql(
  target: string,
  staging: string,
  spec: TableSpec,
  columns: string[],
  range: [string, string] | null,
  /** Only staged rows of this run (a slot is shared over time; see {@link stagingSlotId}). */
  runId?: string,
  /** Only while this token is its lane's newest in the fences table (see {@link LaneFence}). */
  fence?: { table: string; fence: LaneFence },
): string {
  const where = range
    ? ` WHERE DATE(T.${spec.partitionField}) BETWEEN DATE '${range[0]}' AND DATE '${range[1]}'`
    : '';
  const cols = columns.map((c) => `\`${c}\``);
  const absent =
    spec.key.length === 1
      ? `S.${spec.key[0]} NOT IN (SELECT T.${spec.key[0]} FROM ${target} T${where})`
      : `NOT EXISTS (SELECT 1 FROM ${target} T WHERE ${spec.key.map((k) => `T.${k} = S.${k}`).join(' AND ')}${
          range ? where.replace(' WHERE ', ' AND ') : ''
        })`;
  return [
    `INSERT INTO ${target} (${cols.join(', ')})`,
    `SELECT ${cols.map((c) => `S.${c}`).join(', ')}`,
    `FROM ${staging} S`,
    `WHERE ${runId ? `S.load_run_id = '${runId.replace(/[^A-Za-z0-9_]/g, '')}' AND ` : ''}${absent}`,
    ...(fence ? [`AND ${fenceHolds(fence.table, fence.fence)}`] : []),
  ].join('\n');
}

/** A lane key as a SQL string literal (workflow ids: letters, digits, - _ . only). */
const laneLiteral = (lane: string) => `'${lane.replace(/[^A-Za-z0-9_.-]/g, '')}'`;

/** The partitions a fence check reads: a day before the claim (a newer claim is never older). */
const fenceSince = (f: LaneFence) =>
  new Date(Date.parse(f.claimedAt) - 86_400_000).toISOString().slice(0, 10);

/** The SQL of the newest token of a lane. */
export function newestTokenSql(fences: string, f: LaneFence): string {
  return (
    `SELECT MAX(F.token) FROM ${fences} F WHERE F.lane = ${laneLiteral(f.lane)}` +
    ` AND DATE(F.claimed_at) >= DATE '${fenceSince(f)}'`
  );
}

/** The condition that `f` is still its lane's newest token. */
export function fenceHolds(fences: string, f: LaneFence): string {
  return `(${newestTokenSql(fences, f)}) = ${Math.trunc(f.token)}`;
}

/** A parameterised statement: SQL text, parameter values, and their BigQuery types. */
export interface ParameterisedSql {
  sql: string;
  /** TIMESTAMP values are ISO strings here; the sink wraps them for the client. */
  params: Record<string, string | string[]>;
  types: Record<string, string | string[]>;
}

/** Dead letters per INSERT statement: ≤ 10 parameters a row keeps a chunk under BigQuery's 10,000. */
export const DML_CHUNK_ROWS = 500;
/** Parameter bytes per INSERT statement (BigQuery allows 10 MB per request; keep well clear). */
export const DML_CHUNK_BYTES = 2_000_000;

/** Splits rows into chunks of at most `maxRows` rows and about `maxBytes` of JSON each (never empty). */
export function chunkRows<T extends Row>(
  rows: T[],
  maxRows = DML_CHUNK_ROWS,
  maxBytes = DML_CHUNK_BYTES,
): T[][] {
  const out: T[][] = [];
  let cur: T[] = [];
  let bytes = 0;
  for (const r of rows) {
    const size = JSON.stringify(r).length;
    if (cur.length > 0 && (cur.length >= maxRows || bytes + size > maxBytes)) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(r);
    bytes += size;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/**
 * The lower bound (a day before the earliest value of `column`) of the partitions that can already
 * hold these rows' keys, or null (no pruning) when a value is missing. A dead letter is first seen,
 * and a load run started, after its messages were published: a row from any earlier attempt is in a
 * partition at or after that day (the day of slack absorbs clock skew between Pub/Sub and the worker).
 */
export function pruneSince(rows: Row[], column: string): string | null {
  let lo: number | null = null;
  for (const r of rows) {
    const v = r[column];
    const t = typeof v === 'string' ? Date.parse(v) : NaN;
    if (!Number.isFinite(t)) return null;
    if (lo === null || t < lo) lo = t;
  }
  if (lo === null) return null;
  const d = new Date(lo - 86_400_000).toISOString().slice(0, 10);
  return ISO_DATE_RE.test(d) ? d : null;
}

/**
 * An idempotent insert of `rows` into `target` without a staging table:
 * `INSERT INTO target (...) SELECT ... FROM UNNEST([STRUCT(...), ...]) AS S WHERE NOT EXISTS (...)`.
 * A row whose key is already in the target (an earlier attempt wrote it) is skipped, so rerunning
 * the statement inserts nothing. NULLs are typed literals and empty arrays typed empty literals (the
 * emulator mistypes NULL parameters inside an array of structs); every other value is a parameter,
 * numbers as typed strings. `since` (YYYY-MM-DD) bounds the partitions the existence check scans.
 */
export function buildInsertIfAbsent(
  target: string,
  spec: TableSpec,
  columns: Column[],
  rows: Row[],
  since: string | null,
): ParameterisedSql {
  const params: ParameterisedSql['params'] = {};
  const types: ParameterisedSql['types'] = {};
  const structs = rows.map((row, i) => {
    const cells = columns.map((c) => {
      const v = row[c.name];
      const name = `${c.name}_${i}`;
      let expr: string;
      if (c.mode === 'REPEATED') {
        const xs = Array.isArray(v) ? v.map(String) : [];
        if (xs.length === 0) expr = `ARRAY<${c.type}>[]`;
        else {
          params[name] = xs;
          types[name] = [c.type];
          expr = `@${name}`;
        }
      } else if (v === null || v === undefined) {
        expr = `CAST(NULL AS ${c.type})`;
      } else {
        params[name] = Array.isArray(v) ? JSON.stringify(v) : String(v);
        types[name] = c.type;
        expr = `@${name}`;
      }
      return `${expr} AS \`${c.name}\``;
    });
    return `STRUCT(${cells.join(', ')})`;
  });
  const cols = columns.map((c) => `\`${c.name}\``);
  const match = spec.key.map((k) => `T.\`${k}\` = S.\`${k}\``);
  if (since) match.push(`DATE(T.\`${spec.partitionField}\`) >= DATE '${since}'`);
  const sql = [
    `INSERT INTO ${target} (${cols.join(', ')})`,
    `SELECT ${cols.map((c) => `S.${c}`).join(', ')}`,
    `FROM UNNEST([${structs.join(',\n  ')}]) AS S`,
    `WHERE NOT EXISTS (SELECT 1 FROM ${target} T WHERE ${match.join(' AND ')})`,
  ].join('\n');
  return { sql, params, types };
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

export function createBigQueryLoadSink({
  bq,
  gcp,
  logger,
  clock = () => new Date(),
}: BigQueryLoadSinkDeps): LoadSink {
  const ids = tableIds(gcp);
  const dataset = bq.dataset(gcp.dataset);
  let postsColumnsCache: ActualColumn[] | undefined;

  async function runLoadJob(staging: Table, columns: Column[], rows: Row[], jobId: string): Promise<void> {
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
      // Streamed with back-pressure, about 256 KiB at a time: the batch's NDJSON text never exists whole.
      const src = Readable.from(ndjsonChunks(rows));
      src.once('error', reject);
      src.pipe(ws);
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

  const stage = (staging: Table, columns: Column[], rows: Row[], jobBase: string) =>
    withJobIdRetry(jobBase, (jobId) => runLoadJob(staging, columns, rows, jobId));

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

  async function runQuery(sql: string, jobBase: string, bound?: ParameterisedSql): Promise<Job> {
    const params = bound
      ? Object.fromEntries(
          Object.entries(bound.params).map(([k, v]) => [
            k,
            bound.types[k] === 'TIMESTAMP' ? bq.timestamp(String(v)) : v,
          ]),
        )
      : undefined;
    return withJobIdRetry(jobBase, async (jobId) => {
      const [job] = await bq.createQueryJob({
        query: sql,
        jobId,
        location: gcp.location,
        ...(bound ? { params, types: bound.types } : {}),
      });
      await job.getQueryResults();
      return job;
    });
  }

  /**
   * A read-only count through `jobs.query` (`bq.query` without a job id), not `jobs.insert`: the
   * same bytes and price on BigQuery, but the goccy emulator gives every inserted SELECT job an
   * anonymous results dataset and table, DDL that its SQL catalog never gives back (see the module
   * comment). A read needs no deterministic job id: rerunning it changes nothing.
   */
  async function countOf(sql: string, bound?: ParameterisedSql): Promise<number> {
    const [rows] = await bq.query({
      query: sql,
      location: gcp.location,
      ...(bound ? { params: bound.params, types: bound.types } : {}),
    });
    return Number((rows[0] as { n?: number | string } | undefined)?.n ?? 0);
  }

  async function insertedCount(job: Job, countSql: string): Promise<number> {
    const [meta] = await job.getMetadata();
    // The emulator reports no DML statistics: count the rows stamped with this run instead.
    return dmlInserted(meta) ?? countOf(countSql);
  }

  async function insertViaStaging(
    spec: TableSpec,
    runId: string,
    rows: Row[],
    columns: Column[],
    keyOf: (r: Row) => string,
    stagingOwner: string,
    fence?: LaneFence,
  ): Promise<InsertResult> {
    const tableId = ids[spec.name];
    const where = `${gcp.dataset}.${tableId}`;
    const run = safeId(runId);
    let stagingId = stagingSlotId(tableId, stagingOwner, clock());
    let ownTable = false;
    let staging = dataset.table(stagingId);
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
        // Its own table, dropped afterwards: streamed rows sit in a streaming buffer that a slot's
        // next WRITE_TRUNCATE load must not meet. Rare (a batch a load job refused).
        stagingId = `_stg_${tableId}_${run}`.slice(0, 1000);
        staging = dataset.table(stagingId);
        ownTable = true;
        rejected = await stageByInsert(staging, columns, rows, keyOf);
      }
      const rejectedKeys = new Set(rejected.map((r) => keyOf(r.row)));
      const kept = rows.filter((r) => !rejectedKeys.has(keyOf(r)));
      if (kept.length === 0) return { inserted: 0, rejected };
      step = 'insert';
      const range = dateRange(kept, spec.partitionField);
      const target = fqn(gcp, tableId);
      const sql = buildInsertAbsentSql(
        target,
        fqn(gcp, stagingId),
        spec,
        columns.map((c) => c.name),
        range,
        runId,
        fence ? { table: fqn(gcp, ids.load_fences), fence } : undefined,
      );
      const job = await runQuery(sql, `${run}_${tableId}_insert`);
      step = 'count';
      const rangeFilter = range
        ? ` AND DATE(${spec.partitionField}) BETWEEN DATE '${range[0]}' AND DATE '${range[1]}'`
        : '';
      const inserted = await insertedCount(
        job,
        `SELECT COUNT(*) AS n FROM ${target} WHERE load_run_id = '${runId.replace(/'/g, '')}'${rangeFilter}`,
      );
      if (inserted < kept.length && fence) {
        step = 'fence check';
        const newest = await countOf(`SELECT (${newestTokenSql(fqn(gcp, ids.load_fences), fence)}) AS n`);
        if (newest !== fence.token) {
          throw ApplicationFailure.create({
            message:
              `load attempt ${runId} was superseded in lane ${fence.lane} (its token ${fence.token}, ` +
              `the lane's newest ${newest}); it inserted nothing, the newer attempt loads the batch`,
            type: LOAD_ATTEMPT_SUPERSEDED,
            nonRetryable: true,
            details: [{ newestToken: newest }],
          });
        }
      }
      if (inserted < kept.length) {
        // Fewer went in than were staged: the rest must be in the table already (an earlier
        // attempt or batch wrote them). If not, another attempt overwrote this slot between our
        // load and our insert: fail before the ack, and the retry stages the batch again.
        step = 'check';
        const present = await countOf(
          `SELECT COUNT(DISTINCT ${spec.key[0]}) AS n FROM ${target} WHERE ${spec.key[0]} IN UNNEST(@keys)${rangeFilter}`,
          { sql: '', params: { keys: kept.map(keyOf) }, types: { keys: ['STRING'] } },
        );
        if (present < kept.length) {
          // Retryable: the next attempt stages the batch again (under its own run id).
          throw ApplicationFailure.retryable(
            `${kept.length - present} of ${kept.length} staged rows are not in ${where} after the insert: ` +
              `staging table ${stagingId} was overwritten by another attempt`,
            BigQueryFailureType.stagingOverwritten,
          );
        }
      }
      if (ownTable) {
        step = 'drop staging';
        await staging.delete().catch((err: { code?: number }) => {
          if (err?.code !== 404) logger.warn({ table: stagingId, err }, 'could not drop staging table');
        });
      }
      return { inserted, rejected };
    } catch (err) {
      throw classifyBigQueryError(err, { operation: step, table: where });
    }
  }

  /**
   * Idempotent DML insert of small row sets (dead letters, the load_runs row), chunked; see
   * {@link buildInsertIfAbsent}. Returns the rows inserted: from the job statistics, or (the emulator
   * reports none) by counting the rows stamped with `runId` in `runColumn`.
   */
  async function insertIfAbsent(
    spec: TableSpec,
    runId: string,
    rows: Row[],
    sinceColumn: string,
    runColumn: string | null,
  ): Promise<number> {
    const tableId = ids[spec.name];
    const where = `${gcp.dataset}.${tableId}`;
    const target = fqn(gcp, tableId);
    const run = safeId(runId);
    let step = 'insert';
    try {
      let inserted = 0;
      let counted = true;
      const chunks = chunkRows(rows);
      for (const [i, chunk] of chunks.entries()) {
        const since = pruneSince(chunk, sinceColumn);
        const stmt = buildInsertIfAbsent(target, spec, spec.columns, chunk, since);
        const job = await runQuery(stmt.sql, `${run}_${tableId}_insert_${i}`, stmt);
        const [meta] = await job.getMetadata();
        const n = dmlInserted(meta);
        if (n === undefined) counted = false;
        else inserted += n;
      }
      if (counted || !runColumn) return inserted;
      step = 'count';
      const since = pruneSince(rows, sinceColumn);
      return await countOf(
        `SELECT COUNT(*) AS n FROM ${target} WHERE ${runColumn} = '${runId.replace(/'/g, '')}'` +
          (since ? ` AND DATE(${spec.partitionField}) >= DATE '${since}'` : ''),
      );
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

    insertPosts: (runId, rows, columns, stagingOwner = 'load', fence) =>
      rows.length === 0
        ? Promise.resolve({ inserted: 0, rejected: [] })
        : insertViaStaging(POSTS_TABLE, runId, rows, columns, (r) => String(r.id), stagingOwner, fence),

    async claimLane(fence, runId) {
      const row: Row = {
        lane: fence.lane,
        token: fence.token,
        run_id: runId,
        workflow_id: fence.lane,
        claimed_at: fence.claimedAt,
      };
      await insertIfAbsent(LOAD_FENCES_TABLE, `${runId}_fence`, [row], 'claimed_at', null);
    },

    async insertDeadLetters(runId, rows) {
      if (rows.length === 0) return 0;
      return insertIfAbsent(DEAD_LETTER_TABLE, runId, rows, 'publish_time', 'load_run_id');
    },

    async recordLoadRun(row) {
      await insertIfAbsent(LOAD_RUNS_TABLE, row.run_id, [row], 'first_publish_time', null);
    },
  };
}
