/**
 * The stand-in's world: it creates posts on its clock whatever the stream's client does, and the
 * world ledger tells created, delivered and searched apart. In process, port 0, real HTTP.
 */
import http from 'node:http';
import { startXStandin, type StandinOptions, type XStandin } from '../../../../dev/x-api-standin/server';
import { eventually } from '../../../support/eventually';

const fast = { timeoutMs: 10_000, intervalMs: 10 };
const open: XStandin[] = [];
const closers: (() => void)[] = [];

async function standin(opts: StandinOptions = {}): Promise<XStandin> {
  const s = await startXStandin({
    rate: 200,
    tickMs: 5,
    seed: 3,
    rules: [{ value: 'tesla', tag: 'tesla' }],
    ...opts,
  });
  open.push(s);
  return s;
}

afterEach(async () => {
  for (const c of closers.splice(0)) c();
  await Promise.all(open.splice(0).map((s) => s.close()));
});

/**
 * Connects to the stream and collects the ids of the complete lines; `paused` reads nothing until
 * `response` is resumed.
 */
function connect(
  s: XStandin,
  opts: { paused?: boolean } = {},
): { ids: string[]; status: Promise<number>; response: Promise<http.IncomingMessage> } {
  const ids: string[] = [];
  let buf = '';
  const response = new Promise<http.IncomingMessage>((resolve, reject) => {
    const req = http.get(
      `${s.url}/2/tweets/search/stream`,
      { headers: { authorization: 'Bearer t' } },
      (res) => {
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          buf += d;
          let i: number;
          while ((i = buf.indexOf('\r\n')) !== -1) {
            const line = buf.slice(0, i);
            buf = buf.slice(i + 2);
            if (line) ids.push((JSON.parse(line) as { data: { id: string } }).data.id);
          }
        });
        res.on('error', () => undefined);
        if (opts.paused) res.pause();
        resolve(res);
      },
    );
    req.on('error', reject);
    closers.push(() => req.destroy());
  });
  return { ids, status: response.then((res) => res.statusCode ?? 0), response };
}

describe('the stand-in world', () => {
  it('creates posts with no client connected: created grows, delivered stays empty', async () => {
    const s = await standin();
    const w = await eventually(
      async () => s.world(),
      (v) => v.created.length >= 30,
      fast,
    );
    expect(w.delivered).toEqual([]);
    expect(s.ledger()).toEqual([]);
    expect(new Set(w.created.map((c) => c.id)).size).toBe(w.created.length);
    const times = w.created.map((c) => Date.parse(c.created_at));
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    const ids = w.created.map((c) => BigInt(c.id));
    expect(ids.every((id, i) => i === 0 || id > ids[i - 1]!)).toBe(true);
    expect(s.stats().postsCreated).toBeGreaterThanOrEqual(30);

    const res = await fetch(`${s.url}/_control/world`);
    const body = (await res.json()) as Record<string, unknown> & { created: unknown[] };
    expect(body).toMatchObject({ deliveredCount: 0, searchedCount: 0, delivered: [], searched: [] });
    expect(body.createdCount).toBe(body.created.length);
    expect(body.created.length).toBeGreaterThanOrEqual(30);
  });

  it('creates nothing at rate 0 or without rules', async () => {
    const noRules = await standin({ rules: [] });
    const zero = await standin({ rate: 0 });
    const probe = await standin(); // a clock that does create, to know time has passed
    await eventually(
      async () => probe.world().created.length,
      (n) => n >= 20,
      fast,
    );
    expect(noRules.world().created).toEqual([]);
    expect(zero.world().created).toEqual([]);
  });

  it('a stalled connection keeps the world creating; only what was written is delivered', async () => {
    const s = await standin({ faults: { stallAfterPosts: 5 } });
    const c = connect(s);
    expect(await c.status).toBe(200);
    await eventually(
      async () => c.ids.length,
      (n) => n >= 5,
      fast,
    );
    const atStall = s.world().created.length;
    await eventually(
      async () => s.world().created.length,
      (n) => n >= atStall + 30,
      fast,
    );
    const w = s.world();
    expect(w.delivered).toHaveLength(5);
    expect(c.ids).toEqual(w.delivered);
    expect(s.ledger()).toEqual(w.delivered);
    // What was delivered was created, and in that order.
    const created = w.created.map((p) => p.id);
    expect(created.filter((id) => w.delivered.includes(id))).toEqual(w.delivered);
    expect(s.stats().postsWritten).toBe(5);
  });

  it('a dropped connection: the post cut in half is in created, not delivered, and the world goes on', async () => {
    const s = await standin({ faults: { dropAfterPosts: 3 } });
    const c = connect(s);
    await c.status;
    await eventually(
      async () => s.stats().activeConnection,
      (v) => !v,
      fast,
    );
    const w = s.world();
    expect(w.delivered).toHaveLength(3);
    const cut = w.created[w.created.findIndex((p) => p.id === w.delivered[2]) + 1];
    expect(cut).toBeDefined();
    expect(w.delivered).not.toContain(cut!.id);
    await eventually(
      async () => s.world().created.length,
      (n) => n >= w.created.length + 20,
      fast,
    );
    expect(s.world().delivered).toHaveLength(3);
  });

  it('worldWhileDisconnected: false keeps the old behaviour (posts only while delivered)', async () => {
    const s = await standin({ worldWhileDisconnected: false });
    const probe = await standin();
    await eventually(
      async () => probe.world().created.length,
      (n) => n >= 20,
      fast,
    );
    expect(s.world().created).toEqual([]);
    const c = connect(s);
    await c.status;
    await eventually(
      async () => c.ids.length,
      (n) => n >= 10,
      fast,
    );
    s.setRate(0);
    const w = await eventually(
      async () => s.world(),
      (v) => v.delivered.length === v.created.length,
      fast,
    );
    expect(w.delivered).toEqual(w.created.map((p) => p.id));
  });

  it('resetting the ledger empties created and searched, but not the history search and backfill read', async () => {
    const s = await standin({ searchMinAgeMs: 0 });
    await eventually(
      async () => s.world().created.length,
      (n) => n >= 20,
      fast,
    );
    s.setRate(0);
    const before = s.world().created.length;
    const res = await fetch(`${s.url}/_control/ledger/reset`, { method: 'POST' });
    expect(await res.json()).toEqual({ ok: true });
    expect(s.world()).toEqual({ created: [], delivered: [], searched: [] });
    const found = await fetch(`${s.url}/2/tweets/search/recent?query=tesla&max_results=100`, {
      headers: { authorization: 'Bearer t' },
    });
    const body = (await found.json()) as { meta: { result_count: number } };
    expect(body.meta.result_count).toBe(Math.min(100, before));
    expect(s.world().searched).toHaveLength(Math.min(100, before));
  });

  it('usageCapped refuses stream connects with UsageCapExceeded until cleared', async () => {
    const s = await standin({ faults: { usageCapped: true } });
    const res = await fetch(`${s.url}/2/tweets/search/stream`, { headers: { authorization: 'Bearer t' } });
    expect(res.status).toBe(429);
    expect(await res.json()).toEqual({
      title: 'UsageCapExceeded',
      detail: 'Usage cap exceeded: Monthly product cap',
      type: 'https://api.twitter.com/2/problems/usage-capped',
      period: 'Monthly',
      scope: 'Product',
      status: 429,
    });
    expect(s.stats().rejected).toEqual({ 429: 1 });
    const cleared = await fetch(`${s.url}/_control/faults`, {
      method: 'POST',
      body: JSON.stringify({ usageCapped: false }),
    });
    expect(await cleared.json()).toMatchObject({ usageCapped: false });
    const c = connect(s);
    expect(await c.status).toBe(200);
  });
  it('a reader slower than the rate: posts wait in bufferedBytes, enter the ledger when flushed', async () => {
    const s = await standin({ rate: 20_000 });
    const c = connect(s, { paused: true });
    const res = await c.response;
    // The client reads nothing: the kernel's buffers fill, then the stand-in's.
    await eventually(
      async () => s.stats().bufferedBytes,
      (b) => b > 0,
      fast,
    );
    s.setRate(0);
    const held = s.stats();
    expect(held.bufferedBytes).toBeGreaterThan(0);
    res.resume();
    await eventually(
      async () => s.stats().bufferedBytes,
      (b) => b === 0,
      fast,
    );
    await eventually(
      async () => c.ids.length,
      (n) => n === s.ledger().length,
      fast,
    );
    // Flushing added the held posts to the ledger, and the client got exactly the ledger.
    expect(s.ledger().length).toBeGreaterThan(held.postsWritten);
    expect(c.ids).toEqual(s.ledger());
  });
});
