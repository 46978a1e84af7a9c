/**
 * Changing LOAD_LANES loses nothing (README, "Changing N"): posts published before the change sit in
 * the unfiltered subscription of one lane; after `setup` with two lanes, lane 0 of the real batch
 * worker drains that retired subscription beside its own, both lanes load, every post lands once, and
 * `setup --prune-lanes` deletes the retired subscription only once it is empty.
 */
import type { BigQuery } from '@google-cloud/bigquery';
import type { PubSub } from '@google-cloud/pubsub';
import { Client, Connection } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { LoadBatchResult } from '../../../src/activities/bigquery';
import { createBigQueryClient } from '../../../src/adapters/bigquery/client';
import { ensurePubSubResources } from '../../../src/adapters/pubsub/admin';
import { createPubSub } from '../../../src/adapters/pubsub/client';
import { encodePost } from '../../../src/adapters/pubsub/publisher';
import type { AppConfig } from '../../../src/config';
import { createLogger } from '../../../src/observability/logger';
import { buildBatchActivities } from '../../../src/workers/batch-worker';
import { provision } from '../../../src/workers/setup';
import { makePost, privateConfig, publishAll } from './fixtures';

jest.setTimeout(240_000);

let one: AppConfig;
let two: AppConfig;
let pubsub: PubSub;
let bq: BigQuery;
let client: Client;
const logger = createLogger({ level: 'warn', format: 'json' });

beforeAll(async () => {
  one = privateConfig('it_lanechg');
  two = { ...one, load: { ...one.load, lanes: 2 } };
  pubsub = createPubSub(one.gcp);
  bq = createBigQueryClient(one.gcp);
  client = new Client({
    connection: await Connection.connect({ address: one.temporal.address }),
    namespace: one.temporal.namespace,
  });
});

afterAll(async () => {
  await client?.connection.close();
  await pubsub?.close();
  await bq
    ?.dataset(one.gcp.dataset)
    .delete({ force: true })
    .catch(() => undefined);
});

const publish = (ids: string[], lanes: number) =>
  publishAll(
    pubsub,
    one.gcp.topic,
    ids.map((id) => {
      const m = encodePost(makePost(id), lanes);
      return { data: m.data, attributes: { ...m.attributes } };
    }),
  );

const subscriptionNames = async () =>
  (await pubsub.topic(one.gcp.topic).getSubscriptions())[0].map((s) => s.name.split('/').pop()!);

test('from one lane to two: the retired subscription is drained by lane 0, then pruned; every post once', async () => {
  await ensurePubSubResources(pubsub, one.gcp, 1);
  const before = Array.from({ length: 30 }, (_, i) => String(8_000_000 + i));
  await publish(before, 1); // published by stream workers that still run one lane

  await provision(two, logger); // step 1: setup with the new LOAD_LANES
  expect(new Set(await subscriptionNames())).toEqual(
    new Set([one.gcp.subscription, `${one.gcp.subscription}-lane-0`, `${one.gcp.subscription}-lane-1`]),
  );
  // Pruning now would drop the posts still in the retired subscription: refused, naming it.
  await expect(provision(two, logger, { pruneLanes: true })).rejects.toThrow(
    new RegExp(`still hold messages: ${one.gcp.subscription}\\b`),
  );

  const after = Array.from({ length: 30 }, (_, i) => String(9_000_000 + i));
  await publish(after, 2); // step 2: the rolled stream workers publish with two lanes

  const batch = buildBatchActivities(two, logger, { client });
  try {
    const drain = async (lane: number) => {
      let empty = 0;
      for (let fence = 1; empty < 2; fence++) {
        const env = new MockActivityEnvironment(
          {
            attempt: 1,
            activityId: `b${fence}`,
            workflowExecution: { workflowId: `chg-${lane}`, runId: 'r' },
          },
          { logger: undefined },
        );
        const r: LoadBatchResult = await env.run(batch.activities.loadBatch, {
          batchSize: 25,
          waitMs: 2000,
          lane,
          lanes: 2,
          fence,
        });
        empty = r.pulled === 0 ? empty + 1 : 0;
      }
    };
    await Promise.all([drain(0), drain(1)]);
  } finally {
    await batch.close();
  }
  const table = `\`${one.gcp.projectId}.${one.gcp.dataset}.posts\``;
  const [rows] = await bq.query({ query: `SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS d FROM ${table}` });
  expect(rows).toEqual([{ n: 60, d: 60 }]);
  const [ids] = await bq.query({ query: `SELECT id FROM ${table}` });
  expect(new Set((ids as { id: string }[]).map((r) => r.id))).toEqual(new Set([...before, ...after]));

  // Step 3: once drained, the retired subscription goes; the lane subscriptions stay.
  await provision(two, logger, { pruneLanes: true });
  expect(new Set(await subscriptionNames())).toEqual(
    new Set([`${one.gcp.subscription}-lane-0`, `${one.gcp.subscription}-lane-1`]),
  );
});
