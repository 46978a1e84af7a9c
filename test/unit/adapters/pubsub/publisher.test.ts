/**
 * PostPublisher with an injected `publishFn` (no Pub/Sub): a post counts only once acknowledged,
 * failed publishes are retried until they succeed, outstanding messages stay within the limits while
 * `publish()` waits (back-pressure), `flush()` waits for every acknowledgement, `close()` refuses more.
 */
import {
  PostPublisher,
  PublisherClosedError,
  encodeMalformed,
  encodePost,
  type PublisherOptions,
} from '../../../../src/adapters/pubsub/publisher';
import { laneOf } from '../../../../src/domain/lanes';
import { POST_SCHEMA_VERSION, type Post, type PostAttributes } from '../../../../src/domain/post';
import { createLogger } from '../../../../src/observability/logger';

const logger = createLogger({ level: 'silent' });

type PublishFn = NonNullable<PublisherOptions['publishFn']>;

function attrs(id: string): PostAttributes {
  return { post_id: id, lane: '0', rule_tags: 't', schema_version: '1', malformed: 'false' };
}

function data(id: string): Buffer {
  return Buffer.from(JSON.stringify({ id }));
}

function publisher(publishFn: PublishFn, overrides: Partial<PublisherOptions> = {}) {
  const acked: { id: string; messageId: string; context: string | undefined }[] = [];
  let backpressure = 0;
  const errors: Error[] = [];
  const p = new PostPublisher(undefined, {
    topic: 'unused',
    maxMessages: 100,
    maxBytes: 1_000_000,
    maxDelayMs: 10,
    maxOutstandingMessages: 1000,
    maxOutstandingBytes: 10_000_000,
    logger,
    retryBaseMs: 2,
    retryMaxMs: 10,
    publishFn,
    onAcked: (a, messageId, context) => acked.push({ id: a.post_id, messageId, context }),
    onBackpressure: () => {
      backpressure += 1;
    },
    onPublishError: (err) => errors.push(err),
    ...overrides,
  });
  return { p, acked, errors, backpressure: () => backpressure };
}

/** A publishFn whose calls stay pending until released one by one (FIFO) or all at once. */
function gatedPublish() {
  const pending: { id: string; resolve: (messageId: string) => void; reject: (e: Error) => void }[] = [];
  const fn: PublishFn = (_d, a) =>
    new Promise<string>((resolve, reject) => pending.push({ id: a.post_id!, resolve, reject }));
  return {
    fn,
    pending,
    releaseOne(): void {
      const next = pending.shift();
      if (!next) throw new Error('nothing pending');
      next.resolve(`m-${next.id}`);
    },
    releaseAll(): void {
      for (const c of pending.splice(0)) c.resolve(`m-${c.id}`);
    },
  };
}

/** Lets every already-queued promise callback and I/O turn run. */
const settle = () => new Promise<void>((r) => setImmediate(r));

/** Tracks whether a promise has settled, without awaiting it. */
function track<T>(p: Promise<T>): { done: () => boolean; promise: Promise<T> } {
  let done = false;
  const promise = p.finally(() => {
    done = true;
  });
  return { done: () => done, promise };
}

test('a post is counted only when its publish is acknowledged, with the id and context given', async () => {
  const gate = gatedPublish();
  const { p, acked } = publisher(gate.fn);
  await p.publish(data('1'), attrs('1'), '2026-01-01T00:00:10.000Z');
  await p.publish(data('2'), attrs('2'), '2026-01-01T00:01:10.000Z');
  await p.publish(data('3'), attrs('3'));
  await settle();
  expect(gate.pending).toHaveLength(3);
  expect(acked).toEqual([]);
  expect(p.outstanding.messages).toBe(3);

  gate.releaseOne();
  gate.releaseOne();
  await settle();
  expect(acked).toEqual([
    { id: '1', messageId: 'm-1', context: '2026-01-01T00:00:10.000Z' },
    { id: '2', messageId: 'm-2', context: '2026-01-01T00:01:10.000Z' },
  ]);
  expect(p.outstanding).toEqual({ messages: 1, bytes: data('3').length });

  gate.releaseAll();
  await p.flush();
  expect(acked.map((a) => a.id)).toEqual(['1', '2', '3']);
  expect(p.outstanding).toEqual({ messages: 0, bytes: 0 });
});

test('a failing publish is retried until it succeeds; nothing is dropped or acknowledged twice', async () => {
  let calls = 0;
  const failFirst = 7;
  const attemptsById = new Map<string, number>();
  const fn: PublishFn = async (_d, a) => {
    calls += 1;
    attemptsById.set(a.post_id!, (attemptsById.get(a.post_id!) ?? 0) + 1);
    if (calls <= failFirst) throw new Error(`unavailable (call ${calls})`);
    return `m-${a.post_id}`;
  };
  const { p, acked, errors } = publisher(fn);
  const ids = Array.from({ length: 20 }, (_, i) => String(i));
  for (const id of ids) await p.publish(data(id), attrs(id));
  await p.flush();

  expect(errors).toHaveLength(failFirst);
  expect(calls).toBe(ids.length + failFirst);
  expect(acked.map((a) => a.id).sort()).toEqual([...ids].sort());
  expect(new Set(acked.map((a) => a.id)).size).toBe(ids.length);
  // Some messages needed more than one attempt; every message was acknowledged exactly once.
  expect([...attemptsById.values()].some((n) => n > 1)).toBe(true);
  expect(p.outstanding.messages).toBe(0);
});

test('a message that keeps failing is retried with back-off until Pub/Sub recovers', async () => {
  let healthy = false;
  let calls = 0;
  const fn: PublishFn = async (_d, a) => {
    calls += 1;
    if (!healthy) throw new Error('deadline exceeded');
    return `m-${a.post_id}`;
  };
  const { p, acked } = publisher(fn);
  await p.publish(data('x'), attrs('x'));
  const flushed = track(p.flush());
  while (calls < 5) await settle();
  expect(flushed.done()).toBe(false);
  expect(acked).toEqual([]);
  healthy = true;
  await flushed.promise;
  expect(acked.map((a) => a.id)).toEqual(['x']);
});

test('back-pressure: publish() waits at maxOutstandingMessages and resumes when a publish is acknowledged', async () => {
  const gate = gatedPublish();
  const { p, acked, backpressure } = publisher(gate.fn, { maxOutstandingMessages: 3 });
  for (const id of ['1', '2', '3']) await p.publish(data(id), attrs(id));
  expect(backpressure()).toBe(0);

  const fourth = track(p.publish(data('4'), attrs('4')));
  await settle();
  expect(fourth.done()).toBe(false);
  expect(backpressure()).toBe(1);
  expect(p.outstanding.messages).toBe(3);
  expect(gate.pending.map((c) => c.id)).toEqual(['1', '2', '3']);

  gate.releaseOne();
  await fourth.promise;
  expect(p.outstanding.messages).toBe(3);
  expect(acked.map((a) => a.id)).toEqual(['1']);

  gate.releaseAll();
  await settle();
  gate.releaseAll();
  await p.flush();
  expect(acked.map((a) => a.id)).toEqual(['1', '2', '3', '4']);
});

test('back-pressure: maxOutstandingBytes also bounds what is held', async () => {
  const gate = gatedPublish();
  const size = data('a').length;
  const { p, backpressure } = publisher(gate.fn, { maxOutstandingBytes: size * 2 });
  await p.publish(data('a'), attrs('a'));
  await p.publish(data('b'), attrs('b'));
  const third = track(p.publish(data('c'), attrs('c')));
  await settle();
  expect(third.done()).toBe(false);
  expect(backpressure()).toBe(1);
  expect(p.outstanding.bytes).toBe(size * 2);
  gate.releaseOne();
  await third.promise;
  expect(p.peakOutstandingBytes).toBe(size * 2);
  gate.releaseAll();
  await p.flush();
});

test('back-pressure under load: outstanding never exceeds the limit and every message is acknowledged', async () => {
  const limit = 5;
  let inFlight = 0;
  let peakInFlight = 0;
  const fn: PublishFn = async (_d, a) => {
    inFlight += 1;
    peakInFlight = Math.max(peakInFlight, inFlight);
    await new Promise((r) => setTimeout(r, 1 + (Number(a.post_id) % 3)));
    inFlight -= 1;
    return `m-${a.post_id}`;
  };
  const { p, acked, backpressure } = publisher(fn, { maxOutstandingMessages: limit });
  let peakOutstanding = 0;
  const ids = Array.from({ length: 200 }, (_, i) => String(i));
  for (const id of ids) {
    await p.publish(data(id), attrs(id));
    peakOutstanding = Math.max(peakOutstanding, p.outstanding.messages);
  }
  await p.flush();
  expect(peakOutstanding).toBe(limit);
  expect(peakInFlight).toBeLessThanOrEqual(limit);
  expect(backpressure()).toBeGreaterThan(0);
  expect(acked.map((a) => a.id).sort()).toEqual([...ids].sort());
});

test('flush waits until every accepted message is acknowledged', async () => {
  const gate = gatedPublish();
  const { p, acked } = publisher(gate.fn);
  for (const id of ['1', '2', '3']) await p.publish(data(id), attrs(id));
  const flushed = track(p.flush());
  gate.releaseOne();
  gate.releaseOne();
  await settle();
  expect(flushed.done()).toBe(false);
  gate.releaseOne();
  await flushed.promise;
  expect(acked).toHaveLength(3);
  // Flushing an idle publisher returns at once.
  await p.flush();
});

test('close flushes first, then refuses further publishes', async () => {
  const gate = gatedPublish();
  const { p, acked } = publisher(gate.fn);
  await p.publish(data('1'), attrs('1'));
  const closed = track(p.close(5_000));
  await settle();
  expect(closed.done()).toBe(false);
  gate.releaseAll();
  await expect(closed.promise).resolves.toEqual({ unacked: 0 });
  expect(acked.map((a) => a.id)).toEqual(['1']);
  await expect(p.publish(data('2'), attrs('2'))).rejects.toBeInstanceOf(PublisherClosedError);
  await settle();
  expect(gate.pending).toHaveLength(0);
});

test('close gives up after its timeout, reports what is unacknowledged and releases a blocked publish', async () => {
  const gate = gatedPublish();
  const { p } = publisher(gate.fn, { maxOutstandingMessages: 2 });
  await p.publish(data('1'), attrs('1'));
  await p.publish(data('2'), attrs('2'));
  const blocked = p.publish(data('3'), attrs('3'));
  const blockedResult = expect(blocked).rejects.toBeInstanceOf(PublisherClosedError);
  await expect(p.close(20)).resolves.toEqual({ unacked: 2 });
  await blockedResult;
  expect(gate.pending.map((c) => c.id)).toEqual(['1', '2']);
  gate.releaseAll();
});

test('without a publishFn the publisher needs a Pub/Sub client', () => {
  expect(
    () =>
      new PostPublisher(undefined, {
        topic: 't',
        maxMessages: 1,
        maxBytes: 1,
        maxDelayMs: 1,
        maxOutstandingMessages: 1,
        maxOutstandingBytes: 1,
        logger,
      }),
  ).toThrow(/PubSub client or a publishFn/);
});

describe('wire format', () => {
  const post = {
    id: '42',
    received_at: '2026-11-25T18:04:05.000Z',
    matching_rules: [
      { id: 'r1', tag: 'space' },
      { id: 'r2', tag: 'space' },
      { id: 'r3', tag: null },
      { id: 'r4', tag: 'tesla' },
    ],
  } as unknown as Post;

  test('a post is its JSON with its id, its deduplicated rule tags and the schema version', () => {
    const m = encodePost(post);
    expect(JSON.parse(m.data.toString())).toEqual(post);
    expect(m.attributes).toEqual({
      post_id: '42',
      lane: '0',
      rule_tags: 'space,tesla',
      schema_version: String(POST_SCHEMA_VERSION),
      malformed: 'false',
    });
  });

  test("with several load lanes the lane attribute is the id's lane", () => {
    expect(encodePost(post, 4).attributes.lane).toBe(String(laneOf('42', 4)));
    const lanes = new Set(
      Array.from({ length: 200 }, (_, i) => encodePost({ ...post, id: String(1e18 + i * 7919) } as Post, 4)),
    );
    expect(new Set([...lanes].map((m) => m.attributes.lane))).toEqual(new Set(['0', '1', '2', '3']));
  });

  test('a malformed line has no post id and carries the reason, cut to 1,024 characters', () => {
    const msg = {
      kind: 'malformed',
      reason: 'x'.repeat(2000),
      raw: '{',
      received_at: post.received_at,
    } as const;
    const m = encodeMalformed(msg);
    expect(JSON.parse(m.data.toString())).toEqual(msg);
    expect(m.attributes).toEqual({
      post_id: '',
      lane: '0',
      rule_tags: '',
      schema_version: String(POST_SCHEMA_VERSION),
      malformed: 'true',
      error: 'x'.repeat(1024),
    });
  });

  test('publishPost and publishMalformed hand the encoded message over with received_at as context', async () => {
    const sent: { data: string; attributes: Record<string, string> }[] = [];
    const { p, acked } = publisher(async (d, a) => {
      sent.push({ data: d.toString(), attributes: a });
      return `m${sent.length}`;
    });
    await p.publishPost(post);
    await p.publishMalformed({ kind: 'malformed', reason: 'bad', raw: '{', received_at: 'later' });
    await p.flush();
    expect(sent.map((x) => x.attributes.malformed)).toEqual(['false', 'true']);
    expect(sent[0]!.data).toBe(encodePost(post).data.toString());
    expect(acked.map((a) => a.context)).toEqual([post.received_at, 'later']);
  });
});
