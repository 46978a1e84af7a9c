/**
 * The supervisor on the real Temporal dev server, with the real stream activity reading the X
 * stand-in over loopback HTTP and publishing to the Pub/Sub emulator.
 */
import { WorkflowExecutionAlreadyStartedError, WorkflowUpdateFailedError } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { pauseSignal, resumeSignal, setRulesUpdate, stopSignal } from '../../../src/workflows/messages';
import { supervisorWorkflow } from '../../../src/workflows/supervisor';
import { buildBatchActivities } from '../../../src/workers/batch-worker';
import { startXStandin, type XStandin } from '../../../dev/x-api-standin/server';
import { eventually } from '../../support/eventually';
import { logger, startStreamWorker, statusOf, streamTestConfig, useTemporalHarness } from './harness';

let standin: XStandin;
const h = useTemporalHarness();

afterEach(async () => {
  await standin?.close();
});

/** A stream worker on its own task queue, topic and subscription, reading a fresh stand-in. */
async function setup(rate = 40) {
  standin = await startXStandin({ rate, seed: 7, keepAliveMs: 1000, rules: [] });
  const { name, config } = await streamTestConfig(h, 'sup', standin.url, {
    // These tests check what the stream delivered, exactly once; gap fill has its own tests
    // (gap-fill.test.ts), and its search results would add posts the stream never delivered.
    X_GAP_FILL: 'false',
  });
  const stop = await startStreamWorker(h, config);
  return { config, name, stop, workflowId: `x-ingest-${name}` };
}

const status = (workflowId: string) => statusOf(h, workflowId);

/** Every message on the subscription, by post id (acked). */
async function drain(subscription: string, expected: number): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  const sub = h.pubsub.subscription(subscription);
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
    const handle = await h.client.workflow.start(supervisorWorkflow, {
      workflowId: s.workflowId,
      taskQueue: s.config.temporal.streamTaskQueue,
      args: [{ streamName: s.name, children: { load: false, quality: false } }],
    });

    // A second supervisor for the same stream is refused by the workflow id.
    await expect(
      h.client.workflow.start(supervisorWorkflow, {
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
    const handle = await h.client.workflow.start(supervisorWorkflow, {
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
    const final = await h.client.workflow.getHandle(s.workflowId).result();
    expect(final.state).toBe('stopped');
    expect(final.generation).toBeGreaterThanOrEqual(1);
  } finally {
    await s.stop();
  }
});

test('a child that fails is restarted with the same id; stop then ends it', async () => {
  const s = await setup(10);
  // A batch worker for the load child (the default dataset the global setup provisioned).
  const batch = buildBatchActivities(s.config, logger, { client: h.client });
  const batchWorker = await Worker.create({
    connection: h.nativeConnection,
    namespace: s.config.temporal.namespace,
    taskQueue: s.config.temporal.batchTaskQueue,
    workflowBundle: h.bundle,
    activities: batch.activities,
  });
  const batchRunning = batchWorker.run();
  try {
    const handle = await h.client.workflow.start(supervisorWorkflow, {
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
    const first = await h.client.workflow.getHandle(loadId).describe();

    await h.client.workflow.getHandle(loadId).terminate('simulated child failure');
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
      () => h.client.workflow.getHandle(loadId).describe(),
      (d) => d.runId !== first.runId && d.status.name === 'RUNNING',
    );
    expect(second.workflowId).toBe(loadId);

    await handle.signal(stopSignal);
    const final = await handle.result();
    expect(final.state).toBe('stopped');
    expect(final.children.load.state).toBe('stopped');
    expect((await h.client.workflow.getHandle(loadId).describe()).status.name).toBe('COMPLETED');
  } finally {
    batchWorker.shutdown();
    await batchRunning;
    await batch.close();
    await s.stop();
  }
});
