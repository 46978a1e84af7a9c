/**
 * The repair of duplicate `posts` rows: the last line of exactly once (issue #13). The loader's
 * fenced insert-if-absent should never leave two rows for one id, but two insert statements running
 * at the same time on real BigQuery can both find an id absent. When that happened, this keeps one
 * row per id and records every row it removes in `load_repairs`, so the table converges to one row
 * per id and nothing disappears without a trace.
 *
 * One pass:
 *   1. read the ids with more than one row (`GROUP BY id HAVING COUNT(*) > 1`, partition-pruned by
 *      `created_at` when `since` is given, at most `maxIds` of them, smallest first);
 *   2. read those ids' rows and choose, per id, the row to keep: the earliest `ingested_at` (the
 *      first load that wrote it), then the smallest `load_run_id` ({@link planRepair});
 *   3. FIRST record every row to remove in `load_repairs`, insert-if-absent on its key
 *      (`post_id`, `removed_load_run_id`), THEN delete exactly those rows, by (id, load_run_id).
 * A crash between 3's statements leaves rows recorded and not yet deleted; the next pass plans the
 * same removals (the kept row is still the earliest), records nothing new and deletes them. A pass
 * that finds no duplicates writes nothing, so a second run changes nothing.
 *
 * A row is addressed by (id, load_run_id): a row to remove whose load_run_id is NULL or shared with
 * another row of the same id cannot be deleted without deleting its twin, so it is left in place,
 * logged and counted as `unrepairable` (one insert statement would have to have written the id
 * twice; the staging batch is unique by id, so this is not expected).
 *
 * Both BigQuery and the goccy emulator run this: partition filters are DATE literals, the id lists
 * are STRING array parameters, the DML runs as jobs with ids derived from the repair id and the plan
 * (a retried attempt with the same plan reuses them, see {@link repairJobBase}), reads go through
 * `jobs.query` (see writer.ts for why).
 */
import { createHash } from 'node:crypto';
import type { BigQuery } from '@google-cloud/bigquery';
import { LOAD_REPAIRS_TABLE, type Row } from '../../domain/bigquery-schema';
import type { Logger } from '../../observability/logger';
import { classifyBigQueryError } from './errors';
import { runDml } from './jobs';
import { fqn, tableIds, type BigQueryTarget } from './provision';
import { buildInsertIfAbsent, chunkRows, type ParameterisedSql } from './writer';

export interface RepairOptions {
  /** Id of this repair run (the quality run id, or a manual id): recorded and used in job ids. */
  repairId: string;
  /** YYYY-MM-DD: only `posts` partitions (created_at) from this UTC day on. Absent = the whole table. */
  since?: string;
  /** Duplicated ids handled in this pass (the smallest first); rerun for the rest. @default 5000 */
  maxIds?: number;
  /** The time recorded as `repaired_at` (ISO). @default now */
  repairedAt?: string;
  /** Plan and report only: record nothing, delete nothing. @default false */
  dryRun?: boolean;
  /** Called between steps (the activity heartbeats). */
  onProgress?: (step: string) => void;
}

/** The identifying columns of a `posts` row, as the repair reads them. */
export interface PostCopy {
  id: string;
  load_run_id: string | null;
  message_id: string | null;
  /** ISO-8601, or null. */
  ingested_at: string | null;
}

export interface RemovedRow {
  postId: string;
  removedLoadRunId: string;
  removedMessageId: string | null;
  removedIngestedAt: string | null;
  keptLoadRunId: string | null;
}

/** A row that stays although it duplicates its id (see the module comment). */
export interface UnrepairableRow {
  postId: string;
  loadRunId: string | null;
  reason: string;
}

export interface RepairReport {
  repairId: string;
  /** Ids found with more than one row in this pass. */
  duplicateIds: number;
  /** Rows deleted (0 on a dry run). */
  rowsRemoved: number;
  /** Duplicate rows left in place because they cannot be told apart from their twin. */
  unrepairable: number;
  /** The rows removed (or, on a dry run, that would be). */
  removed: RemovedRow[];
  unrepairableRows: UnrepairableRow[];
  /** maxIds duplicated ids were found: there may be more; run again. */
  truncated: boolean;
  dryRun: boolean;
}

export interface RepairPlan {
  removed: RemovedRow[];
  unrepairable: UnrepairableRow[];
}

export const DEFAULT_REPAIR_MAX_IDS = 5000;

/** Is `s` a real calendar day written YYYY-MM-DD? */
export function isIsoDate(s: string): boolean {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(s)) return false;
  const t = Date.parse(`${s}T00:00:00Z`);
  return Number.isFinite(t) && new Date(t).toISOString().slice(0, 10) === s;
}

/** Orders copies of one id: the earliest ingested_at first (NULL last), then the smallest load_run_id. */
export function compareCopies(a: PostCopy, b: PostCopy): number {
  const time = (c: PostCopy) => {
    const t = c.ingested_at === null ? NaN : Date.parse(c.ingested_at);
    return Number.isFinite(t) ? t : Infinity;
  };
  const ta = time(a);
  const tb = time(b);
  if (ta !== tb) return ta < tb ? -1 : 1;
  const ra = a.load_run_id;
  const rb = b.load_run_id;
  if (ra === rb) return 0;
  if (ra === null) return 1;
  if (rb === null) return -1;
  return ra < rb ? -1 : 1;
}

/**
 * Per id with more than one copy: keeps the first by {@link compareCopies} and removes the others,
 * except a copy that cannot be addressed alone (its load_run_id NULL or shared with another copy of
 * the id), which is unrepairable. Ids in ascending order, removals in keep-order.
 */
export function planRepair(copies: PostCopy[]): RepairPlan {
  const byId = new Map<string, PostCopy[]>();
  for (const c of copies) {
    const group = byId.get(c.id);
    if (group) group.push(c);
    else byId.set(c.id, [c]);
  }
  const plan: RepairPlan = { removed: [], unrepairable: [] };
  for (const id of [...byId.keys()].sort()) {
    const group = byId.get(id)!;
    if (group.length < 2) continue;
    const sorted = [...group].sort(compareCopies);
    const kept = sorted[0]!;
    const runs = new Map<string | null, number>();
    for (const c of group) runs.set(c.load_run_id, (runs.get(c.load_run_id) ?? 0) + 1);
    for (const c of sorted.slice(1)) {
      if (c.load_run_id === null) {
        plan.unrepairable.push({ postId: id, loadRunId: null, reason: 'load_run_id is NULL' });
      } else if (runs.get(c.load_run_id)! > 1) {
        plan.unrepairable.push({
          postId: id,
          loadRunId: c.load_run_id,
          reason: `${runs.get(c.load_run_id)} rows of this id share load_run_id ${c.load_run_id}`,
        });
      } else {
        plan.removed.push({
          postId: id,
          removedLoadRunId: c.load_run_id,
          removedMessageId: c.message_id,
          removedIngestedAt: c.ingested_at,
          keptLoadRunId: kept.load_run_id,
        });
      }
    }
  }
  return plan;
}

/** The key the delete matches a row by: unambiguous for any id (its length prefixes it). */
export function rowKey(id: string, loadRunId: string): string {
  return `${id.length}:${id}${loadRunId}`;
}
const ROW_KEY_SQL = `CONCAT(CAST(LENGTH(id) AS STRING), ':', id, load_run_id)`;

const partitionFilter = (since: string | undefined, column = 'created_at') =>
  since ? `DATE(${column}) >= DATE '${since}'` : null;
const where = (...conds: (string | null)[]) => {
  const c = conds.filter((x): x is string => x !== null);
  return c.length ? ` WHERE ${c.join(' AND ')}` : '';
};

/** The SQL of each step, exported so unit tests can check pruning and parameters offline. */
export const repairSql = {
  /** Ids with more than one row, smallest first. `maxIds` is a checked integer, inlined. */
  duplicateIds: (posts: string, since: string | undefined, maxIds: number) =>
    `SELECT id FROM ${posts}${where(partitionFilter(since))}
GROUP BY id HAVING COUNT(*) > 1 ORDER BY id LIMIT ${Math.trunc(maxIds)}`,
  /** Every copy of the ids in @ids. */
  copies: (posts: string, since: string | undefined) =>
    `SELECT id, load_run_id, message_id, ingested_at FROM ${posts}${where(
      partitionFilter(since),
      'id IN UNNEST(@ids)',
    )}`,
  /** Deletes exactly the rows whose (id, load_run_id) is in @keys (see {@link rowKey}). */
  delete: (posts: string, since: string | undefined) =>
    `DELETE FROM ${posts}${where(
      partitionFilter(since),
      'id IN UNNEST(@ids)',
      'load_run_id IS NOT NULL',
      `${ROW_KEY_SQL} IN UNNEST(@keys)`,
    )}`,
};

/** The `load_repairs` rows of a plan's removals. */
export function repairRows(removed: RemovedRow[], repairId: string, repairedAt: string): Row[] {
  return removed.map((r) => ({
    post_id: r.postId,
    removed_load_run_id: r.removedLoadRunId,
    removed_message_id: r.removedMessageId,
    removed_ingested_at: r.removedIngestedAt,
    kept_load_run_id: r.keptLoadRunId,
    repair_id: repairId,
    repaired_at: repairedAt,
  }));
}

/**
 * The base of the DML job ids of a pass: the repair id and a hash of the planned removals, so the
 * retry of an attempt with the same plan meets its earlier jobs (and moves on to `_2`…), and a new
 * plan under the same repair id gets new ids. Safe for BigQuery job ids (letters, digits, _ and -).
 */
export function repairJobBase(repairId: string, removed: RemovedRow[]): string {
  const plan = createHash('sha256')
    .update(removed.map((r) => rowKey(r.postId, r.removedLoadRunId)).join('\n'))
    .digest('hex')
    .slice(0, 16);
  return `repair_${repairId.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 200)}_${plan}`;
}

const tsValue = (v: unknown): string | null => {
  if (v === null || v === undefined) return null;
  const raw = typeof v === 'object' && 'value' in v ? String((v as { value: unknown }).value) : String(v);
  const t = Date.parse(raw);
  return Number.isFinite(t) ? new Date(t).toISOString() : raw;
};

/** Runs one repair pass; see the module comment. Idempotent. */
export async function repairDuplicates(
  bq: BigQuery,
  gcp: BigQueryTarget,
  opts: RepairOptions,
  logger?: Logger,
): Promise<RepairReport> {
  const { repairId, since, dryRun = false } = opts;
  const maxIds = opts.maxIds ?? DEFAULT_REPAIR_MAX_IDS;
  if (since !== undefined && !isIsoDate(since))
    throw new Error(`repairDuplicates: since must be YYYY-MM-DD, got ${since}`);
  if (!Number.isSafeInteger(maxIds) || maxIds < 1)
    throw new Error(`repairDuplicates: maxIds must be a positive integer, got ${maxIds}`);
  const ids = tableIds(gcp);
  const posts = fqn(gcp, ids.posts);
  const repairs = fqn(gcp, ids.load_repairs);
  const progress = opts.onProgress ?? (() => undefined);
  let step = 'find duplicates';
  let table = `${gcp.dataset}.${ids.posts}`;

  const read = async <T>(
    sql: string,
    params?: Record<string, unknown>,
    types?: ParameterisedSql['types'],
  ) => {
    const [rows] = await bq.query({
      query: sql,
      location: gcp.location,
      ...(params ? { params, types } : {}),
    });
    return rows as T[];
  };

  /** A DML job under a deterministic id, `_2`, `_3`… when an earlier attempt used it. */
  const dml = (
    sql: string,
    jobBase: string,
    params: Record<string, unknown>,
    types: ParameterisedSql['types'],
  ) => runDml(bq, gcp.location, sql, jobBase, params, types);

  try {
    progress(step);
    const dupIds = (await read<{ id: string }>(repairSql.duplicateIds(posts, since, maxIds))).map(
      (r) => r.id,
    );
    const report: RepairReport = {
      repairId,
      duplicateIds: dupIds.length,
      rowsRemoved: 0,
      unrepairable: 0,
      removed: [],
      unrepairableRows: [],
      truncated: dupIds.length >= maxIds,
      dryRun,
    };
    if (dupIds.length === 0) return report;

    step = 'read copies';
    progress(step);
    const copies = (
      await read<Record<string, unknown>>(
        repairSql.copies(posts, since),
        { ids: dupIds },
        { ids: ['STRING'] },
      )
    ).map((r): PostCopy => ({
      id: String(r.id),
      load_run_id: (r.load_run_id as string | null) ?? null,
      message_id: (r.message_id as string | null) ?? null,
      ingested_at: tsValue(r.ingested_at),
    }));
    const plan = planRepair(copies);
    report.removed = plan.removed;
    report.unrepairableRows = plan.unrepairable;
    report.unrepairable = plan.unrepairable.length;
    for (const u of plan.unrepairable)
      logger?.warn(
        { repairId, postId: u.postId, loadRunId: u.loadRunId, reason: u.reason },
        'duplicate row left in place: it cannot be told apart from its twin',
      );
    if (dryRun || plan.removed.length === 0) return report;

    const jobBase = repairJobBase(repairId, plan.removed);
    const repairedAt = opts.repairedAt ?? new Date().toISOString();
    step = 'record removals';
    table = `${gcp.dataset}.${ids.load_repairs}`;
    const rows = repairRows(plan.removed, repairId, repairedAt);
    for (const [i, chunk] of chunkRows(rows).entries()) {
      progress(step);
      // Keyed by (post_id, removed_load_run_id), over the whole (small) table: a row recorded by an
      // earlier attempt or pass is not recorded again.
      const stmt = buildInsertIfAbsent(repairs, LOAD_REPAIRS_TABLE, LOAD_REPAIRS_TABLE.columns, chunk, null);
      const params = Object.fromEntries(
        Object.entries(stmt.params).map(([k, v]) => [
          k,
          stmt.types[k] === 'TIMESTAMP' ? bq.timestamp(String(v)) : v,
        ]),
      );
      await dml(stmt.sql, `${jobBase}_record_${i}`, params, stmt.types);
    }

    step = 'delete duplicates';
    table = `${gcp.dataset}.${ids.posts}`;
    progress(step);
    await dml(
      repairSql.delete(posts, since),
      `${jobBase}_delete`,
      {
        ids: [...new Set(plan.removed.map((r) => r.postId))],
        keys: plan.removed.map((r) => rowKey(r.postId, r.removedLoadRunId)),
      },
      { ids: ['STRING'], keys: ['STRING'] },
    );
    report.rowsRemoved = plan.removed.length;
    logger?.debug(
      {
        repairId,
        duplicateIds: report.duplicateIds,
        rowsRemoved: report.rowsRemoved,
        unrepairable: report.unrepairable,
      },
      'duplicate posts rows removed and recorded in load_repairs',
    );
    return report;
  } catch (err) {
    // BigQuery refuses a DELETE that meets a concurrent mutation of the same partitions with a 400
    // ("Could not serialize access … due to concurrent update"); the next attempt re-plans and succeeds.
    if (isConcurrentUpdate(err)) throw err instanceof Error ? err : new Error(String(err));
    throw classifyBigQueryError(err, { operation: `repair: ${step}`, table });
  }
}

/** The DML conflict BigQuery reports when two mutating statements touch the same table at once. */
export function isConcurrentUpdate(err: unknown): boolean {
  const message = (err as { message?: unknown } | undefined)?.message;
  return typeof message === 'string' && /could not serialize access|concurrent update/i.test(message);
}
