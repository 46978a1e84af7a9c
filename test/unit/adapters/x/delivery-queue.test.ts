/** The stream connection's delivery queue: order, one consumer call in flight, idle, stop, errors. */
import { DeliveryQueue, type DeliveryHooks } from '../../../../src/adapters/x/delivery-queue';

function queue(deliver: DeliveryHooks['deliver'], stopped: () => boolean = () => false) {
  const events: string[] = [];
  const q = new DeliveryQueue({
    deliver,
    isStopped: stopped,
    onBusy: () => events.push('busy'),
    onIdle: () => events.push('idle'),
    onError: (err) => events.push(`error:${(err as Error).message}`),
  });
  return { q, events };
}

test('a synchronous consumer gets every line in order, then the queue is idle', () => {
  const got: string[] = [];
  const { q, events } = queue((line, at, truncated) => {
    got.push(`${line}@${at}${truncated ? '!' : ''}`);
  });
  q.push({ lines: ['a', 'b'], receivedAt: 't1' });
  q.push({ lines: ['c'], receivedAt: 't2', truncated: true });
  q.start();
  expect(got).toEqual(['a@t1', 'b@t1', 'c@t2!']);
  expect(events).toEqual(['idle']);
  expect(q.busy).toBe(false);
  expect(q.undelivered).toBe(0);
});

test('an asynchronous consumer has one line in flight; lines pushed meanwhile wait their turn', async () => {
  const pending: (() => void)[] = [];
  const got: string[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const { q, events } = queue((line) => {
    got.push(line);
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    return new Promise<void>((resolve) =>
      pending.push(() => {
        inFlight--;
        resolve();
      }),
    );
  });
  q.push({ lines: ['a', 'b'], receivedAt: 't' });
  q.start();
  expect(got).toEqual(['a']);
  expect(events).toEqual(['busy']);
  expect(q.busy).toBe(true);
  q.push({ lines: ['c'], receivedAt: 't' });
  q.start(); // already delivering: no second consumer call
  expect(q.undelivered).toBe(2);
  while (pending.length > 0) {
    pending.shift()!();
    await new Promise((r) => setImmediate(r));
  }
  expect(got).toEqual(['a', 'b', 'c']);
  expect(maxInFlight).toBe(1);
  expect(events).toEqual(['busy', 'busy', 'busy', 'idle']);
  expect(q.busy).toBe(false);
});

test('nothing more is delivered once the connection has ended, and no idle is reported', () => {
  let stopped = false;
  const got: string[] = [];
  const { q, events } = queue(
    (line) => {
      got.push(line);
      if (line === 'b') stopped = true;
    },
    () => stopped,
  );
  q.push({ lines: ['a', 'b', 'c'], receivedAt: 't' });
  q.start();
  expect(got).toEqual(['a', 'b']);
  expect(events).toEqual([]);
  expect(q.undelivered).toBe(1);
});

test('a consumer that throws or rejects stops delivery with the error', async () => {
  const thrown = queue((line) => {
    if (line === 'b') throw new Error('boom');
  });
  thrown.q.push({ lines: ['a', 'b', 'c'], receivedAt: 't' });
  thrown.q.start();
  expect(thrown.events).toEqual(['error:boom']);

  const rejected = queue(() => Promise.reject(new Error('nope')));
  rejected.q.push({ lines: ['a', 'b'], receivedAt: 't' });
  rejected.q.start();
  await new Promise((r) => setImmediate(r));
  expect(rejected.events).toEqual(['busy', 'error:nope']);
});
