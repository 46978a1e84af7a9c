/**
 * The load activity against the real emulators: routing of valid/malformed/invalid messages, exactly
 * once across redelivery and duplicates, and additive schema evolution.
 */
import type { BigQuery } from '@google-cloud/bigquery';
import type { PubSub } from '@google-cloud/pubsub';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createLoadActivities, type LoadBatchResult } from '../../../src/activities/bigquery';
import { createBigQueryClient } from '../../../src/adapters/bigquery/client';
import { createBigQueryLoadSink } from '../../../src/adapters/bigquery/writer';
import { deadLetterSubscriptionName, ensurePubSubResources } from '../../../src/adapters/pubsub/admin';
import { createPubSub } from '../../../src/adapters/pubsub/client';
import { createBatchSubscriber, type BatchSubscriber } from '../../../src/adapters/pubsub/subscriber';
import type { AppConfig } from '../../../src/config';
import { createLogger } from '../../../src/observability/logger';
import { datasetQuery, makePost, postMessage, privateConfig, publishAll } from './fixtures';

jest.setTimeout(120_000);

let config: AppConfig;
let pubsub: PubSub;
let bq: BigQuery;
let subscriber: BatchSubscriber;
const logger = createLogger({ level: 'warn', format: 'json' });

const activities = (beforeAck?: (runId: string) => Promise<void>) =>
  createLoadActivities({
    subscriber,
    sink: createBigQueryLoadSink({ bq, gcp: config.gcp, logger }),
    logger,
    beforeAck,
  });

const query = datasetQuery(
  () => bq,
  () => config.gcp,
);

/** Loads until the subscription is drained (an empty pull). */
async function drain(acts = activities(), batchSize = 500) {
  const results = [];
  for (;;) {
    const r = await acts.loadBatch({ batchSize, waitMs: 2000 });
    if (r.pulled === 0) return results;
    results.push(r);
  }
}

beforeAll(async () => {
  config = privateConfig('it_loadbatch');
  pubsub = createPubSub(config.gcp);
  await ensurePubSubResources(pubsub, config.gcp);
  bq = createBigQueryClient(config.gcp);
  subscriber = createBatchSubscriber({
    gcp: config.gcp,
    logger,
    deadLetterSubscription: deadLetterSubscriptionName(config.gcp),
  });
  await activities().ensureTables();
});

afterAll(async () => {
  await subscriber?.close();
  await pubsub?.close();
  await bq
    ?.dataset(config.gcp.dataset)
    .delete({ force: true })
    .catch(() => undefined);
});

test('valid, malformed and schema-violating messages land in the right table with the right reason', async () => {
  await publishAll(pubsub, config.gcp.topic, [
    postMessage(makePost('1001')),
    postMessage(makePost('1002')),
    {
      data: JSON.stringify({
        kind: 'malformed',
        reason: 'no data.id',
        raw: '{"x":1}',
        received_at: new Date().toISOString(),
      }),
      attributes: { malformed: 'true', error: 'no data.id', post_id: '', rule_tags: '', schema_version: '1' },
    },
    { data: Buffer.from('not json {'), attributes: { malformed: 'false' } },
    postMessage({ ...makePost('1003'), created_at: 'yesterday' }),
    postMessage({ ...makePost('1004'), schema_version: 99 }),
  ]);
  const results = await drain();
  expect(results.reduce((n, r) => n + r.pulled, 0)).toBe(6);

  const posts = await query<{
    id: string;
    author_username: string;
    hashtags: string[];
    quoted_id: string;
    attributes: string;
  }>(
    'SELECT id, author_username, hashtags, quoted_id, load_run_id, message_id, attributes FROM DS.posts ORDER BY id',
  );
  expect(posts.map((p) => p.id)).toEqual(['1001', '1002']);
  expect(posts[0]).toMatchObject({ author_username: 'alice', hashtags: ['tesla'], quoted_id: '7' });
  // Each row keeps its delivery's Pub/Sub attributes.
  expect(JSON.parse(posts[0]!.attributes)).toMatchObject({ post_id: '1001', rule_tags: 'tesla' });

  const dl = await query<{ error_stage: string; error_message: string }>(
    'SELECT error_stage, error_message, payload FROM DS.posts_dead_letter ORDER BY error_stage',
  );
  expect(dl.map((d) => d.error_stage)).toEqual(['decode', 'malformed', 'schema_version', 'validate']);
  expect(dl.find((d) => d.error_stage === 'malformed')!.error_message).toBe('no data.id');
  expect(dl.find((d) => d.error_stage === 'validate')!.error_message).toMatch(/created_at/);
  expect(dl.find((d) => d.error_stage === 'schema_version')!.error_message).toMatch(/newer than this loader/);

  const runs = await query<{ message_count: number; rows_loaded: number; dead_letters: number }>(
    'SELECT SUM(message_count) AS message_count, SUM(rows_loaded) AS rows_loaded, SUM(dead_letters) AS dead_letters FROM DS.load_runs',
  );
  expect(runs[0]).toEqual({ message_count: 6, rows_loaded: 2, dead_letters: 4 });
});

test('the same malformed line published twice, in one batch and in a later one, is one dead letter', async () => {
  const line = {
    data: JSON.stringify({
      kind: 'malformed',
      reason: 'truncated',
      raw: '{"data":',
      received_at: '2026-12-03T10:00:00Z',
    }),
    attributes: { malformed: 'true', error: 'truncated', post_id: '', rule_tags: '', schema_version: '1' },
  };
  const first = await publishAll(pubsub, config.gcp.topic, [line, line]);
  await drain();
  const later = await publishAll(pubsub, config.gcp.topic, [line]);
  await drain();
  expect(new Set([...first, ...later]).size).toBe(3); // three messages
  const rows = await query<{ message_id: string; payload_hash: string }>(
    `SELECT message_id, payload_hash FROM DS.posts_dead_letter WHERE error_message = 'truncated'`,
  );
  expect(rows).toHaveLength(1);
  expect(first).toContain(rows[0]!.message_id);
  expect(rows[0]!.payload_hash).toMatch(/^[0-9a-f]{64}$/);
});

test('a post Pub/Sub forwarded to the dead-letter topic is loaded, acknowledged there, exactly once', async () => {
  // What Pub/Sub does after MAX_DELIVERY_ATTEMPTS failed deliveries (e.g. a long BigQuery outage).
  await publishAll(pubsub, config.gcp.deadLetterTopic, [postMessage(makePost('1501'))]);
  await publishAll(pubsub, config.gcp.topic, [postMessage(makePost('1502'))]);
  const results = await drain();
  expect(results.reduce((n, r) => n + r.rowsLoaded, 0)).toBe(2);
  const rows = await query<{ id: string }>(
    "SELECT id FROM DS.posts WHERE id IN ('1501', '1502') ORDER BY id",
  );
  expect(rows.map((r) => r.id)).toEqual(['1501', '1502']);
  // Acknowledged on the dead-letter subscription: nothing comes back once the lease would expire.
  const again = await activities().loadBatch({ batchSize: 10, waitMs: 500, ackDeadlineSeconds: 1 });
  expect(again.pulled).toBe(0);
});

test('a crash between the write and the ack, then redelivery, leaves exactly one row', async () => {
  await publishAll(pubsub, config.gcp.topic, [postMessage(makePost('2001')), postMessage(makePost('2002'))]);
  const crashing = activities(async () => {
    throw new Error('simulated crash after write, before ack');
  });
  // As Temporal runs it: attempt 1 crashes, attempt 2 (a new run id) gets the redelivery.
  const attempt = (n: number) =>
    new MockActivityEnvironment({ attempt: n, activityId: 'load-1' }, { logger: undefined });
  await expect(
    attempt(1).run(crashing.loadBatch, { batchSize: 100, waitMs: 2000, ackDeadlineSeconds: 10 }),
  ).rejects.toThrow(/simulated crash/);
  const [afterCrash] = await query<{ n: number }>(
    `SELECT COUNT(*) AS n FROM DS.posts WHERE id IN ('2001','2002')`,
  );
  expect(afterCrash!.n).toBe(2); // written, not acknowledged

  // Pub/Sub redelivers once the lease (10 s) expires.
  const redelivered: LoadBatchResult = await attempt(2).run(activities().loadBatch, {
    batchSize: 100,
    waitMs: 30_000,
  });
  expect(redelivered.pulled).toBe(2);
  expect(redelivered.rowsLoaded).toBe(0);
  expect(redelivered.duplicatesSkipped).toBe(2);
  const [after] = await query<{ n: number; d: number }>(
    `SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS d FROM DS.posts WHERE id IN ('2001','2002')`,
  );
  expect(after).toEqual({ n: 2, d: 2 });
  const runs = await query<{ rows_loaded: number; duplicates_skipped: number }>(
    `SELECT rows_loaded, duplicates_skipped FROM DS.load_runs WHERE run_id = '${redelivered.runId}'`,
  );
  expect(runs).toEqual([{ rows_loaded: 0, duplicates_skipped: 2 }]);
});

test('a message duplicated within a batch and across batches leaves one row', async () => {
  const p = makePost('3001');
  await publishAll(pubsub, config.gcp.topic, [postMessage(p), postMessage(p), postMessage(makePost('3002'))]);
  const first = await drain();
  expect(first.reduce((n, r) => n + r.rowsLoaded, 0)).toBe(2);
  expect(first.reduce((n, r) => n + r.duplicatesSkipped, 0)).toBe(1);
  await publishAll(pubsub, config.gcp.topic, [postMessage(p)]);
  const second = await drain();
  expect(second.reduce((n, r) => n + r.duplicatesSkipped, 0)).toBe(1);
  const [row] = await query<{ n: number }>(`SELECT COUNT(*) AS n FROM DS.posts WHERE id = '3001'`);
  expect(row!.n).toBe(1);
});

test('a new optional Post field adds a column to posts (table patch)', async () => {
  // The emulator stores the patched schema but its SQL engine keeps the old one (ALTER TABLE and
  // ALLOW_FIELD_ADDITION are no-ops there too), so filling the column is proven in the unit tests and
  // on real BigQuery; here we prove the detection and the patch.
  const sink = createBigQueryLoadSink({ bq, gcp: config.gcp, logger });
  const added = await sink.addPostsColumns([
    ...(await import('../../../src/domain/bigquery-schema')).POSTS_TABLE.columns,
    { name: 'community_id', type: 'STRING', mode: 'NULLABLE' },
  ]);
  expect(added).toEqual(['community_id']);
  const names = (await sink.postsColumns()).map((c) => c.name);
  expect(names).toContain('community_id');
  // Idempotent: a second worker doing the same adds nothing.
  expect(await sink.addPostsColumns([{ name: 'community_id', type: 'STRING', mode: 'NULLABLE' }])).toEqual(
    [],
  );
});
