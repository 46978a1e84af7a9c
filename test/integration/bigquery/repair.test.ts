/**
 * The duplicate repair against the BigQuery emulator (issue #13, "repair removes injected duplicates
 * and reports them"): duplicates injected straight into `posts` are removed down to the earliest row
 * per id, every removed row is recorded once in `load_repairs`, and a second run changes nothing.
 */
import type { BigQuery } from '@google-cloud/bigquery';
import { createBigQueryClient } from '../../../src/adapters/bigquery/client';
import { ensureTables } from '../../../src/adapters/bigquery/provision';
import { repairDuplicates } from '../../../src/adapters/bigquery/repair';
import type { AppConfig } from '../../../src/config';
import { createLogger } from '../../../src/observability/logger';
import { testConfig, uniqueName } from '../../support/config';

jest.setTimeout(120_000);

let config: AppConfig;
let bq: BigQuery;
const logger = createLogger({ level: 'error', format: 'json' });
const day = new Date().toISOString().slice(0, 10);
const at = (minute: number) => `${day}T00:${String(minute).padStart(2, '0')}:00.000Z`;

const table = (t: string) => `\`${config.gcp.projectId}.${config.gcp.dataset}.${t}\``;

async function query<T = Record<string, unknown>>(sql: string): Promise<T[]> {
  const [rows] = await bq.query({
    query: sql
      .replace(/\bDS\.posts\b/g, table(config.gcp.tables.posts))
      .replace(/\bDS\.load_repairs\b/g, table(config.gcp.tables.loadRepairs)),
  });
  return rows as T[];
}

/** Inserts rows into posts directly (what two racing insert statements would leave). */
async function inject(rows: { id: string; run: string; message: string; ingestedMinute: number }[]) {
  const values = rows
    .map(
      (r) =>
        `('${r.id}', 'text ${r.id}', TIMESTAMP '${at(0)}', '${r.run}', '${r.message}', TIMESTAMP '${at(r.ingestedMinute)}')`,
    )
    .join(',\n');
  const [job] = await bq.createQueryJob({
    query: `INSERT INTO ${table(config.gcp.tables.posts)} (id, text, created_at, load_run_id, message_id, ingested_at)
VALUES ${values}`,
    jobId: uniqueName('inject'),
  });
  await job.getQueryResults();
}

const ts = (v: unknown) =>
  v === null || v === undefined
    ? null
    : new Date(
        String(typeof v === 'object' && 'value' in v ? (v as { value: string }).value : v),
      ).toISOString();

beforeAll(async () => {
  config = testConfig({ BIGQUERY_DATASET: uniqueName('it_repair') });
  bq = createBigQueryClient(config.gcp);
  await ensureTables(bq, config.gcp);
});

afterAll(async () => {
  await bq
    ?.dataset(config.gcp.dataset)
    .delete({ force: true })
    .catch(() => undefined);
});

test('repair keeps the earliest row per id, records what it removed, and a second run changes nothing', async () => {
  await inject([
    { id: '2001', run: 'run_a', message: 'm1', ingestedMinute: 1 },
    { id: '2002', run: 'run_a', message: 'm2', ingestedMinute: 1 },
    { id: '2003', run: 'run_b', message: 'm3', ingestedMinute: 1 },
  ]);
  // Racing inserts: 2002 twice more, 2003 once more but ingested *earlier* by run_c (kept), and
  // 2001 again with the same ingested_at (the smaller run id, run_a, is kept).
  await inject([
    { id: '2001', run: 'run_z', message: 'm1b', ingestedMinute: 1 },
    { id: '2002', run: 'run_b', message: 'm2b', ingestedMinute: 2 },
    { id: '2002', run: 'run_c', message: 'm2c', ingestedMinute: 3 },
    { id: '2003', run: 'run_c', message: 'm3b', ingestedMinute: 0 },
  ]);
  // Two copies from the same run cannot be told apart by (id, load_run_id): left and reported.
  await inject([
    { id: '2004', run: 'run_d', message: 'm4', ingestedMinute: 1 },
    { id: '2004', run: 'run_d', message: 'm4', ingestedMinute: 1 },
  ]);

  const repairedAt = new Date().toISOString();
  const report = await repairDuplicates(
    bq,
    config.gcp,
    { repairId: 'it-repair-1', since: day, repairedAt },
    logger,
  );
  expect(report).toMatchObject({ duplicateIds: 4, rowsRemoved: 4, unrepairable: 1, truncated: false });
  expect(report.removed.map((r) => [r.postId, r.removedLoadRunId, r.keptLoadRunId])).toEqual([
    ['2001', 'run_z', 'run_a'],
    ['2002', 'run_b', 'run_a'],
    ['2002', 'run_c', 'run_a'],
    ['2003', 'run_b', 'run_c'],
  ]);
  expect(report.unrepairableRows).toEqual([expect.objectContaining({ postId: '2004', loadRunId: 'run_d' })]);

  const posts = await query<{ id: string; load_run_id: string; message_id: string }>(
    'SELECT id, load_run_id, message_id FROM DS.posts ORDER BY id, load_run_id',
  );
  expect(posts.map((p) => [p.id, p.load_run_id, p.message_id])).toEqual([
    ['2001', 'run_a', 'm1'],
    ['2002', 'run_a', 'm2'],
    ['2003', 'run_c', 'm3b'],
    ['2004', 'run_d', 'm4'],
    ['2004', 'run_d', 'm4'],
  ]);

  const recorded = await query<Record<string, unknown>>(
    `SELECT post_id, removed_load_run_id, removed_message_id, removed_ingested_at, kept_load_run_id,
            repair_id, repaired_at
     FROM DS.load_repairs ORDER BY post_id, removed_load_run_id`,
  );
  expect(
    recorded.map((r) => ({
      ...r,
      removed_ingested_at: ts(r.removed_ingested_at),
      repaired_at: ts(r.repaired_at),
    })),
  ).toEqual(
    [
      ['2001', 'run_z', 'm1b', 1, 'run_a'],
      ['2002', 'run_b', 'm2b', 2, 'run_a'],
      ['2002', 'run_c', 'm2c', 3, 'run_a'],
      ['2003', 'run_b', 'm3', 1, 'run_c'],
    ].map(([post, run, message, minute, kept]) => ({
      post_id: post,
      removed_load_run_id: run,
      removed_message_id: message,
      removed_ingested_at: at(minute as number),
      kept_load_run_id: kept,
      repair_id: 'it-repair-1',
      repaired_at: repairedAt,
    })),
  );

  // Idempotent: a second run (and a retry under the same repair id) removes and records nothing.
  for (const repairId of ['it-repair-2', 'it-repair-1']) {
    const again = await repairDuplicates(bq, config.gcp, { repairId, since: day }, logger);
    expect(again).toMatchObject({ duplicateIds: 1, rowsRemoved: 0, unrepairable: 1, removed: [] });
  }
  expect(await query('SELECT id FROM DS.posts')).toHaveLength(5);
  expect(await query('SELECT post_id FROM DS.load_repairs')).toHaveLength(4);
});

test('a pass bounded by maxIds repairs the smallest ids and says there may be more; a dry run writes nothing', async () => {
  await inject([
    { id: '3001', run: 'r1', message: 'a', ingestedMinute: 1 },
    { id: '3001', run: 'r2', message: 'b', ingestedMinute: 2 },
    { id: '3002', run: 'r1', message: 'c', ingestedMinute: 1 },
    { id: '3002', run: 'r2', message: 'd', ingestedMinute: 2 },
  ]);
  const dry = await repairDuplicates(bq, config.gcp, { repairId: 'dry', since: day, dryRun: true }, logger);
  expect(dry).toMatchObject({ dryRun: true, rowsRemoved: 0 });
  expect(dry.removed.map((r) => r.postId)).toEqual(expect.arrayContaining(['3001', '3002']));
  expect(await query("SELECT id FROM DS.posts WHERE id LIKE '300%'")).toHaveLength(4);

  // 2004 (unrepairable, from the first test) sorts before 3001: with maxIds 2 this pass sees 2004 and 3001.
  const first = await repairDuplicates(
    bq,
    config.gcp,
    { repairId: 'bounded-1', since: day, maxIds: 2 },
    logger,
  );
  expect(first).toMatchObject({ duplicateIds: 2, rowsRemoved: 1, truncated: true });
  expect(first.removed.map((r) => [r.postId, r.removedLoadRunId])).toEqual([['3001', 'r2']]);
  const rest = await repairDuplicates(bq, config.gcp, { repairId: 'bounded-2', since: day }, logger);
  expect(rest.removed.map((r) => [r.postId, r.removedLoadRunId])).toEqual([['3002', 'r2']]);
  expect(
    (
      await query<{ id: string; load_run_id: string }>(
        "SELECT id, load_run_id FROM DS.posts WHERE id LIKE '300%' ORDER BY id",
      )
    ).map((p) => [p.id, p.load_run_id]),
  ).toEqual([
    ['3001', 'r1'],
    ['3002', 'r1'],
  ]);
});
