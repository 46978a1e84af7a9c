/**
 * The dead-letter replay on the real local stack (issue #14, "a dead letter fixed by a schema change
 * replays into posts once and a second replay adds nothing"): the Temporal dev server runs the
 * `replayDeadLetters` workflow from the workers' bundle on a worker with the batch worker's
 * activities, against the BigQuery emulator.
 *
 * Dead letters are written with the loader's own sink, as the loader would have written them:
 * - 9001 was dead-lettered as `schema_version` by a loader of schema version 0, and the current
 *   loader (version 1) accepts it: the schema changed, so it replays into posts;
 * - 9002 has `lang: 42`, which no loader accepts: it stays failing, with the reason;
 * - 9003 was refused by BigQuery once (`bigquery_insert`) and loaded by a later delivery: already loaded.
 */
import type { BigQuery } from '@google-cloud/bigquery';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createBigQueryClient } from '../../../src/adapters/bigquery/client';
import { ensureTables } from '../../../src/adapters/bigquery/provision';
import { createBigQueryLoadSink } from '../../../src/adapters/bigquery/writer';
import type { AppConfig } from '../../../src/config';
import { POSTS_TABLE, toPostRow, type DeadLetterRow } from '../../../src/domain/bigquery-schema';
import { createLogger } from '../../../src/observability/logger';
import { buildBatchActivities } from '../../../src/workers/batch-worker';
import { parseReplayArgs, runReplay } from '../../../src/workers/replay-dead-letters';
import { deadLetterReplayProgressQuery } from '../../../src/workflows/messages';
import type { DeadLetterReplayReport, replayDeadLetters } from '../../../src/workflows/replay-dead-letters';
import { testConfig, uniqueName } from '../../support/config';
import { makePost } from '../../support/posts';

jest.setTimeout(240_000);

const logger = createLogger({ level: 'error', format: 'json' });
let config: AppConfig;
let bq: BigQuery;
let client: Client;
let connection: Connection;
let worker: Worker;
let running: Promise<void>;
let closeActivities: () => Promise<void>;

const table = (t: string) => `\`${config.gcp.projectId}.${config.gcp.dataset}.${t}\``;
async function query<T = Record<string, unknown>>(sql: string): Promise<T[]> {
  const [rows] = await bq.query({ query: sql });
  return rows as T[];
}
const seenAt = new Date(Date.now() - 3_600_000).toISOString();
const today = new Date().toISOString().slice(0, 10);

function deadLetter(
  id: string,
  payload: unknown,
  stage: DeadLetterRow['error_stage'],
  error: string,
): DeadLetterRow {
  return {
    message_id: `msg-${id}`,
    post_id: id,
    payload: JSON.stringify(payload),
    attributes: JSON.stringify({ post_id: id, malformed: 'false', schema_version: '1', rule_tags: 'tesla' }),
    error_stage: stage,
    error_message: error,
    stack: null,
    publish_time: seenAt,
    first_seen: seenAt,
    load_run_id: 'lr_before',
    payload_hash: `hash-${id}`,
  };
}

const DEAD_LETTERS = [
  deadLetter(
    '9001',
    makePost('9001'),
    'schema_version',
    'schema_version 1 is newer than this loader (0): deploy the loader for version 1, then replay these dead letters',
  ),
  deadLetter('9002', { ...makePost('9002'), lang: 42 }, 'validate', 'lang: expected a string or null'),
  deadLetter('9003', makePost('9003'), 'bigquery_insert', 'invalid: backend refused the row'),
];

const snapshotDeadLetters = () =>
  query(`SELECT * FROM ${table(config.gcp.tables.deadLetter)} ORDER BY payload_hash`).then((rows) =>
    JSON.stringify(rows),
  );
const postsRows = () =>
  query<{ id: string; load_run_id: string; message_id: string; attributes: string | null }>(
    `SELECT id, load_run_id, message_id, attributes FROM ${table(config.gcp.tables.posts)} ORDER BY id, load_run_id`,
  );
const journalRows = () =>
  query<Record<string, unknown>>(
    `SELECT payload_hash, replay_id, outcome, post_id, error_stage, error_message, load_run_id
     FROM ${table(config.gcp.tables.deadLetterReplays)} ORDER BY replay_id, payload_hash`,
  );

const replay = (workflowId: string, input: Parameters<typeof replayDeadLetters>[0]) =>
  client.workflow.execute<typeof replayDeadLetters>('replayDeadLetters', {
    workflowId,
    taskQueue: config.temporal.batchTaskQueue,
    args: [input],
  });

beforeAll(async () => {
  config = testConfig({
    BIGQUERY_DATASET: uniqueName('dl_replay'),
    TEMPORAL_BATCH_TASK_QUEUE: uniqueName('dl_replay'),
  });
  bq = createBigQueryClient(config.gcp);
  await ensureTables(bq, config.gcp);
  const sink = createBigQueryLoadSink({ bq, gcp: config.gcp, logger });
  // 9003 made it into posts with a later delivery; 9004 is an unrelated post.
  const loaded = ['9003', '9004'].map((id) =>
    toPostRow(makePost(id), {
      messageId: `msg-${id}-redelivered`,
      publishTime: seenAt,
      ingestedAt: seenAt,
      loadRunId: 'lr_pipeline',
    }),
  );
  await sink.insertPosts('lr_pipeline', loaded, POSTS_TABLE.columns, 'seed');
  await sink.insertDeadLetters('lr_before', DEAD_LETTERS);

  connection = await Connection.connect({ address: config.temporal.address });
  client = new Client({ connection, namespace: config.temporal.namespace });
  const batch = buildBatchActivities(config, logger, { client });
  closeActivities = batch.close;
  worker = await Worker.create({
    connection: await NativeConnection.connect({ address: config.temporal.address }),
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.batchTaskQueue,
    workflowsPath: require.resolve('../../../src/workflows'),
    activities: batch.activities,
  });
  running = worker.run();
});

afterAll(async () => {
  worker?.shutdown();
  await running;
  await closeActivities?.();
  await connection?.close();
  await bq
    ?.dataset(config.gcp.dataset)
    .delete({ force: true })
    .catch(() => undefined);
});

test('a dry run reports what a replay would do and writes nothing', async () => {
  const before = await snapshotDeadLetters();
  const cmd = parseReplayArgs(['--since', today.slice(0, 8) + '01', '--dry-run'], config.x.streamName);
  expect(cmd.replayId).toMatch(/^x-ingest-default-dead-letter-replay-dry-run-\d{8}T\d{9}Z$/);
  cmd.replayId = uniqueName('dry');
  const report = await runReplay(client, config, cmd);
  expect(report).toMatchObject({
    dryRun: true,
    done: true,
    examined: 3,
    replayed: 1,
    alreadyLoaded: 1,
    stillFailing: 1,
    byStage: {
      schema_version: { examined: 1, replayed: 1, alreadyLoaded: 0, stillFailing: 0 },
      validate: { examined: 1, replayed: 0, alreadyLoaded: 0, stillFailing: 1 },
      bigquery_insert: { examined: 1, replayed: 0, alreadyLoaded: 1, stillFailing: 0 },
    },
  });
  expect(report.examples[0]).toMatchObject({
    postId: '9002',
    outcome: 'still_failing',
    errorStage: 'validate',
    reason: 'lang: expected a string or null',
  });
  expect((await postsRows()).map((r) => r.id)).toEqual(['9003', '9004']);
  expect(await journalRows()).toEqual([]);
  expect(await snapshotDeadLetters()).toBe(before);
});

test('a fixed dead letter replays into posts once, a failing one is journaled with its reason, a second replay adds nothing', async () => {
  const before = await snapshotDeadLetters();
  const firstId = uniqueName('replay1');
  // One dead letter per page: the cursor carries the replay through three pages and an empty fourth.
  const first: DeadLetterReplayReport = await replay(firstId, { batchSize: 1 });
  expect(first).toMatchObject({
    replayId: firstId,
    dryRun: false,
    done: true,
    pages: 4,
    examined: 3,
    replayed: 1,
    alreadyLoaded: 1,
    stillFailing: 1,
  });

  const posts = await postsRows();
  expect(posts.map((r) => r.id)).toEqual(['9001', '9003', '9004']);
  const replayed = posts.find((r) => r.id === '9001')!;
  expect(replayed.message_id).toBe('msg-9001');
  expect(JSON.parse(replayed.attributes ?? '{}')).toMatchObject({ post_id: '9001', rule_tags: 'tesla' });
  expect(posts.find((r) => r.id === '9003')!.load_run_id).toBe('lr_pipeline');

  expect(await journalRows()).toEqual([
    {
      payload_hash: 'hash-9001',
      replay_id: firstId,
      outcome: 'replayed',
      post_id: '9001',
      error_stage: null,
      error_message: null,
      load_run_id: replayed.load_run_id,
    },
    {
      payload_hash: 'hash-9002',
      replay_id: firstId,
      outcome: 'still_failing',
      post_id: '9002',
      error_stage: 'validate',
      error_message: 'lang: expected a string or null',
      load_run_id: null,
    },
    {
      payload_hash: 'hash-9003',
      replay_id: firstId,
      outcome: 'already_loaded',
      post_id: '9003',
      error_stage: null,
      error_message: null,
      load_run_id: 'lr_pipeline',
    },
  ]);
  // The replayed post's load_run_id names the replay's load_runs row.
  const [run] = await query<Record<string, unknown>>(
    `SELECT workflow_id, rows_loaded FROM ${table(config.gcp.tables.loadRuns)} WHERE run_id = '${replayed.load_run_id}'`,
  );
  expect(run).toEqual({ workflow_id: firstId, rows_loaded: 1 });

  // The progress query answers with the final report.
  const progress = await client.workflow.getHandle(firstId).query(deadLetterReplayProgressQuery);
  expect(progress).toEqual(first);

  // A second replay skips what the first loaded, finds the failing one failing again, adds nothing.
  const secondId = uniqueName('replay2');
  const second = await replay(secondId, {});
  expect(second).toMatchObject({ examined: 1, replayed: 0, alreadyLoaded: 0, stillFailing: 1 });
  expect(await postsRows()).toEqual(posts);
  const journal = await journalRows();
  expect(journal).toHaveLength(4);
  expect(journal.filter((r) => r.replay_id === secondId)).toEqual([
    expect.objectContaining({ payload_hash: 'hash-9002', outcome: 'still_failing' }),
  ]);

  // Filters: the stage and the window select the dead letters a replay sees.
  const byStage = await replay(uniqueName('dry'), { stage: 'validate', dryRun: true });
  expect(byStage).toMatchObject({ examined: 1, stillFailing: 1 });
  const later = await replay(uniqueName('dry'), { since: new Date().toISOString(), dryRun: true });
  expect(later).toMatchObject({ examined: 0, pages: 1 });

  // Nothing was deleted from or changed in the dead-letter table.
  expect(await snapshotDeadLetters()).toBe(before);
});

test('a replay with a bad window fails at once with the reason', async () => {
  await expect(replay(uniqueName('bad'), { since: '2026-02-30' })).rejects.toMatchObject({
    cause: { cause: { message: expect.stringContaining('since: not a real date: 2026-02-30') } },
  });
});
