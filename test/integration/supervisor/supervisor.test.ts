/**
 * The supervisor on the real Temporal dev server, with the real stream activity reading the X
 * stand-in over loopback HTTP and publishing to the Pub/Sub emulator.
 */
import type { PubSub } from '@google-cloud/pubsub';
import {
  Client,
  Connection,
  WorkflowExecutionAlreadyStartedError,
  WorkflowUpdateFailedError,
} from '@temporalio/client';
import { NativeConnection, Worker, bundleWorkflowCode } from '@temporalio/worker';
import { ensurePubSubResources } from '../../../src/adapters/pubsub/admin';
import { createPubSub } from '../../../src/adapters/pubsub/client';
import type { PipelineStatus } from '../../../src/domain/pipeline-status';
import { createLogger } from '../../../src/observability/logger';
import {
  pauseSignal,
  resumeSignal,
  setRulesUpdate,
  statusQuery,
  stopSignal,
} from '../../../src/workflows/messages';
import { supervisorWorkflow } from '../../../src/workflows/supervisor';
import { buildBatchActivities } from '../../../src/workers/batch-worker';
import { buildStreamActivities } from '../../../src/workers/stream-worker';
import { startXStandin, type XStandin } from '../../../dev/x-api-standin/server';
import { testConfig, uniqueName } from '../../support/config';
import { eventually } from '../../support/eventually';

let standin: XStandin;
let bundle: { code: string };
let pubsub: PubSub;
let client: Client;
let nativeConnection: NativeConnection;
const logger = createLogger({ level: 'warn', format: 'json' });

beforeAll(async () => {
  bundle = await bundleWorkflowCode({
    workflowsPath: require.resolve('../../../src/workflows'),
    logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} },
  });
  const base = testConfig();
  pubsub = createPubSub(base.gcp);
  client = new Client({
    connection: await Connection.connect({ address: base.temporal.address }),
    namespace: base.temporal.namespace,
  });
  nativeConnection = await NativeConnection.connect({ address: base.temporal.address });
}, 180_000);

afterAll(async () => {
  await nativeConnection?.close();
  await client?.connection.close();
  await pubsub?.close();
});

afterEach(async () => {
  await standin?.close();
});

/** A stream worker on its own task queue, topic and subscription, reading a fresh stand-in. */
async function setup(rate = 40, standinRules = [{ value: 'tesla', tag: 'tesla' }]) {
  standin = await startXStandin({ rate, seed: 7, keepAliveMs: 1000, rules: [] });
  void standinRules;
  const name = uniqueName('sup');
  const config = testConfig({
    X_API_BASE_URL: standin.url,
    X_BEARER_TOKEN: 'test-token',
    X_RULES: 'tesla#tesla',
    PUBSUB_TOPIC: `${name}-posts`,
    PUBSUB_SUBSCRIPTION: `${name}-sub`,
    PUBSUB_DEAD_LETTER_TOPIC: `${name}-dlq`,
    TEMPORAL_STREAM_TASK_QUEUE: `${name}-stream`,
    TEMPORAL_BATCH_TASK_QUEUE: `${name}-batch`,
    HEARTBEAT_INTERVAL_MS: '500',
    PROGRESS_REPORT_INTERVAL_MS: '300',
    PUBLISH_MAX_DELAY_MS: '10',
    X_STALL_TIMEOUT_MS: '3000',
    // These tests check what the stream delivered, exactly once; gap fill has its own tests
    // (gap-fill.test.ts), and its search results would add posts the stream never delivered.
    X_GAP_FILL: 'false',
  });
  await ensurePubSubResources(pubsub, config.gcp);
  const shutdown = new AbortController();
  const built = buildStreamActivities(config, logger, { client, shutdownSignal: shutdown.signal });
  const worker = await Worker.create({
    connection: nativeConnection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.streamTaskQueue,
    workflowBundle: bundle,
    activities: built.activities,
  });
  const running = worker.run();
  const stop = async () => {
    shutdown.abort();
    worker.shutdown();
    await running;
    await built.close();
  };
  return { config, name, worker, stop, workflowId: `x-ingest-${name}` };
}

async function status(workflowId: string): Promise<PipelineStatus> {
  return client.workflow.getHandle(workflowId).query(statusQuery);
}

/** Every message on the subscription, by post id (acked). */
async function drain(subscription: string, expected: number): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  const sub = pubsub.subscription(subscription);
  let total = 0;
  await new Promise<void>((resolve) => {
    const done = () => total >= expected && resolve();
    sub.on('message', (m) => {
      m.ack();
      const id = m.attributes.post_id;
      counts.set(id, (counts.get(id) ?? 0) + 1);
      total += 1;
      done();
    });
    done();
  });
  // Give a late redelivery a chance to show up before concluding "exactly once".
  await new Promise((r) => setTimeout(r, 1500));
  await sub.close();
  return counts;
}

test('start, publish, pause, resume, setRules accepted and rejected, stop: every delivered post exactly once', async () => {
  const s = await setup();
  try {
    const handle = await client.workflow.start(supervisorWorkflow, {
      workflowId: s.workflowId,
      taskQueue: s.config.temporal.streamTaskQueue,
      args: [{ streamName: s.name, children: { load: false, quality: false } }],
    });

    // A second supervisor for the same stream is refused by the workflow id.
    await expect(
      client.workflow.start(supervisorWorkflow, {
        workflowId: s.workflowId,
        taskQueue: s.config.temporal.streamTaskQueue,
        args: [{ streamName: s.name }],
      }),
    ).rejects.toBeInstanceOf(WorkflowExecutionAlreadyStartedError);

    const running = await eventually(
      () => status(s.workflowId),
      (st) => st.progress.postsPublished >= 20,
    );
    expect(running.state).toBe('running');
    expect(running.rules).toEqual([{ value: 'tesla', tag: 'tesla' }]);
    expect(standin.rules().map((r) => r.value)).toEqual(['tesla']);
    expect(running.progress.connected).toBe(true);
    // The Web UI shows the stream activity with a readable summary (user metadata on the event).
    const history = await handle.fetchHistory();
    const scheduled = history.events!.find(
      (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'streamToPubSub',
    );
    const summary = scheduled?.userMetadata?.summary?.data;
    expect(summary && JSON.parse(Buffer.from(summary).toString())).toBe(
      'X filtered stream → Pub/Sub; rules: tesla [tesla]',
    );

    await handle.signal(pauseSignal);
    const paused = await eventually(
      () => status(s.workflowId),
      (st) => st.state === 'paused' && !st.progress.connected,
    );
    await eventually(
      async () => standin.stats().activeConnection,
      (active) => !active,
    );
    const publishedWhilePaused = paused.progress.postsPublished;

    await handle.signal(resumeSignal);
    await eventually(
      () => status(s.workflowId),
      (st) => st.state === 'running' && st.progress.postsPublished > publishedWhilePaused + 10,
    );

    const applied = await handle.executeUpdate(setRulesUpdate, {
      args: [
        [
          { value: 'tesla', tag: 'tesla' },
          { value: 'spacex', tag: 'space' },
        ],
      ],
    });
    expect(applied.map((r) => [r.value, r.tag])).toEqual([
      ['tesla', 'tesla'],
      ['spacex', 'space'],
    ]);
    expect(
      standin
        .rules()
        .map((r) => r.value)
        .sort(),
    ).toEqual(['spacex', 'tesla']);

    const rejected = handle.executeUpdate(setRulesUpdate, { args: [[{ value: '(tesla', tag: 'bad' }]] });
    await expect(rejected).rejects.toBeInstanceOf(WorkflowUpdateFailedError);
    const reason = await rejected.catch((e: WorkflowUpdateFailedError) =>
      String((e.cause as Error)?.message),
    );
    expect(reason).toMatch(/\(tesla/);
    // Nothing half-applied: the previous rule set is still active.
    expect(
      standin
        .rules()
        .map((r) => r.value)
        .sort(),
    ).toEqual(['spacex', 'tesla']);
    expect((await status(s.workflowId)).rules.map((r) => r.value)).toEqual(['tesla', 'spacex']);

    // Quiesce the source, let the reader catch up with everything delivered, then stop.
    standin.setRate(0);
    await eventually(
      () => status(s.workflowId),
      (st) => st.progress.postsPublished - 0 === new Set(standin.ledger()).size,
    );
    await handle.signal(stopSignal);
    const final = await handle.result();
    expect(final.state).toBe('stopped');
    expect(final.progress.connected).toBe(false);

    const ledger = new Set(standin.ledger());
    const counts = await drain(s.config.gcp.subscription, ledger.size);
    expect(final.progress.postsPublished).toBe(ledger.size);
    expect([...counts.keys()].sort()).toEqual([...ledger].sort());
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    // Published counts per minute add up to what was published (posts + malformed).
    const perMinute = final.publishedByMinute.reduce((a, m) => a + m.published, 0);
    expect(perMinute).toBe(final.progress.postsPublished + final.progress.malformedPublished);
  } finally {
    await s.stop();
  }
});

test('continue-as-new carries state and the stream keeps flowing', async () => {
  const s = await setup(30);
  try {
    const handle = await client.workflow.start(supervisorWorkflow, {
      workflowId: s.workflowId,
      taskQueue: s.config.temporal.streamTaskQueue,
      args: [{ streamName: s.name, children: { load: false, quality: false }, maxHistoryEvents: 60 }],
    });
    const before = await eventually(
      () => status(s.workflowId),
      (st) => st.generation >= 1 && st.progress.postsPublished > 0,
    );
    const after = await eventually(
      () => status(s.workflowId),
      (st) =>
        st.generation >= before.generation &&
        st.progress.postsPublished > before.progress.postsPublished + 20,
    );
    expect(after.startedAt).toBe(before.startedAt);
    expect(after.rules).toEqual(before.rules);
    expect(after.progress.postsReceived).toBeGreaterThanOrEqual(before.progress.postsReceived);
    await handle.signal(stopSignal);
    const final = await client.workflow.getHandle(s.workflowId).result();
    expect(final.state).toBe('stopped');
    expect(final.generation).toBeGreaterThanOrEqual(1);
  } finally {
    await s.stop();
  }
});

test('a child that fails is restarted with the same id; stop then ends it', async () => {
  const s = await setup(10);
  // A batch worker for the load child (the default dataset the global setup provisioned).
  const batch = buildBatchActivities(s.config, logger, { client });
  const batchWorker = await Worker.create({
    connection: nativeConnection,
    namespace: s.config.temporal.namespace,
    taskQueue: s.config.temporal.batchTaskQueue,
    workflowBundle: bundle,
    activities: batch.activities,
  });
  const batchRunning = batchWorker.run();
  try {
    const handle = await client.workflow.start(supervisorWorkflow, {
      workflowId: s.workflowId,
      taskQueue: s.config.temporal.streamTaskQueue,
      args: [{ streamName: s.name, children: { load: true, quality: false }, startPaused: true }],
    });
    const started = await eventually(
      () => status(s.workflowId),
      (st) => st.children.load.state === 'running',
    );
    const loadId = started.children.load.workflowId;
    expect(loadId).toBe(`${s.workflowId}-load`);
    const first = await client.workflow.getHandle(loadId).describe();

    await client.workflow.getHandle(loadId).terminate('simulated child failure');
    const restarted = await eventually(
      () => status(s.workflowId),
      (st) => st.children.load.restarts === 1 && st.children.load.state === 'running',
    );
    expect(restarted.children.load.lastError).toMatch(/terminated/i);
    const childStart = (await handle.fetchHistory()).events!.find(
      (e) => e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowType?.name === 'loadWorkflow',
    );
    const childSummary = childStart?.userMetadata?.summary?.data;
    expect(childSummary && JSON.parse(Buffer.from(childSummary).toString())).toBe(
      `Pub/Sub → BigQuery loader of ${s.name}`,
    );
    const second = await eventually(
      () => client.workflow.getHandle(loadId).describe(),
      (d) => d.runId !== first.runId && d.status.name === 'RUNNING',
    );
    expect(second.workflowId).toBe(loadId);

    await handle.signal(stopSignal);
    const final = await handle.result();
    expect(final.state).toBe('stopped');
    expect(final.children.load.state).toBe('stopped');
    expect((await client.workflow.getHandle(loadId).describe()).status.name).toBe('COMPLETED');
  } finally {
    batchWorker.shutdown();
    await batchRunning;
    await batch.close();
    await s.stop();
  }
});
