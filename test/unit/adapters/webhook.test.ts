import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { postJson, redactUrl } from '../../../src/adapters/webhook';

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
