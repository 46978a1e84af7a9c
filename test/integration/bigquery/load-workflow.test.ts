/**
 * The load workflow on the real Temporal dev server, with the real load activities over the Pub/Sub
 * and BigQuery emulators: the first attempt that pulls messages crashes after the write and before
 * the ack, Temporal retries, Pub/Sub redelivers, and every post still lands exactly once while
 * `load_runs` accounts for every message.
 */
import type { BigQuery } from '@google-cloud/bigquery';
import type { PubSub } from '@google-cloud/pubsub';
import { Context } from '@temporalio/activity';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createLoadActivities } from '../../../src/activities/bigquery';
import { createBigQueryClient } from '../../../src/adapters/bigquery/client';
import { createBigQueryLoadSink } from '../../../src/adapters/bigquery/writer';
import { ensurePubSubResources } from '../../../src/adapters/pubsub/admin';
import { createPubSub } from '../../../src/adapters/pubsub/client';
import { createBatchSubscriber, type BatchSubscriber } from '../../../src/adapters/pubsub/subscriber';
import type { AppConfig } from '../../../src/config';
import { createLogger } from '../../../src/observability/logger';
import { loadWorkflow } from '../../../src/workflows/load';
import { loadStopSignal } from '../../../src/workflows/messages';
import { uniqueName } from '../../support/config';
import { eventually } from '../../support/eventually';
import { datasetQuery, makePost, postMessage, privateConfig, publishAll } from './fixtures';

jest.setTimeout(240_000);

const N = 12;
let config: AppConfig;
let pubsub: PubSub;
let bq: BigQuery;
let subscriber: BatchSubscriber;
let client: Client;
let native: NativeConnection;
const logger = createLogger({ level: 'warn', format: 'json' });

const query = datasetQuery(
  () => bq,
  () => config.gcp,
);

beforeAll(async () => {
  config = privateConfig('it_loadwf');
  pubsub = createPubSub(config.gcp);
  await ensurePubSubResources(pubsub, config.gcp);
  bq = createBigQueryClient(config.gcp);
  subscriber = createBatchSubscriber({ gcp: config.gcp, logger });
  client = new Client({
    connection: await Connection.connect({ address: config.temporal.address }),
    namespace: config.temporal.namespace,
  });
  native = await NativeConnection.connect({ address: config.temporal.address });
});

afterAll(async () => {
  await native?.close();
  await client?.connection.close();
  await subscriber?.close();
  await pubsub?.close();
  await bq
    ?.dataset(config.gcp.dataset)
    .delete({ force: true })
    .catch(() => undefined);
});

test('a crash between write and ack is retried by Temporal: every post once, every message explained', async () => {
  const crashedRuns: string[] = [];
  const activities = createLoadActivities({
    subscriber,
    sink: createBigQueryLoadSink({ bq, gcp: config.gcp, logger }),
    logger,
    beforeAck: async (runId) => {
      if (crashedRuns.length > 0) return;
      crashedRuns.push(runId);
      throw new Error('simulated crash after write, before ack');
    },
  });
  const taskQueue = uniqueName('load_wf');
  const worker = await Worker.create({
    connection: native,
    namespace: config.temporal.namespace,
    taskQueue,
    workflowsPath: require.resolve('../../../src/workflows/load'),
    activities,
  });

  const ids = Array.from({ length: N }, (_, i) => String(5001 + i));
  const malformedId = (
    await publishAll(pubsub, config.gcp.topic, [
      ...ids.map((id) => postMessage(makePost(id))),
      postMessage(makePost(ids[0]!)), // the stream repeated a post
      {
        data: JSON.stringify({ kind: 'malformed', reason: 'no data.id', raw: '{}', received_at: '' }),
        attributes: { malformed: 'true', error: 'no data.id', post_id: '' },
      },
    ])
  )[N + 1]!;
  const published = N + 2;

  await worker.runUntil(async () => {
    const handle = await client.workflow.start(loadWorkflow, {
      taskQueue,
      workflowId: taskQueue,
      args: [{ intervalMs: 500, batchSize: 100, backlogThreshold: 100, ackDeadlineSeconds: 10 }],
    });

    const posts = await eventually(
      () => query<{ n: number; d: number }>('SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS d FROM DS.posts'),
      ([r]) => r!.d === N,
      { timeoutMs: 120_000, intervalMs: 1000 },
    );
    expect(posts).toEqual([{ n: N, d: N }]);

    // Runs that returned to the workflow (acknowledged) explain every message exactly once.
    const runs = await eventually(
      () =>
        query<{
          run_id: string;
          attempt: number;
          message_count: number;
          rows_loaded: number;
          duplicates_skipped: number;
          dead_letters: number;
          outcome: string;
        }>(
          'SELECT run_id, attempt, message_count, rows_loaded, duplicates_skipped, dead_letters, outcome FROM DS.load_runs',
        ),
      (rs) =>
        crashedRuns.length === 1 && // (its row is written just before the crash: not acknowledged)
        rs.filter((r) => !crashedRuns.includes(r.run_id)).reduce((n, r) => n + r.message_count, 0) ===
          published,
      { timeoutMs: 120_000, intervalMs: 1000 },
    );

    await handle.signal(loadStopSignal);
    const result = await handle.result();

    expect(crashedRuns).toHaveLength(1);
    const crashed = runs.filter((r) => r.run_id === crashedRuns[0]);
    const acked = runs.filter((r) => r.run_id !== crashedRuns[0]);
    // The crashed attempt wrote and recorded its batch; the retry is another attempt of the activity.
    expect(crashed).toHaveLength(1);
    expect(crashed[0]!.attempt).toBe(1);
    const { events } = await handle.fetchHistory();
    const attempts = (events ?? []).map((e) => e.activityTaskStartedEventAttributes?.attempt ?? 0);
    expect(Math.max(...attempts)).toBeGreaterThan(1); // Temporal retried the crashed activity
    for (const r of runs) {
      expect(['loaded', 'partial', 'dead_letters_only']).toContain(r.outcome);
      expect(r.rows_loaded + r.duplicates_skipped + r.dead_letters).toBe(r.message_count);
    }
    // Rows inserted across every attempt: each post exactly once.
    expect(runs.reduce((n, r) => n + r.rows_loaded, 0)).toBe(N);

    const dead = await query<{ message_id: string; error_stage: string; error_message: string }>(
      'SELECT message_id, error_stage, error_message FROM DS.posts_dead_letter',
    );
    expect(dead).toEqual([
      { message_id: malformedId, error_stage: 'malformed', error_message: 'no data.id' },
    ]);

    expect(result).toMatchObject({ stoppedBy: 'signal', messages: published, deadLetters: 1 });
    expect(result.messages).toBe(acked.reduce((n, r) => n + r.message_count, 0));
    expect(result.rowsLoaded).toBe(acked.reduce((n, r) => n + r.rows_loaded, 0));
    expect(result.rowsLoaded + result.duplicatesSkipped).toBe(N + 1);
    expect(result.batches).toBe(acked.length);
  });
});

test('a load workflow terminated mid-batch and started again loads every post once; the old attempt stops', async () => {
  const ids = Array.from({ length: N }, (_, i) => String(7001 + i));
  let zombieRun: string | undefined;
  let stopped!: (how: string) => void;
  const zombieStopped = new Promise<string>((r) => (stopped = r));
  const activities = createLoadActivities({
    subscriber,
    sink: createBigQueryLoadSink({ bq, gcp: config.gcp, logger }),
    logger,
    // The first batch stalls before its insert until Temporal cancels it (its workflow is gone).
    beforeInsert: async (runId) => {
      if (zombieRun) return;
      zombieRun = runId;
      const signal = Context.current().cancellationSignal;
      await new Promise<void>((resolve) => {
        if (signal.aborted) resolve();
        signal.addEventListener('abort', () => resolve(), { once: true });
      });
      stopped(String(signal.reason));
    },
  });
  const taskQueue = uniqueName('load_term');
  const worker = await Worker.create({
    connection: native,
    namespace: config.temporal.namespace,
    taskQueue,
    workflowsPath: require.resolve('../../../src/workflows/load'),
    activities,
  });
  await publishAll(
    pubsub,
    config.gcp.topic,
    ids.map((id) => postMessage(makePost(id))),
  );
  const args = [{ intervalMs: 500, batchSize: 100, backlogThreshold: 100, ackDeadlineSeconds: 10 }] as const;
  await worker.runUntil(async () => {
    const first = await client.workflow.start(loadWorkflow, {
      taskQueue,
      workflowId: taskQueue,
      args: [...args],
    });
    await eventually(
      async () => zombieRun,
      (r) => r !== undefined,
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    await first.terminate('operator restarted the load child');
    const second = await client.workflow.start(loadWorkflow, {
      taskQueue,
      workflowId: taskQueue,
      args: [...args],
    });
    // The terminated run's attempt learns it is cancelled at its next heartbeat, and stops before it writes.
    expect(await zombieStopped).toMatch(/cancel|not.?found/i);
    const posts = await eventually(
      () =>
        query<{ n: number; d: number; z: number }>(
          `SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS d, COUNTIF(load_run_id = '${zombieRun}') AS z ` +
            `FROM DS.posts WHERE id IN (${ids.map((id) => `'${id}'`).join(',')})`,
        ),
      ([r]) => r!.d === N,
      { timeoutMs: 120_000, intervalMs: 1000 },
    );
    expect(posts).toEqual([{ n: N, d: N, z: 0 }]);
    await second.signal(loadStopSignal);
    await second.result();
  });
});
