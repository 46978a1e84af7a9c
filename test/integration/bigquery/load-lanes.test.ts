/**
 * Load lanes and fencing against the real emulators: a post id reaches exactly one lane, lanes load
 * concurrently without duplicates, a superseded (zombie) attempt writes nothing once a newer attempt
 * claimed its lane, and a cancelled attempt stops before it writes.
 */
import type { BigQuery } from '@google-cloud/bigquery';
import type { PubSub } from '@google-cloud/pubsub';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createLoadActivities, type LoadBatchResult } from '../../../src/activities/bigquery';
import { createBigQueryClient } from '../../../src/adapters/bigquery/client';
import { createBigQueryLoadSink } from '../../../src/adapters/bigquery/writer';
import { ensurePubSubResources } from '../../../src/adapters/pubsub/admin';
import { createPubSub } from '../../../src/adapters/pubsub/client';
import { encodeMalformed, encodePost } from '../../../src/adapters/pubsub/publisher';
import {
  createBatchSubscriber,
  type BatchSubscriber,
  type PulledMessage,
} from '../../../src/adapters/pubsub/subscriber';
import type { AppConfig } from '../../../src/config';
import { LOAD_ATTEMPT_SUPERSEDED } from '../../../src/domain/failure-types';
import { laneOf, laneSubscription } from '../../../src/domain/lanes';
import { createLogger } from '../../../src/observability/logger';
import { datasetQuery, makePost, privateConfig, publishAll } from './fixtures';

jest.setTimeout(180_000);

const LANES = 2;
let config: AppConfig;
let pubsub: PubSub;
let bq: BigQuery;
const subscribers: BatchSubscriber[] = [];
const logger = createLogger({ level: 'warn', format: 'json' });

const laneSubscriber = (lane: number) => {
  const s = createBatchSubscriber({
    gcp: config.gcp,
    subscription: laneSubscription(config.gcp.subscription, lane, LANES),
    lane: { lane, lanes: LANES },
    logger,
  });
  subscribers.push(s);
  return s;
};

const query = datasetQuery(
  () => bq,
  () => config.gcp,
);

const inList = (ids: string[]) => ids.map((id) => `'${id}'`).join(',');

/** Runs attempts of `loadBatch` until one pulls something (a pull can come back empty before a redelivery). */
async function untilPulled(run: () => Promise<LoadBatchResult>): Promise<LoadBatchResult> {
  for (let i = 0; i < 10; i++) {
    const r = await run();
    if (r.pulled > 0) return r;
  }
  throw new Error('nothing was redelivered');
}

const publishPosts = (ids: string[]) =>
  publishAll(
    pubsub,
    config.gcp.topic,
    ids.map((id) => {
      const m = encodePost(makePost(id), LANES);
      return { data: m.data, attributes: { ...m.attributes } };
    }),
  );

/** Attempt `attempt` of one load activity of the lane's workflow (the fence's lane is its workflow id). */
const attemptEnv = (attempt: number) =>
  new MockActivityEnvironment(
    {
      attempt,
      activityId: 'load-1',
      workflowExecution: { workflowId: `${config.gcp.dataset}-load-0`, runId: 'run-1' },
    },
    { logger: undefined },
  );

beforeAll(async () => {
  config = privateConfig('it_lanes');
  pubsub = createPubSub(config.gcp);
  await ensurePubSubResources(pubsub, config.gcp, LANES);
  bq = createBigQueryClient(config.gcp);
  await createLoadActivities({
    subscriber: laneSubscriber(0),
    sink: createBigQueryLoadSink({ bq, gcp: config.gcp, logger }),
    logger,
  }).ensureTables();
});

afterAll(async () => {
  for (const s of subscribers) await s.close();
  await pubsub?.close();
  await bq
    ?.dataset(config.gcp.dataset)
    .delete({ force: true })
    .catch(() => undefined);
});

test('two lanes never receive the same id, and every message reaches one lane', async () => {
  const ids = Array.from({ length: 60 }, (_, i) => String(3_000_000 + i * 13));
  await publishPosts(ids);
  const bad = encodeMalformed({
    kind: 'malformed',
    reason: 'not JSON',
    raw: '{',
    received_at: new Date().toISOString(),
  });
  await publishAll(pubsub, config.gcp.topic, [{ data: bad.data, attributes: { ...bad.attributes } }]);

  const got: PulledMessage[][] = [[], []];
  for (const lane of [0, 1]) {
    const sub = laneSubscriber(lane);
    for (;;) {
      const batch = await sub.pull({ maxMessages: 100, waitMs: 3000, drainWaitMs: 500 });
      if (batch.length === 0) break;
      got[lane]!.push(...batch);
      await sub.acknowledge(batch.map((m) => m.ackId));
    }
  }
  const idsOf = (lane: number) => got[lane]!.map((m) => m.attributes.post_id).filter((id) => id);
  const lane0 = new Set(idsOf(0));
  const lane1 = new Set(idsOf(1));
  expect([...lane0].filter((id) => lane1.has(id))).toEqual([]);
  expect(new Set([...lane0, ...lane1])).toEqual(new Set(ids));
  for (const id of lane0) expect(laneOf(id, LANES)).toBe(0);
  for (const id of lane1) expect(laneOf(id, LANES)).toBe(1);
  expect(lane0.size).toBeGreaterThan(10); // both lanes carry a share
  expect(lane1.size).toBeGreaterThan(10);
  // The malformed line has no id: it belongs to lane 0 only.
  expect(got[0]!.filter((m) => m.attributes.malformed === 'true')).toHaveLength(1);
  expect(got[1]!.filter((m) => m.attributes.malformed === 'true')).toHaveLength(0);
});

test('two lanes loading at the same time leave one row per id', async () => {
  const ids = Array.from({ length: 80 }, (_, i) => String(4_000_000 + i * 17));
  await publishPosts([...ids, ...ids.slice(0, 20)]); // 20 ids published twice
  const sink = createBigQueryLoadSink({ bq, gcp: config.gcp, logger });
  const acts = createLoadActivities({ subscriber: (lane) => laneSubscriber(lane), sink, logger });
  const drainLane = async (lane: number) => {
    let fence = 1000 * (lane + 1);
    let loaded = 0;
    for (;;) {
      const env = new MockActivityEnvironment(
        {
          attempt: 1,
          activityId: `b${fence}`,
          workflowExecution: { workflowId: `lane-${lane}`, runId: 'r' },
        },
        { logger: undefined },
      );
      const r: LoadBatchResult = await env.run(acts.loadBatch, {
        batchSize: 30,
        waitMs: 3000,
        lane,
        lanes: LANES,
        fence: fence++,
      });
      if (r.pulled === 0) return loaded;
      loaded += r.rowsLoaded;
    }
  };
  const [a, b] = await Promise.all([drainLane(0), drainLane(1)]);
  expect(a + b).toBe(ids.length);
  const [row] = await query<{ n: number; d: number }>(
    `SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS d FROM DS.posts WHERE id IN (${inList(ids)})`,
  );
  expect(row).toEqual({ n: ids.length, d: ids.length });
});

test('a superseded attempt writes nothing once a newer attempt claimed the lane', async () => {
  const ids = Array.from({ length: 20 }, (_, i) => String(5_000_000 + i));
  await publishPosts(ids);
  const sink = createBigQueryLoadSink({ bq, gcp: config.gcp, logger });
  const real = laneSubscriber(0);
  const lane0 = ids.filter((id) => laneOf(id, LANES) === 0);

  // The old attempt stalls after claiming its lane and stops extending its lease (a stalled process
  // does), so Pub/Sub redelivers the batch to the retry while the old attempt still runs.
  const stalled: BatchSubscriber = {
    ...real,
    pull: (o) => real.pull(o),
    acknowledge: (a) => real.acknowledge(a),
    modifyAckDeadline: async (a, s) => (s === 0 ? real.modifyAckDeadline(a, s) : undefined),
  };
  const reached: Record<number, () => void> = {};
  const gates: Record<number, Promise<void>> = {};
  const open: Record<number, () => void> = {};
  const atInsert: Record<number, Promise<void>> = {};
  for (const n of [1, 2]) {
    atInsert[n] = new Promise((r) => (reached[n] = r));
    gates[n] = new Promise((r) => (open[n] = r));
  }
  const seam = async (_runId: string, attempt: number) => {
    reached[attempt]!();
    await gates[attempt];
  };
  const oldActs = createLoadActivities({ subscriber: stalled, sink, logger, beforeInsert: seam });
  const newActs = createLoadActivities({ subscriber: real, sink, logger, beforeInsert: seam });
  const input = { batchSize: 100, waitMs: 3000, lane: 0, lanes: LANES, fence: 7, ackDeadlineSeconds: 10 };

  const old = attemptEnv(1).run(oldActs.loadBatch, input);
  await atInsert[1];
  // The retry (attempt 2, a larger token) gets the redelivered batch once the old lease runs out.
  const retry = untilPulled(() => attemptEnv(2).run(newActs.loadBatch, { ...input, waitMs: 20_000 }));
  await atInsert[2];
  open[1]!();
  await expect(old).rejects.toMatchObject({ type: LOAD_ATTEMPT_SUPERSEDED });
  const [during] = await query<{ n: number }>(
    `SELECT COUNT(*) AS n FROM DS.posts WHERE id IN (${inList(lane0)})`,
  );
  expect(during!.n).toBe(0); // the old attempt inserted nothing
  open[2]!();
  const done = await retry;
  expect(done.rowsLoaded).toBe(lane0.length);
  const rows = await query<{ id: string; load_run_id: string }>(
    `SELECT id, load_run_id FROM DS.posts WHERE id IN (${inList(lane0)})`,
  );
  expect(rows).toHaveLength(lane0.length);
  expect(new Set(rows.map((r) => r.load_run_id))).toEqual(new Set([done.runId]));
  const fences = await query<{ token: number }>(`SELECT token FROM DS.load_fences ORDER BY token`);
  expect(fences.map((f) => Number(f.token))).toEqual(expect.arrayContaining([7001, 7002]));
});

test('a cancelled attempt stops before it writes and hands the batch back', async () => {
  const ids = Array.from({ length: 10 }, (_, i) => String(6_000_000 + i));
  const lane0 = ids.filter((id) => laneOf(id, LANES) === 0);
  await publishPosts(ids);
  const sink = createBigQueryLoadSink({ bq, gcp: config.gcp, logger });
  let reached!: () => void;
  const atInsert = new Promise<void>((r) => (reached = r));
  let release!: () => void;
  const cancelled = new Promise<void>((r) => (release = r));
  const env = attemptEnv(1);
  const acts = createLoadActivities({
    subscriber: laneSubscriber(0),
    sink,
    logger,
    beforeInsert: async () => {
      reached();
      await cancelled;
    },
  });
  const run = env.run(acts.loadBatch, { batchSize: 100, waitMs: 3000, lane: 0, lanes: LANES, fence: 9 });
  await atInsert;
  env.cancel(); // what Temporal does to an attempt that timed out or whose workflow is gone
  release();
  await expect(run).rejects.toThrow();
  const [row] = await query<{ n: number }>(
    `SELECT COUNT(*) AS n FROM DS.posts WHERE id IN (${inList(lane0)})`,
  );
  expect(row!.n).toBe(0);
  // Handed back at once (deadline 0): the next attempt gets the batch without waiting for the lease.
  const again = await untilPulled(() =>
    attemptEnv(2).run(createLoadActivities({ subscriber: laneSubscriber(0), sink, logger }).loadBatch, {
      batchSize: 100,
      waitMs: 5000,
      lane: 0,
      lanes: LANES,
      fence: 10,
    }),
  );
  expect(again.rowsLoaded).toBe(lane0.length);
});
