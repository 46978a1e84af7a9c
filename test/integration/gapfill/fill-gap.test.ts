/**
 * The gap-fill activity (`fillGap`) in a `MockActivityEnvironment`, searching the real X stand-in
 * over loopback HTTP and publishing to the real Pub/Sub emulator. Each test has its own topic and
 * subscription, and compares what the subscription holds with the stand-in's world ledger: every
 * post the world created in the gap's widened window, each once, as a search-sourced `Post`.
 *
 * The stand-in is started with `searchMinAgeMs: 0` (and the activity told the same) so a gap can
 * be searched as soon as the world has gone past it, instead of 10 s later.
 */
import type { PubSub } from '@google-cloud/pubsub';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { Info } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { startXStandin, type StandinOptions, type XStandin } from '../../../dev/x-api-standin/server';
import { createGapFillActivities } from '../../../src/activities/gap-fill';
import { createPubSub } from '../../../src/adapters/pubsub/client';
import { createBatchSubscriber } from '../../../src/adapters/pubsub/subscriber';
import type { GapSearchCursor } from '../../../src/adapters/x/gap-search';
import { XRulesClient } from '../../../src/adapters/x/rules-client';
import { XSearchClient } from '../../../src/adapters/x/search-client';
import type { AppConfig } from '../../../src/config';
import {
  searchWindow,
  type FillGapInput,
  type GapFillResult,
  type GapReport,
} from '../../../src/domain/gaps';
import type { Post } from '../../../src/domain/post';
import { createLogger } from '../../../src/observability/logger';
import { createMetrics, type Metrics } from '../../../src/observability/metrics';
import { testConfig, uniqueName } from '../../support/config';
import { eventually } from '../../support/eventually';

jest.setTimeout(120_000);

const TOKEN = 'gapfill-test-token';
const logger = createLogger({ level: 'silent' });
const fast = { timeoutMs: 20_000, intervalMs: 20 };

let pubsub: PubSub;
const standins: XStandin[] = [];
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(() => {
  pubsub = createPubSub(testConfig().gcp);
});
afterEach(async () => {
  await Promise.all(standins.splice(0).map((s) => s.close()));
  await Promise.all(cleanups.splice(0).map((c) => c().catch(() => undefined)));
});
afterAll(async () => {
  await pubsub?.close();
});

async function startStandin(opts: StandinOptions = {}): Promise<XStandin> {
  const s = await startXStandin({
    rate: 400,
    seed: 21,
    rules: [{ value: 'tesla', tag: 'tesla' }],
    searchMinAgeMs: 0,
    ...opts,
  });
  standins.push(s);
  return s;
}

/** A configuration with a topic and subscription of its own, created on the emulator. */
async function privateTopic(standin: XStandin): Promise<AppConfig> {
  const n = uniqueName('gapfill');
  const config = testConfig({
    X_API_BASE_URL: standin.url,
    X_BEARER_TOKEN: TOKEN,
    PUBSUB_TOPIC: `${n}_topic`,
    PUBSUB_SUBSCRIPTION: `${n}_sub`,
    HEARTBEAT_INTERVAL_MS: '200',
    PUBLISH_MAX_DELAY_MS: '5',
  });
  const [topic] = await pubsub.createTopic(config.gcp.topic);
  const [sub] = await topic.createSubscription(config.gcp.subscription, { ackDeadlineSeconds: 60 });
  cleanups.push(
    () => sub.delete(),
    () => topic.delete(),
  );
  return config;
}

interface Pulled {
  post: Post;
  attributes: Record<string, string>;
}

/** Everything on the test's subscription now (pulled and acknowledged until a pull comes back empty). */
async function drain(config: AppConfig): Promise<Pulled[]> {
  const subscriber = createBatchSubscriber({ gcp: config.gcp, logger });
  const out: Pulled[] = [];
  try {
    for (;;) {
      const batch = await subscriber.pull({ maxMessages: 1000, waitMs: 1000, drainWaitMs: 300 });
      if (batch.length === 0) return out;
      await subscriber.acknowledge(batch.map((m) => m.ackId));
      for (const m of batch)
        out.push({ post: JSON.parse(m.data.toString()) as Post, attributes: m.attributes });
    }
  } finally {
    await subscriber.close();
  }
}

interface Run {
  env: MockActivityEnvironment;
  heartbeats: (GapSearchCursor | undefined)[];
  result: Promise<GapFillResult>;
}

/** Runs `fillGap` as the stream worker builds it (src/workers/stream-worker.ts), in a fresh mock environment. */
function fill(
  config: AppConfig,
  input: FillGapInput,
  {
    info = {},
    metrics,
    token = TOKEN,
    onHeartbeat,
  }: {
    info?: Partial<Info>;
    metrics?: Metrics;
    /** `null`: no bearer token configured. */
    token?: string | null;
    onHeartbeat?: (c: GapSearchCursor | undefined, env: MockActivityEnvironment) => void;
  } = {},
): Run {
  const activities = createGapFillActivities({
    config,
    logger,
    metrics,
    pubsub,
    createSearchClient: () =>
      token
        ? new XSearchClient({
            baseUrl: config.x.baseUrl,
            bearerToken: token,
            tweetFields: config.x.tweetFields,
            expansions: config.x.expansions,
            userFields: config.x.userFields,
          })
        : undefined,
    rulesClient: token ? new XRulesClient({ baseUrl: config.x.baseUrl, bearerToken: token }) : undefined,
    searchMinAgeMs: 0,
  });
  const name = uniqueName('fill');
  const env = new MockActivityEnvironment(
    {
      activityId: name,
      workflowExecution: { workflowId: `x-ingest-test-gapfill-${name}`, runId: name },
      heartbeatTimeoutMs: 30_000,
      ...info,
    },
    // The failures these tests expect are asserted, not logged.
    { logger: new DefaultLogger('ERROR') },
  );
  const heartbeats: (GapSearchCursor | undefined)[] = [];
  env.on('heartbeat', (c: GapSearchCursor | undefined) => {
    heartbeats.push(structuredClone(c));
    onHeartbeat?.(c, env);
  });
  const result: Promise<GapFillResult> = env.run(activities.fillGap, input);
  // A failure is asserted by the test that awaits `result`; never an unhandled rejection meanwhile.
  result.catch(() => undefined);
  return { env, heartbeats, result };
}

/** Waits until the world has created `n` posts; returns a gap over the middle of them. */
async function worldGap(standin: XStandin, n: number, id = uniqueName('gap')): Promise<GapReport> {
  const created = await eventually(
    async () => standin.world().created,
    (c) => c.length >= n,
    fast,
  );
  return {
    id,
    start: created[Math.floor(n * 0.1)]!.created_at,
    end: created[Math.floor(n * 0.8)]!.created_at,
    reason: 'worker-restart',
  };
}

/** The ids the world created in the gap's widened window, once the world has gone past it. */
async function createdInWindow(standin: XStandin, gap: GapReport, marginMs: number): Promise<string[]> {
  const { startMs, endMs } = searchWindow(gap, marginMs, Number.MAX_SAFE_INTEGER, 0);
  const created = await eventually(
    async () => standin.world().created,
    (c) => Date.parse(c.at(-1)!.created_at) >= endMs,
    fast,
  );
  return created
    .filter((p) => Date.parse(p.created_at) >= startMs && Date.parse(p.created_at) < endMs)
    .map((p) => p.id);
}

const input = (gap: GapReport, rules: FillGapInput['rules'], marginMs = 100): FillGapInput => ({
  supervisorWorkflowId: 'x-ingest-test',
  gap,
  rules,
  marginMs,
  fullArchive: false,
});

/** Every id once, and the same set as `expected`. */
function expectEachOnce(pulled: Pulled[], expected: string[]): void {
  const ids = pulled.map((m) => m.post.id);
  expect(new Set(ids).size).toBe(ids.length);
  expect([...ids].sort()).toEqual([...expected].sort());
}

test('a gap spanning several search pages: exactly the posts created in its widened window, each once, source=search', async () => {
  const standin = await startStandin();
  const config = await privateTopic(standin);
  const gap = await worldGap(standin, 600);
  const expected = await createdInWindow(standin, gap, 100);
  expect(expected.length).toBeGreaterThan(300); // more than three pages of 100
  const ruleId = standin.rules()[0]!.id;
  const metrics = createMetrics();

  // The rule is given without its id: the activity looks it up in X's active rules.
  const run = fill(config, input(gap, [{ value: 'tesla', tag: 'tesla' }]), { metrics });
  const result = await run.result;

  expect(result).toEqual({
    gapId: gap.id,
    state: 'filled',
    postsFound: expected.length,
    postsPublished: expected.length,
    postsRead: expected.length,
    unsearchable: [],
    endpoint: 'recent',
  });
  const pulled = await drain(config);
  expectEachOnce(pulled, expected);
  for (const { post, attributes } of pulled) {
    expect(post.source).toBe('search');
    expect(post.matching_rules).toEqual([{ id: ruleId, tag: 'tesla' }]);
    expect(attributes).toMatchObject({ post_id: post.id, malformed: 'false', rule_tags: 'tesla' });
  }
  // Nothing was delivered on a stream: only search read these posts, and each once.
  expect(standin.world().delivered).toEqual([]);
  expect(standin.stats().searchPostsReturned).toBe(expected.length);
  expect(standin.stats().searchRequests).toBe(Math.ceil(expected.length / 100));

  // The cursor was heartbeated after every page; the last one has searched the only rule.
  const cursors = run.heartbeats.filter((c): c is GapSearchCursor => c !== undefined);
  expect(cursors.length).toBeGreaterThanOrEqual(Math.ceil(expected.length / 100));
  expect(cursors.at(-1)).toMatchObject({ ruleIndex: 1, postsPublished: expected.length });
  expect(cursors.at(-1)!.nextToken).toBeUndefined();

  expect((await metrics.gapSearchPosts.get()).values).toEqual([
    expect.objectContaining({ labels: { endpoint: 'recent' }, value: expected.length }),
  ]);
  expect((await metrics.gapsFilled.get()).values).toEqual([
    expect.objectContaining({ labels: { state: 'filled' }, value: 1 }),
  ]);
});

test('a rule only the stream supports is reported and the gap is unrecoverable; the other rules still fill', async () => {
  const standin = await startStandin({
    rate: 200,
    rules: [
      { value: 'tesla sample:10', tag: 'sampled' },
      { value: 'tesla', tag: 'tesla' },
    ],
  });
  const config = await privateTopic(standin);
  const gap = await worldGap(standin, 200);
  const expected = await createdInWindow(standin, gap, 100);
  const metrics = createMetrics();

  const result = await fill(
    config,
    input(gap, [
      { value: 'tesla sample:10', tag: 'sampled' },
      { value: 'tesla', tag: 'tesla' },
    ]),
    { metrics },
  ).result;

  expect(result).toMatchObject({
    gapId: gap.id,
    state: 'unrecoverable',
    unsearchable: [{ rule: 'tesla sample:10', reason: expect.stringMatching(/sample/) }],
    postsFound: expected.length,
    postsPublished: expected.length,
    endpoint: 'recent',
  });
  expect(result.detail).toMatch(/1 rule\(s\) cannot be searched over/);
  const pulled = await drain(config);
  expectEachOnce(pulled, expected);
  expect(pulled.every((m) => m.post.matching_rules[0]!.tag === 'tesla')).toBe(true);
  expect((await metrics.gapsFilled.get()).values).toEqual([
    expect.objectContaining({ labels: { state: 'unrecoverable' }, value: 1 }),
  ]);
});

test('a gap older than 7 days is unrecoverable with its interval in detail, and X is not asked', async () => {
  const standin = await startStandin({ rate: 0 });
  const config = await privateTopic(standin);
  const old = Date.now() - 8 * 24 * 3600_000;
  const gap: GapReport = {
    id: uniqueName('old'),
    start: new Date(old).toISOString(),
    end: new Date(old + 60_000).toISOString(),
    reason: 'paused',
  };

  const result = await fill(config, input(gap, [{ value: 'tesla', tag: 'tesla' }], 30_000)).result;

  expect(result).toMatchObject({ gapId: gap.id, state: 'unrecoverable', postsFound: 0, postsPublished: 0 });
  expect(result.detail).toContain(new Date(old - 30_000).toISOString());
  expect(result.detail).toMatch(/older than recent search reaches \(7 days\).*X_FULL_ARCHIVE_SEARCH/);
  expect(standin.stats().searchRequests).toBe(0);
  expect(standin.world().searched).toEqual([]);
  expect(await drain(config)).toEqual([]);
});

test('a 429 is waited out and a page that fails mid-pagination is retried: still every post once', async () => {
  const standin = await startStandin();
  const config = await privateTopic(standin);
  const gap = await worldGap(standin, 400);
  const expected = await createdInWindow(standin, gap, 100);
  expect(expected.length).toBeGreaterThan(200);
  standin.setFaults({ searchRateLimited: 1, rateLimitResetSeconds: 1, searchFailPage: 1 });

  const result = await fill(config, input(gap, [{ value: 'tesla', tag: 'tesla' }])).result;

  expect(standin.stats().rejected).toEqual({ 429: 1, 503: 1 });
  expect(result).toMatchObject({
    state: 'filled',
    postsFound: expected.length,
    postsPublished: expected.length,
  });
  expectEachOnce(await drain(config), expected);
});

test('a cancelled attempt stops after its page; the retry resumes from the heartbeated cursor', async () => {
  const standin = await startStandin();
  const config = await privateTopic(standin);
  const gap = await worldGap(standin, 500);
  const expected = await createdInWindow(standin, gap, 100);
  const rules = [{ id: standin.rules()[0]!.id, value: 'tesla', tag: 'tesla' }];

  // Attempt 1 is cancelled as soon as it has heartbeated the cursor after its first page.
  const first = fill(config, input(gap, rules), {
    onHeartbeat: (c, env) => {
      if (c?.nextToken) env.cancel();
    },
  });
  await expect(first.result).rejects.toBeInstanceOf(CancelledFailure);
  const cursor = first.heartbeats.at(-1)!;
  expect(cursor).toMatchObject({ ruleIndex: 0, postsFound: 100, postsPublished: 100 });
  const firstPage = await drain(config);
  expect(firstPage).toHaveLength(100);
  expect(standin.stats().searchRequests).toBe(1);

  // Attempt 2 reads the cursor back and asks X only for the pages after it.
  const second = fill(config, input(gap, rules), { info: { attempt: 2, heartbeatDetails: cursor } });
  const result = await second.result;
  expect(result).toMatchObject({
    state: 'filled',
    postsFound: expected.length,
    postsPublished: expected.length,
  });
  expectEachOnce([...firstPage, ...(await drain(config))], expected);
  expect(standin.stats().searchPostsReturned).toBe(expected.length);
});

test('without a token, and when X says the usage cap is reached, the fill fails without retry', async () => {
  const standin = await startStandin({ rate: 50 });
  const config = await privateTopic(standin);
  const gap = await worldGap(standin, 50);
  const rules = [{ id: standin.rules()[0]!.id, value: 'tesla', tag: 'tesla' }];

  const noToken = await fill(config, input(gap, rules), { token: null }).result.catch((e: unknown) => e);
  expect(noToken).toBeInstanceOf(ApplicationFailure);
  expect(noToken).toMatchObject({ type: 'XAuthError', nonRetryable: true });
  expect((noToken as Error).message).toMatch(/X_BEARER_TOKEN or X_BEARER_TOKEN_FILE/);

  standin.setFaults({ usageCapped: true });
  const capped = await fill(config, input(gap, rules)).result.catch((e: unknown) => e);
  expect(capped).toBeInstanceOf(ApplicationFailure);
  expect(capped).toMatchObject({ type: 'XUsageCapped', nonRetryable: true });
  expect((capped as Error).message).not.toContain(TOKEN);
  expect(standin.stats().searchRequests).toBe(1);
  expect(await drain(config)).toEqual([]);
});
