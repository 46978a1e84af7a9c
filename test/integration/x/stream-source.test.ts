/**
 * The stream source against the real stand-in over loopback HTTP, one test per fault: the source
 * recovers, and the posts it emitted are exactly the posts the stand-in's ledger says it delivered.
 * Timings are shortened (stall 300 ms, keep-alive 100 ms, back-off scaled by 1/1000 through the
 * injected sleep, which also records the policy's delays).
 */
import http from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import {
  startXStandin,
  type StandinFaults,
  type StandinOptions,
  type XStandin,
} from '../../../dev/x-api-standin/server';
import { XAuthError, XUsageCapError } from '../../../src/adapters/x/errors';
import {
  XStreamSource,
  type StreamMessage,
  type XStreamSourceOptions,
} from '../../../src/adapters/x/stream-source';
import type { MalformedMessage } from '../../../src/domain/post';
import { createLogger } from '../../../src/observability/logger';
import { eventually } from '../../support/eventually';

const TOKEN = 'test-bearer-token-value';
const logger = createLogger({ level: 'silent' });
const fast = { timeoutMs: 15_000, intervalMs: 10 };

interface Harness {
  standin: XStandin;
  source: XStreamSource;
  ids: string[];
  texts: string[];
  malformed: MalformedMessage[];
  delays: number[];
  run: Promise<void>;
  stop(): Promise<void>;
}

const open: Harness[] = [];

async function harness(
  opts: {
    standin?: StandinOptions;
    source?: Partial<XStreamSourceOptions>;
    onMessage?: (m: StreamMessage) => Promise<void> | void;
    backfillMinutes?: number;
  } = {},
): Promise<Harness> {
  const standin = await startXStandin({
    rate: 300,
    keepAliveMs: 100,
    seed: 11,
    rules: [
      { value: 'tesla', tag: 'tesla' },
      { value: 'ev OR 전기차', tag: 'ev' },
    ],
    ...opts.standin,
  });
  const source = new XStreamSource({
    baseUrl: standin.url,
    bearerToken: TOKEN,
    tweetFields: ['created_at', 'author_id', 'note_tweet'],
    expansions: ['author_id'],
    userFields: ['username'],
    stallTimeoutMs: 300,
    logger,
    ...opts.source,
  });
  const ids: string[] = [];
  const texts: string[] = [];
  const malformed: MalformedMessage[] = [];
  const delays: number[] = [];
  const ac = new AbortController();
  const run = source.run({
    signal: ac.signal,
    backfillMinutes: opts.backfillMinutes,
    onMessage: (m) => {
      if (m.kind === 'post') {
        ids.push(m.post.id);
        texts.push(m.post.text);
      } else malformed.push(m.message);
      return opts.onMessage?.(m);
    },
    sleep: async (ms, signal) => {
      delays.push(ms);
      await delay(Math.min(ms / 1000, 100), undefined, { signal }).catch(() => undefined);
    },
  });
  run.catch(() => undefined); // observed by the tests that expect a rejection
  const h: Harness = {
    standin,
    source,
    ids,
    texts,
    malformed,
    delays,
    run,
    stop: async () => {
      ac.abort();
      await run.catch(() => undefined);
      await standin.close();
    },
  };
  open.push(h);
  return h;
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((h) => h.stop()));
});

/** Stops generation and waits until everything the stand-in delivered has been emitted. */
async function quiesce(h: Harness): Promise<void> {
  h.standin.setRate(0);
  // The last tick's write may still be going out (split writes go piece by piece, and a line enters
  // the ledger when its last piece does): wait until the ledger has stopped growing and every line
  // in it was emitted. (A fixed 50 ms wait missed a line on a busy machine.)
  let previous = -1;
  await eventually(
    async () => ({ ids: h.ids.length, ledger: h.standin.ledger().length }),
    (v) => {
      const settled = v.ledger > 0 && v.ledger === previous && v.ids >= v.ledger;
      previous = v.ledger;
      return settled;
    },
    { timeoutMs: fast.timeoutMs, intervalMs: 100 },
  );
}

function expectEmittedEqualsLedger(h: Harness): void {
  const ledger = h.standin.ledger();
  expect(h.ids).toEqual(ledger); // same posts, same order, same multiplicity
  expect(new Set(h.ids)).toEqual(new Set(ledger));
}

async function postsAtLeast(h: Harness, n: number): Promise<void> {
  await eventually(
    async () => h.ids.length,
    (v) => v >= n,
    fast,
  );
}

async function recoverFrom(
  faults: StandinFaults,
  reason: string,
  extra: { source?: Partial<XStreamSourceOptions>; standin?: StandinOptions; backfillMinutes?: number } = {},
): Promise<Harness> {
  const h = await harness(extra);
  await postsAtLeast(h, 20);
  h.standin.setFaults(faults);
  await eventually(
    async () => h.source.stats().reconnectsByReason[reason] ?? 0,
    (v) => v >= 1,
    fast,
  );
  const after = h.ids.length;
  await postsAtLeast(h, after + 20); // recovered: posts flow again
  await quiesce(h);
  return h;
}

describe('XStreamSource against the stand-in', () => {
  it('streams posts with the requested fields and counts keep-alives', async () => {
    const h = await harness();
    await postsAtLeast(h, 50);
    await eventually(
      async () => h.source.stats().keepAlives,
      (v) => v >= 1,
      fast,
    );
    await quiesce(h);
    expectEmittedEqualsLedger(h);
    const s = h.source.stats();
    expect(s).toMatchObject({ connected: true, connects: 1, reconnects: 0, malformed: 0 });
    expect(s.linesReceived).toBe(h.ids.length);
  });

  it('abrupt drop (socket destroyed mid-line): reconnects at once; the cut line is emitted as malformed', async () => {
    const h = await recoverFrom({ dropAfterPosts: 5 }, 'network');
    expectEmittedEqualsLedger(h);
    expect(h.delays[0]).toBe(0); // one immediate retry after an established connection drops
    expect(h.malformed.map((m) => m.reason)).toEqual([expect.stringMatching(/^truncated/)]);
  });

  it('graceful end: reconnects', async () => {
    const h = await recoverFrom({ endAfterPosts: 5 }, 'closed');
    expectEmittedEqualsLedger(h);
    expect(h.malformed).toEqual([]);
  });

  it('stall (no bytes, no keep-alives): detected after the stall timeout, then reconnects', async () => {
    const h = await recoverFrom({ stallAfterPosts: 5 }, 'stall');
    expectEmittedEqualsLedger(h);
    expect(h.source.stats().lastError).toMatch(/stall/);
  });

  it('operational-disconnect message: logged with its type, then reconnects', async () => {
    const h = await recoverFrom(
      { disconnectAfterPosts: 5, disconnectType: 'ForceDisconnect' },
      'operational-disconnect',
    );
    expectEmittedEqualsLedger(h);
    expect(h.source.stats().lastDisconnectType).toBe('ForceDisconnect');
    expect(h.malformed).toEqual([]);
  });

  it('429 with x-rate-limit headers on reconnect: backs off 60 s doubling', async () => {
    const h = await recoverFrom({ rateLimitConnects: 2, endAfterPosts: 3 }, 'rate-limit');
    expectEmittedEqualsLedger(h);
    expect(h.delays.slice(0, 3)).toEqual([0, 60_000, 120_000]);
    expect(h.source.stats().reconnectsByReason).toMatchObject({ closed: 1, 'rate-limit': 2 });
  });

  it('503 on reconnect: backs off 5 s doubling', async () => {
    const h = await recoverFrom({ unavailableConnects: 3, endAfterPosts: 3 }, 'http');
    expectEmittedEqualsLedger(h);
    expect(h.delays.slice(0, 4)).toEqual([0, 5_000, 10_000, 20_000]);
  });

  it('a malformed line is emitted as malformed (not dropped) and the stream goes on', async () => {
    const h = await harness();
    await postsAtLeast(h, 10);
    h.standin.setFaults({ malformedAfterPosts: 3 });
    await eventually(
      async () => h.malformed.length,
      (v) => v >= 1,
      fast,
    );
    await postsAtLeast(h, h.ids.length + 10);
    await quiesce(h);
    expectEmittedEqualsLedger(h);
    expect(h.standin.malformedLines()).toBe(1);
    expect(h.malformed).toHaveLength(1);
    expect(h.malformed[0]!.reason).toMatch(/^invalid JSON/);
    expect(h.source.stats().reconnects).toBe(0);
  });

  it('an in-stream error message (not a disconnect) is emitted as malformed with its title; no reconnect', async () => {
    const h = await harness();
    await postsAtLeast(h, 10);
    h.standin.setFaults({ errorMessageAfterPosts: 3 });
    await eventually(
      async () => h.malformed.length,
      (v) => v >= 1,
      fast,
    );
    await quiesce(h);
    expectEmittedEqualsLedger(h);
    expect(h.malformed).toHaveLength(1);
    expect(h.malformed[0]!.reason).toBe('X stream error message: ConnectionException');
    expect(JSON.parse(h.malformed[0]!.raw)).toMatchObject({ errors: [{ title: 'ConnectionException' }] });
    expect(h.source.stats().reconnects).toBe(0);
  });

  it('writes split at random byte positions (inside CRLF and UTF-8 characters): byte-identical posts', async () => {
    const h = await harness({ standin: { faults: { splitWrites: true } } });
    await postsAtLeast(h, 150);
    await quiesce(h);
    expectEmittedEqualsLedger(h);
    expect(h.malformed).toEqual([]);
    expect(h.texts.some((t) => /[^\x20-\x7e]/.test(t))).toBe(true);
    expect(h.texts.filter((t) => t.includes('\uFFFD'))).toEqual([]);
  });

  it('duplicate delivery: every delivered copy is emitted (downstream de-duplicates)', async () => {
    const h = await harness({ standin: { faults: { duplicateEvery: 4 } } });
    await postsAtLeast(h, 60);
    await quiesce(h);
    expectEmittedEqualsLedger(h);
    expect(new Set(h.ids).size).toBeLessThan(h.ids.length);
  });

  it('backfill: reconnects with backfill_minutes and receives the post cut by the drop', async () => {
    const h = await harness({ source: { backfillMinutes: 2 } });
    await postsAtLeast(h, 20);
    h.standin.setFaults({ dropAfterPosts: 5 });
    await eventually(
      async () => h.source.stats().reconnects,
      (v) => v >= 1,
      fast,
    );
    await postsAtLeast(h, h.ids.length + 20);
    await quiesce(h);
    expectEmittedEqualsLedger(h);
    expect(h.standin.stats().backfilled).toBeGreaterThan(0);
    // the truncated post came back in full with the backfill
    const truncatedId = /"id":"(\d+)"/.exec(h.malformed[0]!.raw)?.[1];
    expect(truncatedId).toBeDefined();
    expect(h.ids).toContain(truncatedId);
    expect(new Set(h.ids).size).toBeLessThan(h.ids.length); // backfill re-delivers
  });

  it('401: stops with XAuthError naming X_BEARER_TOKEN, never its value', async () => {
    const h = await harness({ standin: { faults: { unauthorizedConnects: 1 } } });
    const err = await h.run.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(XAuthError);
    expect((err as Error).message).toMatch(/X_BEARER_TOKEN/);
    expect((err as Error).message).not.toContain(TOKEN);
    expect(JSON.stringify(err)).not.toContain(TOKEN);
  });

  it("X's usage cap on connect: stops with XUsageCapError after one try, not a retry every minute", async () => {
    const h = await harness({ standin: { faults: { usageCapped: true } } });
    const err = await h.run.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(XUsageCapError);
    expect((err as Error).message).toMatch(/Monthly product cap/);
    expect(h.delays).toEqual([]);
    expect(h.standin.stats().rejected).toEqual({ 429: 1 });
  });

  it('a second connection gets 429 TooManyConnections, like X', async () => {
    const h = await harness();
    await postsAtLeast(h, 5);
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      http
        .get(
          `${h.standin.url}/2/tweets/search/stream`,
          { headers: { authorization: 'Bearer other' } },
          (r) => {
            let body = '';
            r.on('data', (d: Buffer) => (body += d.toString()));
            r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
          },
        )
        .on('error', reject);
    });
    expect(res.status).toBe(429);
    expect(JSON.parse(res.body)).toMatchObject({ connection_issue: 'TooManyConnections' });
    expect(h.source.stats().reconnects).toBe(0);
  });

  it('back-pressure: one onMessage at a time, the socket paused while it is pending; nothing lost', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const h = await harness({
      standin: { rate: 500 },
      onMessage: async () => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await delay(1);
        inFlight--;
      },
    });
    await postsAtLeast(h, 200);
    await quiesce(h);
    expectEmittedEqualsLedger(h);
    expect(maxInFlight).toBe(1);
  });

  it('abort closes the connection promptly and resolves', async () => {
    const h = await harness();
    await postsAtLeast(h, 5);
    open.splice(open.indexOf(h), 1);
    const t = Date.now();
    await h.stop();
    expect(Date.now() - t).toBeLessThan(1000);
    expect(h.source.stats().connected).toBe(false);
  });

  it('abort while posts flow (a pause): every post the stand-in wrote before the close is handed over', async () => {
    // A slow consumer keeps lines waiting in the reader and bytes waiting in the socket. The
    // generator stops once a few hundred lines are written: otherwise the backlog at the abort is
    // whatever the loopback socket buffers absorbed meanwhile (2,000 lines, 3 MB, on a busy 2-CPU
    // machine), more than a 2 ms consumer can take in the 2 s drain however correct the close is.
    const h = await harness({ standin: { rate: 3000 }, onMessage: () => delay(2) });
    await eventually(
      async () => h.standin.ledger().length,
      (n) => n >= 300,
      fast,
    );
    h.standin.setRate(0);
    await postsAtLeast(h, 100);
    expect(h.standin.ledger().length).toBeGreaterThan(h.ids.length); // lines still waiting
    open.splice(open.indexOf(h), 1);
    const t = Date.now();
    await h.stop();
    expect(Date.now() - t).toBeLessThan(3000); // bounded by the default close drain (2 s)
    expect(h.standin.stats().activeConnection).toBe(false);
    expect(h.source.stats().linesDroppedAtClose).toBe(0);
    expect(h.malformed).toEqual([]);
    expectEmittedEqualsLedger(h);
  });

  it('abort with a consumer that never finishes: resolves at the close deadline and counts what it could not hand over', async () => {
    let handed = 0;
    const h = await harness({
      standin: { rate: 2000 },
      source: { closeDrainMs: 200 },
      onMessage: () => (++handed >= 20 ? new Promise<void>(() => {}) : undefined),
    });
    await postsAtLeast(h, 20); // the consumer is now stuck, with X still sending
    await delay(100);
    open.splice(open.indexOf(h), 1);
    await h.stop();
    const s = h.source.stats();
    expect(s.connected).toBe(false);
    // Every line received is either handed over or counted as dropped at the close.
    expect(s.linesDroppedAtClose).toBe(s.linesReceived - h.ids.length);
    expect(s.linesDroppedAtClose).toBeGreaterThan(0);
  });

  it('the stand-in is steerable over HTTP alone: rate, faults, stats and ledger on /_control', async () => {
    const h = await harness({ standin: { rate: 0 } });
    const control = async (method: 'GET' | 'POST', path: string, body?: unknown) => {
      const res = await fetch(`${h.standin.url}/_control/${path}`, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    expect((await control('POST', 'rate', { rate: 'fast' })).status).toBe(400);
    expect((await control('POST', 'rate', { rate: 300 })).body).toEqual({ rate: 300 });
    await postsAtLeast(h, 20);
    expect((await control('POST', 'faults', { malformedAfterPosts: 2 })).status).toBe(200);
    await eventually(
      async () => h.malformed.length,
      (v) => v >= 1,
      fast,
    );
    await control('POST', 'rate', { rate: 0 });
    await eventually(
      async () => (await control('GET', 'ledger')).body.count as number,
      (n) => n > 0 && n === h.ids.length,
      fast,
    );
    const ledger = (await control('GET', 'ledger')).body;
    expect(ledger.posts).toEqual(h.ids);
    expect(ledger).toMatchObject({ count: h.ids.length, unique: new Set(h.ids).size, malformedLines: 1 });
    expect((await control('GET', 'stats')).body).toMatchObject({ activeConnection: true, connects: 1 });
    expect((await control('POST', 'ledger/reset')).body).toEqual({ ok: true });
    expect((await control('GET', 'ledger')).body.count).toBe(0);
    expect((await control('GET', 'nope')).status).toBe(404);
  });

  it('run() refuses a second concurrent run (X allows one connection)', async () => {
    const h = await harness();
    await postsAtLeast(h, 1);
    await expect(
      h.source.run({ signal: new AbortController().signal, onMessage: () => undefined }),
    ).rejects.toThrow(/already running/);
  });
});
