/**
 * The stream activity (`streamToPubSub`) in a `MockActivityEnvironment`, reading the real X stand-in
 * over loopback HTTP and publishing through an injected `publishFn` (a stand-in for Pub/Sub whose
 * speed and failures the test controls). Progress reports go to a recording function.
 *
 * Each test ends by quiescing the stand-in (`setRate(0)`) and waiting until everything it wrote was
 * published, so "every ledger post exactly once" is checked against the stand-in's own ledger.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import type { Info } from '@temporalio/activity';
import { startXStandin, type StandinOptions, type XStandin } from '../../../dev/x-api-standin/server';
import {
  createStreamActivities,
  type StreamActivityResult,
  type StreamHeartbeat,
} from '../../../src/activities/stream';
import { XStreamSource } from '../../../src/adapters/x/stream-source';
import type { Env } from '../../../src/config';
import { createLogger } from '../../../src/observability/logger';
import type { ProgressReport } from '../../../src/domain/pipeline-status';
import { testConfig, uniqueName } from '../../support/config';
import { eventually } from '../../support/eventually';

const logger = createLogger({ level: 'silent' });
const TOKEN = 'test-token';
const fast = { timeoutMs: 20_000, intervalMs: 20 };

type PublishFn = (data: Buffer, attributes: Record<string, string>) => Promise<string>;

interface Harness {
  standin: XStandin;
  env: MockActivityEnvironment;
  /** Every heartbeat the activity sent, in order. */
  heartbeats: StreamHeartbeat[];
  reports: ProgressReport[];
  /** Post id → number of acknowledged publishes (the injected publishFn resolved); posts only. */
  published: Map<string, number>;
  /** Attributes of every acknowledged publish (posts and malformed lines), in order. */
  attributes: Record<string, string>[];
  run: Promise<StreamActivityResult>;
  last(): StreamHeartbeat | undefined;
}

const standins: XStandin[] = [];
afterEach(async () => {
  await Promise.all(standins.splice(0).map((s) => s.close()));
});

async function startStandin(opts: StandinOptions = {}): Promise<XStandin> {
  const s = await startXStandin({
    seed: 11,
    keepAliveMs: 200,
    rules: [{ value: 'tesla', tag: 'tesla' }],
    ...opts,
  });
  standins.push(s);
  return s;
}

/**
 * Runs `streamToPubSub` in a fresh mock activity environment against `standin`. `publish` is the
 * Pub/Sub stand-in; only its resolved calls count as published.
 */
function runActivity(
  standin: XStandin,
  {
    env: envOverrides = {},
    publish = async () => 'ok',
    info = {},
    backfillMinutes = 0,
  }: { env?: Env; publish?: PublishFn; info?: Partial<Info>; backfillMinutes?: number } = {},
): Harness {
  const name = uniqueName('act');
  const config = testConfig({
    X_API_BASE_URL: standin.url,
    X_BEARER_TOKEN: TOKEN,
    PUBSUB_TOPIC: `${name}-posts`,
    HEARTBEAT_INTERVAL_MS: '50',
    PROGRESS_REPORT_INTERVAL_MS: '100',
    PUBLISH_MAX_DELAY_MS: '5',
    X_STALL_TIMEOUT_MS: '10000',
    ...envOverrides,
  });
  const heartbeats: StreamHeartbeat[] = [];
  const reports: ProgressReport[] = [];
  const published = new Map<string, number>();
  const attributes: Record<string, string>[] = [];
  const activities = createStreamActivities({
    config,
    logger,
    pubsub: undefined,
    rulesClient: undefined,
    // The stream worker's source, built the same way (src/workers/stream-worker.ts).
    createSource: () =>
      new XStreamSource({
        baseUrl: config.x.baseUrl,
        bearerToken: TOKEN,
        tweetFields: config.x.tweetFields,
        expansions: config.x.expansions,
        userFields: config.x.userFields,
        stallTimeoutMs: config.x.stallTimeoutMs,
        backfillMinutes: config.x.backfillMinutes,
        logger,
      }),
    reportProgress: async (_workflowId, report) => {
      reports.push(structuredClone(report));
    },
    publishFn: async (data, attrs) => {
      const id = await publish(data, attrs);
      if (attrs.malformed === 'false')
        published.set(attrs.post_id!, (published.get(attrs.post_id!) ?? 0) + 1);
      attributes.push(attrs);
      return id;
    },
  });
  const env = new MockActivityEnvironment({
    activityId: name,
    workflowExecution: { workflowId: `x-ingest-${name}`, runId: name },
    heartbeatTimeoutMs: 30_000,
    ...info,
  });
  env.on('heartbeat', (d: StreamHeartbeat) => heartbeats.push(structuredClone(d)));
  const run: Promise<StreamActivityResult> = env.run(activities.streamToPubSub, {
    supervisorWorkflowId: `x-ingest-${name}`,
    backfillMinutes,
  });
  // A failure is asserted by the test that awaits `run`; never an unhandled rejection meanwhile.
  run.catch(() => undefined);
  return { standin, env, heartbeats, reports, published, attributes, run, last: () => heartbeats.at(-1) };
}

/** Waits for the latest heartbeat to satisfy `done`. */
function heartbeatWhere(h: Harness, done: (hb: StreamHeartbeat) => boolean): Promise<StreamHeartbeat> {
  return eventually(
    async () => h.last(),
    (hb) => hb !== undefined && done(hb),
    fast,
  ) as Promise<StreamHeartbeat>;
}

/** Stops the stand-in's generator and waits until every post it wrote was published. */
async function quiesce(h: Harness): Promise<string[]> {
  h.standin.setRate(0);
  // Let the last generator tick's write reach the ledger, then wait for the reader to catch up.
  await eventually(
    async () => ({ ledger: new Set(h.standin.ledger()).size, published: h.published.size }),
    (c) => c.ledger > 0 && c.published === c.ledger,
    fast,
  );
  return h.standin.ledger();
}

function expectExactlyOnce(h: Harness, ledger: string[]): void {
  expect(new Set(ledger).size).toBe(ledger.length); // no duplicate fault in these tests
  expect([...h.published.keys()].sort()).toEqual([...ledger].sort());
  expect([...h.published.values()].every((n) => n === 1)).toBe(true);
}

test('heartbeats carry connected, postsReceived, postsPublished, lastPostId and reconnects', async () => {
  const standin = await startStandin({ rate: 50 });
  const h = runActivity(standin);

  // The first heartbeat is sent at once, before the connection is up.
  await eventually(
    async () => h.heartbeats.length,
    (n) => n > 0,
    fast,
  );
  expect(h.heartbeats[0]!.progress).toMatchObject({ postsReceived: 0, postsPublished: 0, reconnects: 0 });

  const live = await heartbeatWhere(h, (hb) => hb.progress.connected && hb.progress.postsPublished >= 20);
  expect(live.progress.reconnects).toBe(0);
  expect(live.progress.postsReceived).toBeGreaterThanOrEqual(live.progress.postsPublished);
  expect(standin.ledger()).toContain(live.progress.lastPostId);
  expect(live.lastPostAtMs).toBe(Date.parse(live.progress.lastPostAt!));

  // A dropped connection shows up as a reconnect with its reason; the stream resumes.
  standin.setFaults({ dropAfterPosts: 5 });
  const after = await heartbeatWhere(
    h,
    (hb) =>
      hb.progress.reconnects === 1 &&
      hb.progress.connected &&
      hb.progress.postsPublished > live.progress.postsPublished + 10,
  );
  expect(after.progress.reconnectsByReason).toEqual({ network: 1 });
  expect(after.progress.lastError).toMatch(/^network/);
  expect(standin.stats().connects).toBe(2);

  const ledger = await quiesce(h);
  const settled = await heartbeatWhere(h, (hb) => hb.progress.postsPublished === ledger.length);
  // Counters are monotonic across heartbeats.
  for (let i = 1; i < h.heartbeats.length; i++) {
    expect(h.heartbeats[i]!.progress.postsReceived).toBeGreaterThanOrEqual(
      h.heartbeats[i - 1]!.progress.postsReceived,
    );
    expect(h.heartbeats[i]!.progress.postsPublished).toBeGreaterThanOrEqual(
      h.heartbeats[i - 1]!.progress.postsPublished,
    );
  }
  expect(settled.progress.lastPostId).toBe(ledger.at(-1));
  expect(settled.progress.postsReceived).toBe(ledger.length);
  // The half line cut by the drop is handed over as one malformed message (dead-lettered downstream).
  expect(settled.progress.malformedPublished).toBe(1);
  const malformed = h.attributes.filter((a) => a.malformed === 'true');
  expect(malformed).toEqual([
    expect.objectContaining({ post_id: '', error: expect.stringMatching(/^truncated/) }),
  ]);
  expect(h.attributes.filter((a) => a.malformed === 'false').every((a) => a.rule_tags === 'tesla')).toBe(
    true,
  );

  h.env.cancel();
  const result = await h.run;
  expect(result).toEqual({
    postsPublished: ledger.length,
    malformedPublished: 1,
    stoppedBecause: 'cancelled',
  });
  expectExactlyOnce(h, ledger);
  // The last heartbeat says disconnected, and the reports to the supervisor add up.
  expect(h.last()!.progress.connected).toBe(false);
  const finalReport = h.reports.at(-1)!;
  expect(finalReport.progress.postsPublished).toBe(ledger.length);
  expect(h.reports.map((r) => r.sequence)).toEqual(h.reports.map((_, i) => i + 1));
  expect(new Set(h.reports.map((r) => r.reporter)).size).toBe(1);
  const perMinute = h.reports.flatMap((r) => r.publishedByMinute).reduce((a, m) => a + m.published, 0);
  expect(perMinute).toBe(ledger.length + 1);
});

test('cancellation closes the X connection promptly and flushes the publisher before returning', async () => {
  const standin = await startStandin({ rate: 100 });
  // A slow Pub/Sub: each publish takes 300 ms, so publishes are in flight when the cancel arrives.
  let inFlight = 0;
  const h = runActivity(standin, {
    publish: async () => {
      inFlight += 1;
      await new Promise((r) => setTimeout(r, 300));
      inFlight -= 1;
      return 'ok';
    },
  });
  await heartbeatWhere(h, (hb) => hb.progress.connected && hb.progress.postsPublished >= 20);
  await eventually(
    async () => inFlight,
    (n) => n > 0,
    fast,
  );
  expect(standin.stats().activeConnection).toBe(true);

  const cancelledAt = Date.now();
  h.env.cancel();
  await eventually(
    async () => standin.stats().activeConnection,
    (active) => !active,
    {
      timeoutMs: 2_000,
      intervalMs: 10,
    },
  );
  const closedAfterMs = Date.now() - cancelledAt;
  expect(closedAfterMs).toBeLessThan(1_000);

  const result = await h.run;
  // Returned only after every accepted publish was acknowledged.
  expect(inFlight).toBe(0);
  expect(result.stoppedBecause).toBe('cancelled');
  const received = h.last()!.progress.postsReceived;
  expect(result.postsPublished).toBe(received);
  expect(h.published.size).toBe(received);
  expect([...h.published.values()].every((n) => n === 1)).toBe(true);
  // Everything read from the socket was on the ledger, and nothing is published after the return.
  const ledger = standin.ledger();
  expect([...h.published.keys()].every((id) => ledger.includes(id))).toBe(true);
  expect(h.reports.at(-1)!.progress.postsPublished).toBe(received);
  expect(h.last()!.progress.connected).toBe(false);
  // No reconnect after the cancel.
  expect(standin.stats().connects).toBe(1);
});

test('failed publishes are retried: every ledger post is published exactly once', async () => {
  const standin = await startStandin({ rate: 40 });
  const failFirst = 6;
  let calls = 0;
  const h = runActivity(standin, {
    publish: async () => {
      calls += 1;
      if (calls <= failFirst) throw new Error(`UNAVAILABLE: emulator down (call ${calls})`);
      return `m-${calls}`;
    },
  });
  await heartbeatWhere(h, (hb) => hb.progress.postsPublished >= 30);
  const ledger = await quiesce(h);
  h.env.cancel();
  const result = await h.run;
  expect(calls).toBe(ledger.length + failFirst);
  expect(result.postsPublished).toBe(ledger.length);
  expectExactlyOnce(h, ledger);
});

test('back-pressure bounds what is held: outstanding stays within the limit, then the backlog is published', async () => {
  const limit = 20;
  const standin = await startStandin({ rate: 400 });
  let slow = true;
  let inFlight = 0;
  let peak = 0;
  const h = runActivity(standin, {
    env: { PUBLISH_MAX_OUTSTANDING_MESSAGES: String(limit) },
    publish: async () => {
      inFlight += 1;
      peak = Math.max(peak, inFlight);
      // 20 in flight × 200 ms each = 100 posts/s, a quarter of the stand-in's rate.
      if (slow) await new Promise((r) => setTimeout(r, 200));
      inFlight -= 1;
      return 'ok';
    },
  });
  const pressed = await heartbeatWhere(
    h,
    (hb) => hb.progress.backpressurePauses > 0 && hb.progress.postsPublished >= 100,
  );
  expect(peak).toBeLessThanOrEqual(limit);
  // The reader waited for Pub/Sub rather than buffering without limit: at most `limit` publishes
  // outstanding plus the one post the reader holds while `publish()` waits for room.
  expect(pressed.progress.postsReceived - pressed.progress.postsPublished).toBeLessThanOrEqual(limit + 1);

  slow = false;
  const ledger = await quiesce(h);
  expect(peak).toBeLessThanOrEqual(limit);
  h.env.cancel();
  const result = await h.run;
  expect(result.postsPublished).toBe(ledger.length);
  expect(h.last()!.progress.backpressurePauses).toBeGreaterThan(0);
  expectExactlyOnce(h, ledger);
  // No reconnect was needed: the paused reader resumed on the same connection.
  expect(standin.stats().connects).toBe(1);
});

test('a retried attempt resumes from the last heartbeat and asks X for the missed minutes', async () => {
  const standin = await startStandin({ rate: 50 });
  const env = { X_BACKFILL_MINUTES: '2' };

  // Attempt 1: a fresh start has nothing to backfill.
  const first = runActivity(standin, { env, backfillMinutes: 2 });
  await heartbeatWhere(first, (hb) => hb.progress.postsPublished >= 20);
  const firstLedger = await quiesce(first);
  const details = await heartbeatWhere(first, (hb) => hb.progress.lastPostId === firstLedger.at(-1));
  first.env.cancel();
  await first.run;
  expect(standin.stats().backfilled).toBe(0);
  expect(details.lastPostAtMs).toBeDefined();

  // Attempt 2, as after a worker crash: the server hands it attempt 1's last heartbeat details.
  standin.resetLedger();
  const second = runActivity(standin, {
    env,
    backfillMinutes: 2,
    info: { attempt: 2, heartbeatDetails: details },
  });
  await eventually(
    async () => standin.stats().backfilled,
    (n) => n > 0,
    fast,
  );
  // Everything attempt 1 saw (generated within the last minute) is replayed by X.
  const replayed = new Set(standin.ledger().slice(0, standin.stats().backfilled));
  expect(firstLedger.every((id) => replayed.has(id))).toBe(true);
  standin.setRate(0);
  await eventually(
    async () => second.published.size,
    (n) => n === new Set(standin.ledger()).size,
    fast,
  );
  expect(firstLedger.every((id) => second.published.has(id))).toBe(true);
  second.env.cancel();
  const result = await second.run;
  expect(result.postsPublished).toBe(new Set(standin.ledger()).size);
  // The retried attempt reports under its own reporter id, so the supervisor does not mix attempts.
  expect(second.reports.at(-1)!.reporter).toMatch(/\/2$/);
  expect(first.reports.at(-1)!.reporter).toMatch(/\/1$/);
});

test('a retried attempt asks for no backfill when X_BACKFILL_MINUTES is 0', async () => {
  const standin = await startStandin({ rate: 50 });
  const h = runActivity(standin, {
    backfillMinutes: 0,
    info: { attempt: 3, heartbeatDetails: { progress: {}, lastPostAtMs: Date.now() - 90_000 } },
  });
  await heartbeatWhere(h, (hb) => hb.progress.postsPublished >= 10);
  expect(standin.stats().backfilled).toBe(0);
  h.env.cancel();
  await h.run;
});
