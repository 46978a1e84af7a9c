/**
 * The stand-in's search endpoints against its world: exactly the posts created in a window, newest
 * first, paginated; X's validation; the rate limit; each search fault. In process, real HTTP.
 */
import { startXStandin, type StandinOptions, type XStandin } from '../../../../dev/x-api-standin/server';
import { eventually } from '../../../support/eventually';

const fast = { timeoutMs: 10_000, intervalMs: 10 };
const open: XStandin[] = [];

async function standin(opts: StandinOptions = {}): Promise<XStandin> {
  const s = await startXStandin({
    rate: 300,
    tickMs: 5,
    seed: 9,
    rules: [
      { value: 'tesla', tag: 'tesla' },
      { value: 'ev OR 전기차', tag: 'ev' },
    ],
    searchMinAgeMs: 0,
    ...opts,
  });
  open.push(s);
  return s;
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

interface Tweet {
  id: string;
  text: string;
  created_at: string;
  author_id: string;
  note_tweet?: { text: string };
}
interface SearchBody {
  data?: Tweet[];
  includes?: { users: { id: string; username: string }[] };
  meta: { result_count: number; newest_id?: string; oldest_id?: string; next_token?: string };
  matching_rules?: unknown;
  errors?: { parameters: Record<string, string[]>; message: string }[];
  title?: string;
}

async function search(
  s: XStandin,
  params: Record<string, string | number>,
  endpoint: 'recent' | 'all' = 'recent',
): Promise<{ status: number; headers: Headers; body: SearchBody }> {
  const url = new URL(`${s.url}/2/tweets/search/${endpoint}`);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, String(v));
  const res = await fetch(url, { headers: { authorization: 'Bearer t' } });
  return { status: res.status, headers: res.headers, body: (await res.json()) as SearchBody };
}

/** Waits for `n` created posts, then stops the world so the window is fixed. */
async function world(s: XStandin, n: number) {
  await eventually(
    async () => s.world().created.length,
    (c) => c >= n,
    fast,
  );
  s.setRate(0);
  return s.world().created;
}

const iso = (ms: number) => new Date(ms).toISOString();

describe('stand-in search', () => {
  it('returns exactly the posts created in a window, newest first, over pages without duplicates', async () => {
    const s = await standin();
    const created = await world(s, 200);
    // A window cut inside the stream of posts (ties on created_at fall on one side together).
    const startMs = Date.parse(created[20]!.created_at);
    const endMs = Date.parse(created[created.length - 20]!.created_at);
    const inWindow = created.filter((p) => {
      const t = Date.parse(p.created_at);
      return t >= startMs && t < endMs;
    });
    // Every post matches 'tesla' or 'ev OR 전기차'; search the union.
    const query = 'tesla OR ev OR 전기차';
    const pages: SearchBody[] = [];
    let token: string | undefined;
    do {
      const r = await search(s, {
        query,
        start_time: iso(startMs),
        end_time: iso(endMs),
        max_results: 10,
        'tweet.fields': 'created_at,author_id',
        expansions: 'author_id',
        'user.fields': 'username',
        ...(token ? { next_token: token } : {}),
      });
      expect(r.status).toBe(200);
      pages.push(r.body);
      token = r.body.meta.next_token;
    } while (token);
    const ids = pages.flatMap((p) => p.data!.map((t) => t.id));
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toEqual(inWindow.map((p) => p.id).reverse()); // newest first
    expect(pages.length).toBe(Math.ceil(inWindow.length / 10));
    for (const p of pages) {
      expect(p.data!.length).toBeLessThanOrEqual(10);
      expect(p.meta).toMatchObject({
        result_count: p.data!.length,
        newest_id: p.data![0]!.id,
        oldest_id: p.data!.at(-1)!.id,
      });
      expect(p.matching_rules).toBeUndefined();
      // The author of every post is in includes, once.
      const users = p.includes!.users.map((u) => u.id);
      expect(new Set(users).size).toBe(users.length);
      for (const t of p.data!) expect(users).toContain(t.author_id);
    }
    expect(new Set(s.world().searched)).toEqual(new Set(ids));
    expect(s.world().delivered).toEqual([]);
    expect(s.stats()).toMatchObject({ searchRequests: pages.length, searchPostsReturned: ids.length });
  });

  it('applies the query, not the rules', async () => {
    const s = await standin();
    await world(s, 150);
    const r = await search(s, { query: 'tesla', max_results: 100 });
    expect(r.status).toBe(200);
    for (const t of r.body.data!) expect((t.note_tweet?.text ?? t.text).toLowerCase()).toMatch(/tesla/);
    const other = await search(s, { query: '전기차 -tesla', max_results: 100 });
    for (const t of other.body.data ?? []) {
      const text = (t.note_tweet?.text ?? t.text).toLowerCase();
      expect(text).toContain('전기차');
      expect(text).not.toMatch(/\btesla\b/);
    }
    expect(r.body.data!.length + (other.body.data?.length ?? 0)).toBeGreaterThan(0);
    expect(await search(s, { query: 'zeppelin' })).toMatchObject({
      status: 200,
      body: { meta: { result_count: 0 } },
    });
    expect((await search(s, { query: 'zeppelin' })).body).toEqual({ meta: { result_count: 0 } });
  });

  it('since_id and until_id are exclusive bounds', async () => {
    const s = await standin();
    const created = await world(s, 60);
    const since = created[10]!.id;
    const until = created[40]!.id;
    const r = await search(s, {
      query: 'tesla OR ev OR 전기차',
      since_id: since,
      until_id: until,
      max_results: 100,
    });
    expect(r.body.data!.map((t) => t.id)).toEqual(
      created
        .slice(11, 40)
        .map((p) => p.id)
        .reverse(),
    );
  });

  it.each([
    [{ query: '(tesla' }, 'query', /There were errors processing your request: Unbalanced parentheses/],
    [{ query: '' }, 'query', /can not be empty/],
    [{ query: 'x'.repeat(513) }, 'query', /maximum is 512/],
    [{ query: 'tesla', max_results: 5 }, 'max_results', /not between 10 and 100/],
    [{ query: 'tesla', max_results: 101 }, 'max_results', /not between 10 and 100/],
    [{ query: 'tesla', start_time: 'yesterday' }, 'start_time', /ISO 8601/],
    [{ query: 'tesla', since_id: 'abc' }, 'since_id', /not valid/],
    [{ query: 'tesla', next_token: 'garbage' }, 'next_token', /not a valid token/],
  ])('400 Invalid Request for %j', async (params, parameter, message) => {
    const s = await standin({ rate: 0 });
    const r = await search(s, params);
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({
      title: 'Invalid Request',
      detail: 'One or more parameters to your request was invalid.',
      type: 'https://api.twitter.com/2/problems/invalid-request',
    });
    expect(Object.keys(r.body.errors![0]!.parameters)).toEqual([parameter]);
    expect(r.body.errors![0]!.message).toMatch(message);
    expect(s.stats().rejected).toEqual({ 400: 1 });
  });

  it('an invalid query echoes the query in parameters', async () => {
    const s = await standin({ rate: 0 });
    const r = await search(s, { query: 'tesla OR' });
    expect(r.body.errors).toEqual([
      {
        parameters: { query: ['tesla OR'] },
        message: expect.stringMatching(/^There were errors processing your request: .*OR/),
      },
    ]);
  });

  it('refuses stream-only operators, naming the operator and its position; the stream takes them', async () => {
    const s = await standin({ rate: 0 });
    const r = await search(s, { query: 'tesla sample:10' });
    expect(r.status).toBe(400);
    expect(r.body.errors).toEqual([
      {
        parameters: { query: ['tesla sample:10'] },
        message:
          "There were errors processing your request: Reference to invalid operator 'sample'. " +
          'Operator is not available in current product or product packaging. (at position 7)',
      },
    ]);
    for (const op of ['followers_count', 'tweets_count', 'following_count', 'listed_count']) {
      const o = await search(s, { query: `tesla ${op}:500`, max_results: 10 }, 'all');
      expect(o.status).toBe(400);
      expect(o.body.errors![0]!.message).toContain(`'${op}'`);
    }
    // Inside a quoted phrase it is just text.
    expect((await search(s, { query: '"sample:10"' })).status).toBe(200);

    // The stream's rules endpoint takes the rule, and the world makes posts for it.
    const add = await fetch(`${s.url}/2/tweets/search/stream/rules`, {
      method: 'POST',
      headers: { authorization: 'Bearer t', 'content-type': 'application/json' },
      body: JSON.stringify({ add: [{ value: 'zeppelin sample:10', tag: 'sampled' }] }),
    });
    expect(add.status).toBe(200);
    s.setRate(300);
    await eventually(
      async () => (await search(s, { query: 'zeppelin' })).body.meta.result_count,
      (n) => n > 0,
      fast,
    );
  });

  it('end_time must be searchMinAgeMs before the request (X: 10 s)', async () => {
    const s = await standin({ rate: 0, searchMinAgeMs: 10_000 });
    const r = await search(s, { query: 'tesla', end_time: iso(Date.now() - 2000) });
    expect(r.status).toBe(400);
    expect(r.body.errors![0]).toEqual({
      parameters: { end_time: [expect.any(String)] },
      message: expect.stringContaining(
        "'end_time' must be a minimum of 10 seconds prior to the request time.",
      ),
    });
    expect((await search(s, { query: 'tesla', end_time: iso(Date.now() - 11_000) })).status).toBe(200);
  });

  it('start_time must not be after end_time', async () => {
    const s = await standin({ rate: 0 });
    const now = Date.now();
    const r = await search(s, { query: 'tesla', start_time: iso(now - 1000), end_time: iso(now - 2000) });
    expect(r.status).toBe(400);
    expect(r.body.errors![0]!.message).toMatch(/'end_time' must be after 'start_time'/);
  });

  it('recent reaches back 7 days; /all has no such limit', async () => {
    const s = await standin({ rate: 0 });
    const eightDaysAgo = iso(Date.now() - 8 * 24 * 3600_000);
    const recent = await search(s, { query: 'tesla', start_time: eightDaysAgo });
    expect(recent.status).toBe(400);
    expect(recent.body.errors![0]).toEqual({
      parameters: { start_time: [eightDaysAgo] },
      message: expect.stringMatching(/'start_time' must be on or after \d{4}-\d\d-\d\dT/),
    });
    const all = await search(s, { query: 'tesla', start_time: eightDaysAgo }, 'all');
    expect(all.status).toBe(200);
    expect((await search(s, { query: 'x'.repeat(1000) }, 'all')).status).toBe(200);
  });

  it('every response carries x-rate-limit headers; an exhausted window is 429 until it resets', async () => {
    const s = await standin({ rate: 0, searchRateLimit: { limit: 3, windowSeconds: 60 } });
    const t0 = Math.floor(Date.now() / 1000);
    const remaining: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await search(s, { query: i === 1 ? 'tesla (' : 'tesla' }); // a 400 counts too
      remaining.push(r.headers.get('x-rate-limit-remaining')!);
      expect(r.headers.get('x-rate-limit-limit')).toBe('3');
      const reset = Number(r.headers.get('x-rate-limit-reset'));
      expect(reset).toBeGreaterThanOrEqual(t0 + 59);
      expect(reset).toBeLessThanOrEqual(t0 + 61);
    }
    expect(remaining).toEqual(['2', '1', '0']);
    const over = await search(s, { query: 'tesla' });
    expect(over.status).toBe(429);
    expect(over.body).toEqual({
      title: 'Too Many Requests',
      detail: 'Too Many Requests',
      type: 'about:blank',
      status: 429,
    });
    expect(over.headers.get('x-rate-limit-remaining')).toBe('0');
    // The window is per endpoint.
    expect((await search(s, { query: 'tesla' }, 'all')).status).toBe(200);
    expect(s.stats().rejected).toEqual({ 400: 1, 429: 1 });
  });

  it('searchRateLimited: the next N requests get 429 with remaining 0 and the reset from rateLimitResetSeconds', async () => {
    const s = await standin({ rate: 0 });
    s.setFaults({ searchRateLimited: 2, rateLimitResetSeconds: 30 });
    const now = Math.floor(Date.now() / 1000);
    for (let i = 0; i < 2; i++) {
      const r = await search(s, { query: 'tesla' });
      expect(r.status).toBe(429);
      expect(r.body.title).toBe('Too Many Requests');
      expect(r.headers.get('x-rate-limit-remaining')).toBe('0');
      expect(Number(r.headers.get('x-rate-limit-reset'))).toBeGreaterThanOrEqual(now + 29);
      expect(Number(r.headers.get('x-rate-limit-reset'))).toBeLessThanOrEqual(now + 31);
    }
    const ok = await search(s, { query: 'tesla' });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('x-rate-limit-remaining')).toBe('449');
    expect(s.stats().faults.searchRateLimited).toBe(0);
  });

  it('searchUnavailable: the next N requests get 503', async () => {
    const s = await standin({ rate: 0 });
    const set = await fetch(`${s.url}/_control/faults`, {
      method: 'POST',
      body: JSON.stringify({ searchUnavailable: 1 }),
    });
    expect(await set.json()).toMatchObject({ searchUnavailable: 1 });
    const r = await search(s, { query: 'tesla' });
    expect(r.status).toBe(503);
    expect(r.body).toEqual({
      title: 'Service Unavailable',
      detail: 'Service Unavailable',
      type: 'about:blank',
      status: 503,
    });
    expect(r.headers.get('x-rate-limit-remaining')).toEqual(expect.any(String));
    expect((await search(s, { query: 'tesla' })).status).toBe(200);
  });

  it('searchFailPage: a page with a next_token fails once; the same token then succeeds', async () => {
    const s = await standin();
    await world(s, 50);
    const first = await search(s, { query: 'tesla OR ev OR 전기차', max_results: 10 });
    const token = first.body.meta.next_token!;
    expect(token).toEqual(expect.any(String));
    s.setFaults({ searchFailPage: 1 });
    // Requests without a token are not affected.
    expect((await search(s, { query: 'tesla OR ev OR 전기차', max_results: 10 })).status).toBe(200);
    const failed = await search(s, { query: 'tesla OR ev OR 전기차', max_results: 10, next_token: token });
    expect(failed.status).toBe(503);
    const retried = await search(s, {
      query: 'tesla OR ev OR 전기차',
      max_results: 10,
      pagination_token: token,
    });
    expect(retried.status).toBe(200);
    const firstIds = first.body.data!.map((t) => t.id);
    const nextIds = retried.body.data!.map((t) => t.id);
    expect(nextIds).toHaveLength(10);
    expect(BigInt(nextIds[0]!) < BigInt(firstIds.at(-1)!)).toBe(true);
    // A token for another query is refused.
    expect((await search(s, { query: 'tesla', next_token: token })).status).toBe(400);
  });

  it('usageCapped: search gets 429 UsageCapExceeded until cleared', async () => {
    const s = await standin({ rate: 0 });
    s.setFaults({ usageCapped: true });
    for (const endpoint of ['recent', 'all'] as const) {
      const r = await search(s, { query: 'tesla' }, endpoint);
      expect(r.status).toBe(429);
      expect(r.body).toEqual({
        title: 'UsageCapExceeded',
        detail: 'Usage cap exceeded: Monthly product cap',
        type: 'https://api.twitter.com/2/problems/usage-capped',
        period: 'Monthly',
        scope: 'Product',
        status: 429,
      });
    }
    s.setFaults({ usageCapped: false });
    expect((await search(s, { query: 'tesla' })).status).toBe(200);
  });

  it('needs a bearer token', async () => {
    const s = await standin({ rate: 0, token: 'secret' });
    const res = await fetch(`${s.url}/2/tweets/search/recent?query=tesla`, {
      headers: { authorization: 'Bearer wrong' },
    });
    expect(res.status).toBe(401);
    const ok = await fetch(`${s.url}/2/tweets/search/recent?query=tesla`, {
      headers: { authorization: 'Bearer secret' },
    });
    expect(ok.status).toBe(200);
  });
});
