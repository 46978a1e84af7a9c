/**
 * Load lanes end to end on the real Temporal dev server: the supervisor runs one load child per lane
 * (`x-ingest-<name>-load-<k>`), the stream worker publishes each post with its lane, and the real
 * batch worker loads every post the stand-in delivered into the BigQuery emulator exactly once, each
 * through the load child of its id's lane.
 */
import type { BigQuery } from '@google-cloud/bigquery';
import { Worker } from '@temporalio/worker';
import { createBigQueryClient } from '../../../src/adapters/bigquery/client';
import { laneOf } from '../../../src/domain/lanes';
import { pauseSignal, stopSignal } from '../../../src/workflows/messages';
import { supervisorWorkflow } from '../../../src/workflows/supervisor';
import { buildBatchActivities } from '../../../src/workers/batch-worker';
import { startXStandin, type XStandin } from '../../../dev/x-api-standin/server';
import { uniqueName } from '../../support/config';
import { eventually } from '../../support/eventually';
import { logger, startStreamWorker, statusOf, streamTestConfig, useTemporalHarness } from './harness';

jest.setTimeout(240_000);

const h = useTemporalHarness();
let standin: XStandin | undefined;
let bq: BigQuery | undefined;
let dataset: string | undefined;

afterAll(async () => {
  await standin?.close();
  if (bq && dataset)
    await bq
      .dataset(dataset)
      .delete({ force: true })
      .catch(() => undefined);
});

test('two lanes: one load child each, every delivered post loaded once, through its own lane', async () => {
  const x = await startXStandin({ rate: 30, seed: 5, keepAliveMs: 1000, rules: [] });
  standin = x;
  dataset = uniqueName('it_lanes_sup');
  const { name, config } = await streamTestConfig(h, 'lanes', x.url, {
    LOAD_LANES: '2',
    LOAD_INTERVAL_MS: '1000',
    BIGQUERY_DATASET: dataset,
  });
  bq = createBigQueryClient(config.gcp);
  const stopStream = await startStreamWorker(h, config);
  const batch = buildBatchActivities(config, logger, { client: h.client });
  const batchWorker = await Worker.create({
    connection: h.nativeConnection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.batchTaskQueue,
    workflowBundle: h.bundle,
    activities: batch.activities,
  });
  const batchRunning = batchWorker.run();
  const workflowId = `x-ingest-${name}`;
  try {
    const handle = await h.client.workflow.start(supervisorWorkflow, {
      workflowId,
      taskQueue: config.temporal.streamTaskQueue,
      args: [{ streamName: name, children: { load: true, quality: false, gapFill: false } }],
    });
    const running = await eventually(
      () => statusOf(h, workflowId),
      (st) =>
        st.children.load.state === 'running' &&
        st.children.loadLanes?.[0]?.state === 'running' &&
        st.progress.postsPublished >= 60,
      { timeoutMs: 120_000 },
    );
    expect(running.children.load.workflowId).toBe(`${workflowId}-load-0`);
    expect(running.children.loadLanes!.map((c) => c.workflowId)).toEqual([`${workflowId}-load-1`]);

    // Pause: the stream closes (the publisher flushes), the load children go on draining.
    await handle.signal(pauseSignal);
    await eventually(
      () => statusOf(h, workflowId),
      (st) => st.state === 'paused' && !st.progress.connected,
    );
    const delivered = [...new Set(x.world().delivered)];
    expect(delivered.length).toBeGreaterThanOrEqual(60);

    const table = `\`${config.gcp.projectId}.${dataset}`;
    const rows = await eventually(
      async () =>
        (
          await bq!.query({
            query:
              `SELECT P.id, R.workflow_id FROM ${table}.posts\` P ` +
              `JOIN ${table}.load_runs\` R ON R.run_id = P.load_run_id`,
          })
        )[0] as { id: string; workflow_id: string }[],
      (rs) => delivered.every((id) => rs.some((r) => r.id === id)),
      { timeoutMs: 120_000, intervalMs: 2000 },
    );
    expect(new Set(rows.map((r) => r.id)).size).toBe(rows.length); // one row per id
    for (const r of rows) expect(r.workflow_id).toBe(`${workflowId}-load-${laneOf(r.id, 2)}`);
    expect(new Set(rows.map((r) => r.workflow_id)).size).toBe(2); // both lanes loaded

    await handle.signal(stopSignal);
    const final = await handle.result();
    expect(final.children.load.state).toBe('stopped');
    expect(final.children.loadLanes![0]!.state).toBe('stopped');
  } finally {
    await h.client.workflow
      .getHandle(workflowId)
      .terminate('test cleanup')
      .catch(() => undefined);
    batchWorker.shutdown();
    await batchRunning;
    await batch.close();
    await stopStream();
  }
});

test('a LOAD_LANES whose lane subscriptions setup has not created is refused at start, naming them', async () => {
  const x = await startXStandin({ rate: 5, seed: 6, keepAliveMs: 1000, rules: [] });
  const { name, config } = await streamTestConfig(h, 'lanes_missing', x.url, { LOAD_LANES: '2' });
  // The workers were rolled out with 3 lanes, but setup ran with 2.
  const rolled = { ...config, load: { ...config.load, lanes: 3 } };
  const stopStream = await startStreamWorker(h, rolled);
  try {
    const handle = await h.client.workflow.start(supervisorWorkflow, {
      workflowId: `x-ingest-${name}`,
      taskQueue: config.temporal.streamTaskQueue,
      args: [{ streamName: name, children: { load: false, quality: false, gapFill: false } }],
    });
    const failure = await handle.result().then(
      () => undefined,
      (err: Error & { cause?: { cause?: Error } }) => err.cause?.cause?.message ?? err.message,
    );
    expect(failure).toMatch(/LOAD_LANES=3 .*lanes_missing.*-sub-lane-2 do not exist: run `npm run setup`/);
  } finally {
    await stopStream();
    await x.close();
  }
});
