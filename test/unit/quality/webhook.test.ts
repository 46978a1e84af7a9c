import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { postJson, redactUrl } from '../../../src/adapters/webhook';
import { createStreamCounters } from '../../../src/adapters/temporal/published-counts';
import type { PipelineStatus } from '../../../src/domain/pipeline-status';

let server: Server;
let base: string;
const statuses: number[] = [];
const bodies: unknown[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let data = '';
    req.on('data', (c) => (data += c));
    req.on('end', () => {
      if (req.url === '/slow') return; // never answers
      bodies.push(JSON.parse(data));
      res.writeHead(statuses.shift() ?? 200).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => {
  server.closeAllConnections();
  return new Promise<void>((r) => server.close(() => r()));
});
beforeEach(() => {
  statuses.length = 0;
  bodies.length = 0;
});

const noSleep = async () => undefined;

test('retries 5xx and 429 and delivers', async () => {
  statuses.push(500, 429, 204);
  const r = await postJson(`${base}/hook`, { a: 1 }, { sleep: noSleep });
  expect(r).toEqual({ delivered: true, attempts: 3, status: 204 });
  expect(bodies).toEqual([{ a: 1 }, { a: 1 }, { a: 1 }]);
});

test('does not retry other 4xx, and never throws', async () => {
  statuses.push(400);
  await expect(postJson(`${base}/hook`, {}, { sleep: noSleep })).resolves.toEqual({
    delivered: false,
    attempts: 1,
    status: 400,
    error: 'HTTP 400',
  });
});

test('each attempt is bounded by the timeout', async () => {
  const r = await postJson(`${base}/slow`, {}, { timeoutMs: 100, maxAttempts: 2, sleep: noSleep });
  expect(r).toEqual({ delivered: false, attempts: 2, error: 'timed out after 100 ms' });
});

test('an unreachable webhook is reported, not thrown', async () => {
  const r = await postJson('http://127.0.0.1:1/hook', {}, { maxAttempts: 2, sleep: noSleep });
  expect(r.delivered).toBe(false);
  expect(r.attempts).toBe(2);
});

test('webhook URLs are logged without their secret path', () => {
  expect(redactUrl('https://hooks.slack.com/services/T0/B0/secret')).toBe('https://hooks.slack.com/…');
});

test('stream counters: filtered to the window, one status read per cache period, undefined when unavailable', async () => {
  let reads = 0;
  const status = {
    progress: { connected: true },
    publishedByMinute: [
      { minute: '2026-11-25T18:00:00.000Z', published: 3 },
      { minute: '2026-11-25T18:01:00.000Z', published: 4 },
      { minute: '2026-11-25T18:02:00.000Z', published: 5 },
    ],
  } as PipelineStatus;
  const c = createStreamCounters(async () => {
    reads++;
    return status;
  });
  await expect(c.publishedCounts('2026-11-25T18:01:00.000Z', '2026-11-25T18:02:00.000Z')).resolves.toEqual([
    { minute: '2026-11-25T18:01:00.000Z', published: 4 },
  ]);
  await expect(c.streamConnected()).resolves.toBe(true);
  expect(reads).toBe(1);

  const down = createStreamCounters(async () => {
    throw new Error('workflow not found');
  });
  await expect(down.publishedCounts('a', 'b')).resolves.toBeUndefined();
  await expect(down.streamConnected()).resolves.toBeUndefined();
});

test('stream counters: "connected since" a window start is true only for a stream up before it', async () => {
  const at = (progress: Partial<PipelineStatus['progress']>) =>
    createStreamCounters(async () => ({ progress, publishedByMinute: [] }) as unknown as PipelineStatus);
  const windowStart = '2026-12-01T20:17:00.000Z';
  const upSince = (since: string) => at({ connected: true, connectedSince: since });
  await expect(upSince('2026-12-01T20:00:00.000Z').streamConnected(windowStart)).resolves.toBe(true);
  // A pipeline started after the window began (the demo's first minutes) is not "connected with 0 posts".
  await expect(upSince('2026-12-01T20:32:00.000Z').streamConnected(windowStart)).resolves.toBe(false);
  await expect(at({ connected: false }).streamConnected(windowStart)).resolves.toBe(false);
  // A supervisor that does not report since when (an older worker) cannot be judged.
  await expect(at({ connected: true }).streamConnected(windowStart)).resolves.toBeUndefined();
});
