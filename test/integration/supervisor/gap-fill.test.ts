/**
 * Gap fill and the read budget on the real Temporal dev server: the supervisor, its gap-fill child
 * and the real stream and fill activities read the X stand-in over loopback HTTP (whose world goes
 * on creating posts while nobody is connected) and publish to the Pub/Sub emulator.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import type { AppConfig } from '../../../src/config';
import { pauseSignal, resumeSignal, setBudgetUpdate, stopSignal } from '../../../src/workflows/messages';
import { supervisorWorkflow } from '../../../src/workflows/supervisor';
import { startXStandin, type StandinOptions, type XStandin } from '../../../dev/x-api-standin/server';
import { eventually } from '../../support/eventually';
import { startStreamWorker, statusOf, streamTestConfig, useTemporalHarness } from './harness';

let standin: XStandin | undefined;
const h = useTemporalHarness();

afterEach(async () => {
  await standin?.close();
  standin = undefined;
});

/** A stand-in, a private topic/subscription/task queue, and a way to start stream workers on it. */
async function setup(env: Record<string, string>, standinOpts: StandinOptions = {}) {
  const x = await startXStandin({ rate: 20, seed: 11, keepAliveMs: 1000, rules: [], ...standinOpts });
  standin = x;
  const { name, config } = await streamTestConfig(h, 'gap', x.url, { X_GAP_MARGIN_SECONDS: '1', ...env });
  const workers: (() => Promise<void>)[] = [];
  const startWorker = async () => {
    const stop = await startStreamWorker(h, config);
    workers.push(stop);
    return stop;
  };
  const start = () =>
    h.client.workflow.start(supervisorWorkflow, {
      workflowId: `x-ingest-${name}`,
      taskQueue: config.temporal.streamTaskQueue,
      args: [{ streamName: name, children: { load: false, quality: false } }],
    });
  const stopAll = async () => {
    await h.client.workflow
      .getHandle(`x-ingest-${name}`)
      .terminate('test cleanup')
      .catch(() => undefined);
    for (const stop of workers.splice(0)) await stop().catch(() => undefined);
  };
  return { x, config, name, startWorker, start, stopAll };
}

const status = (workflowId: string) => statusOf(h, workflowId);

/** Ids on the subscription (acked) until every id in `want` has arrived or the timeout passes. */
async function receiveIds(config: AppConfig, want: Set<string>, timeoutMs = 60_000): Promise<Set<string>> {
  const got = new Set<string>();
  const sub = h.pubsub.subscription(config.gcp.subscription);
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    const check = () => {
      if ([...want].every((id) => got.has(id))) {
        clearTimeout(timer);
        resolve();
      }
    };
    sub.on('message', (m) => {
      m.ack();
      if (m.attributes.post_id) got.add(m.attributes.post_id);
      check();
    });
    check();
  });
  await sub.close();
  return got;
}

test('a gap across a crashed worker is recorded and filled by search: every post the stand-in created lands on the topic', async () => {
  const s = await setup({});
  try {
    const stopFirst = await s.startWorker();
    const handle = await s.start();
    await eventually(
      () => status(handle.workflowId),
      (st) => st.progress.postsPublished >= 20,
    );
    // The worker goes away: the stream is down while the stand-in's world keeps creating posts.
    await stopFirst();
    const createdAtStop = s.x.world().created.length;
    await eventually(
      async () => s.x.world().created.length,
      (n) => n >= createdAtStop + 40,
    );
    await s.startWorker();
    const filled = await eventually(
      () => status(handle.workflowId),
      (st) => (st.gaps?.counts.filled ?? 0) >= 1,
      { timeoutMs: 90_000 },
    );
    const gap = filled.gaps!.ledger.find((g) => g.state === 'filled')!;
    expect(gap.reason).toBe('worker-restart');
    expect(gap.postsFound).toBeGreaterThanOrEqual(40);
    expect(gap.endpoint).toBe('recent');
    expect(filled.gaps!.counts.found).toBeGreaterThanOrEqual(1);
    expect(filled.gaps!.counts.postsFilled).toBeGreaterThanOrEqual(40);
    // The posts read by search count against the month's reads, apart from the stream's.
    expect(filled.budget!.monthSearchPosts).toBe(gap.postsFound);
    expect(filled.budget!.monthPosts).toBeGreaterThanOrEqual(filled.progress.postsReceived + gap.postsFound!);

    // Every post created up to the end of the gap is on the topic: delivered by the stream or found
    // by search (never delivered ones included).
    // (From the first post the stream delivered: the stand-in creates posts before it connects.)
    const endMs = Date.parse(gap.end);
    const delivered = new Set(s.x.world().delivered);
    const firstMs = Math.min(
      ...s.x
        .world()
        .created.filter((p) => delivered.has(p.id))
        .map((p) => Date.parse(p.created_at)),
    );
    const created = s.x
      .world()
      .created.filter((p) => Date.parse(p.created_at) >= firstMs && Date.parse(p.created_at) <= endMs);
    const neverDelivered = created.filter((p) => !delivered.has(p.id));
    expect(neverDelivered.length).toBeGreaterThanOrEqual(40);
    const got = await receiveIds(s.config, new Set(created.map((p) => p.id)));
    expect(created.filter((p) => !got.has(p.id)).map((p) => p.id)).toEqual([]);

    await handle.signal(stopSignal);
    const final = await handle.result();
    expect(final.gaps!.ledger.some((g) => g.id === gap.id && g.state === 'filled')).toBe(true);
  } finally {
    await s.stopAll();
  }
});

test('a pause resumed before the stream has closed is a paused gap, filled on resume', async () => {
  const s = await setup({});
  try {
    await s.startWorker();
    const handle = await s.start();
    await eventually(
      () => status(handle.workflowId),
      (st) => st.progress.postsPublished >= 20,
    );
    // Resume at once: the activity is still closing (cancellation reaches it at its next heartbeat).
    await handle.signal(pauseSignal);
    await handle.signal(resumeSignal);
    const filled = await eventually(
      () => status(handle.workflowId),
      (st) => (st.gaps?.counts.filled ?? 0) >= 1,
      { timeoutMs: 90_000 },
    );
    expect(filled.gaps!.ledger.filter((g) => g.state === 'filled').map((g) => g.reason)).toEqual(['paused']);
  } finally {
    await s.stopAll();
  }
});

test('the read budget: a warning at 80 %, the stream held as budget-exhausted at 100 %, setBudget resumes it', async () => {
  const hooks: { level?: string; kind?: string }[] = [];
  const hook = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      hooks.push(JSON.parse(body) as { level?: string });
      res.end('ok');
    });
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  const s = await setup({
    X_MONTHLY_POST_BUDGET: '40',
    X_COST_PER_POST_USD: '0.01',
    DQ_WEBHOOK_URL: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`,
  });
  try {
    await s.startWorker();
    const handle = await s.start();
    const held = await eventually(
      () => status(handle.workflowId),
      (st) => st.state === 'budget-exhausted',
    );
    expect(held.budget!.hold).toMatchObject({ by: 'budget' });
    expect(held.budget!.level).toBe('exhausted');
    expect(held.budget!.monthPosts).toBeGreaterThanOrEqual(40);
    expect(held.budget!.estimatedCostMonthUsd).toBeCloseTo(held.budget!.monthPosts * 0.01, 2);
    expect(Date.parse(held.budget!.hold!.until)).toBeGreaterThan(Date.now());
    await eventually(
      async () => s.x.stats().activeConnection,
      (active) => !active,
    );
    await eventually(
      async () => hooks.map((h) => h.level),
      (levels) => levels.includes('warn') && levels.includes('exhausted'),
    );
    expect(hooks.every((h) => h.kind === 'x-read-budget')).toBe(true);

    // A bad budget is refused with a message naming the expected form; nothing changes.
    const bad = handle.executeUpdate(setBudgetUpdate, { args: [{ monthlyPosts: -5 }] });
    await expect(bad).rejects.toBeInstanceOf(WorkflowUpdateFailedError);
    expect(await bad.catch((e: WorkflowUpdateFailedError) => String((e.cause as Error)?.message))).toMatch(
      /positive integer/,
    );
    expect((await status(handle.workflowId)).state).toBe('budget-exhausted');

    const raised = await handle.executeUpdate(setBudgetUpdate, { args: [{ monthlyPosts: 1_000_000 }] });
    expect(raised.level).toBe('ok');
    expect(raised.hold).toBeUndefined();
    const resumed = await eventually(
      () => status(handle.workflowId),
      (st) => st.state === 'running' && st.progress.postsReceived > held.progress.postsReceived + 10,
    );
    expect(resumed.budget!.monthlyPosts).toBe(1_000_000);
    // The held interval is a gap like any other.
    expect(resumed.gaps!.counts.found).toBeGreaterThanOrEqual(1);
  } finally {
    await s.stopAll();
    hook.close();
  }
});

test("X's usage cap holds the stream without a retry every minute; resume after the cap is lifted reconnects", async () => {
  const s = await setup({}, { faults: { usageCapped: true } });
  try {
    await s.startWorker();
    const handle = await s.start();
    const held = await eventually(
      () => status(handle.workflowId),
      (st) => st.state === 'budget-exhausted',
    );
    expect(held.budget!.hold).toMatchObject({ by: 'x-usage-cap' });
    expect(held.budget!.hold!.detail).toMatch(/cap/i);
    // One connect, refused once; the activity failed for good (no retry scheduled), the workflow
    // waits on a timer until the month turns.
    expect(s.x.stats().rejected).toEqual({ 429: 1 });
    const history = await handle.fetchHistory();
    const failed = history.events!.filter((e) => e.activityTaskFailedEventAttributes);
    expect(failed).toHaveLength(1);
    const desc = await handle.describe();
    expect(desc.raw.pendingActivities ?? []).toEqual([]);

    s.x.setFaults({ usageCapped: false });
    await handle.signal(resumeSignal);
    const running = await eventually(
      () => status(handle.workflowId),
      (st) => st.state === 'running' && st.progress.postsPublished >= 10,
    );
    expect(running.budget!.hold).toBeUndefined();
    expect(s.x.stats().rejected).toEqual({ 429: 1 });
  } finally {
    await s.stopAll();
  }
});
