/**
 * The search client against the real stand-in over loopback HTTP: a page of results is the same
 * `Post` record the stream makes (with `source` = `search` and the searched rule as matching rule),
 * pagination covers exactly what the stand-in created in the window, and each refusal X can give
 * (a query search cannot run, the rate limit with its reset, the usage cap, a failed page) is its
 * own error.
 */
import { startXStandin, type XStandin } from '../../../dev/x-api-standin/server';
import { XUsageCapError } from '../../../src/adapters/x/errors';
import {
  XSearchClient,
  XSearchQueryError,
  XSearchRateLimitError,
  type SearchRequest,
} from '../../../src/adapters/x/search-client';
import { searchGap } from '../../../src/adapters/x/gap-search';
import type { Post } from '../../../src/domain/post';
import { eventually } from '../../support/eventually';

const TOKEN = 'search-test-token';
let standin: XStandin;
let client: XSearchClient;
const rule = { id: '42', tag: 'tesla' };

beforeEach(async () => {
  standin = await startXStandin({
    rate: 200,
    seed: 5,
    rules: [{ value: 'tesla', tag: 'tesla' }],
    searchMinAgeMs: 0,
  });
  client = new XSearchClient({
    baseUrl: standin.url,
    bearerToken: TOKEN,
    tweetFields: ['created_at', 'author_id', 'lang', 'entities', 'note_tweet'],
    expansions: ['author_id'],
    userFields: ['username', 'name'],
  });
});
afterEach(async () => {
  await standin.close();
});

async function all(req: SearchRequest): Promise<Post[]> {
  const out: Post[] = [];
  let nextToken: string | undefined;
  do {
    const page = await client.page({ ...req, nextToken }, rule);
    expect(page.malformed).toEqual([]);
    out.push(...page.posts);
    nextToken = page.nextToken;
  } while (nextToken);
  return out;
}

test('pages through a window: exactly the posts the stand-in created in it, each once, as stream-shaped Posts', async () => {
  // Nobody is connected: the world creates posts anyway, and only search can read them.
  await eventually(
    async () => standin.world().created.length,
    (n) => n > 150,
    { timeoutMs: 10_000, intervalMs: 20 },
  );
  const created = standin.world().created;
  const startMs = Date.parse(created[10]!.created_at);
  const endMs = Date.parse(created.at(-10)!.created_at);
  const expected = created
    .filter((p) => Date.parse(p.created_at) >= startMs && Date.parse(p.created_at) < endMs)
    .map((p) => p.id);

  const posts = await all({ endpoint: 'recent', query: 'tesla', startMs, endMs, maxResults: 10 });
  expect(posts.map((p) => p.id).sort()).toEqual([...expected].sort());
  expect(new Set(posts.map((p) => p.id)).size).toBe(posts.length);
  expect(standin.world().delivered).toEqual([]);
  for (const p of posts.slice(0, 20)) {
    expect(p.source).toBe('search');
    expect(p.matching_rules).toEqual([{ id: '42', tag: 'tesla' }]);
    expect(p.text.toLowerCase()).toContain('tesla');
    expect(p.author.username).toEqual(expect.any(String));
    expect(Date.parse(p.created_at)).toBeGreaterThanOrEqual(startMs);
  }
  expect(new Set(standin.world().searched)).toEqual(new Set(expected));
});

test('a query search cannot run (a stream-only operator) is an XSearchQueryError naming the operator', async () => {
  const now = Date.now();
  const err = await client
    .page({ endpoint: 'recent', query: 'tesla sample:10', startMs: now - 60_000, endMs: now - 1000 }, rule)
    .catch((e: unknown) => e);
  expect(err).toBeInstanceOf(XSearchQueryError);
  expect((err as Error).message).toMatch(/sample/);
});

test('429 is a rate-limit error with the reset time; the usage cap is not a rate limit; a failed page can be retried', async () => {
  const now = Date.now();
  const req: SearchRequest = { endpoint: 'recent', query: 'tesla', startMs: now - 60_000, endMs: now - 1000 };

  standin.setFaults({ searchRateLimited: 1, rateLimitResetSeconds: 30 });
  const limited = await client.page(req, rule).catch((e: unknown) => e);
  expect(limited).toBeInstanceOf(XSearchRateLimitError);
  expect((limited as XSearchRateLimitError).resetAtMs).toBeGreaterThan(now + 20_000);

  standin.setFaults({ usageCapped: true });
  const capped = await client.page(req, rule).catch((e: unknown) => e);
  expect(capped).toBeInstanceOf(XUsageCapError);
  expect((capped as Error).message).toMatch(/usage cap/i);
  expect((capped as Error).message).not.toContain(TOKEN);
  standin.setFaults({ usageCapped: false });

  await eventually(
    async () => standin.world().created.length,
    (n) => n > 30,
    { timeoutMs: 10_000, intervalMs: 20 },
  );
  const first = await client.page({ ...req, endMs: Date.now(), maxResults: 10 }, rule);
  expect(first.nextToken).toBeDefined();
  expect(first.rateLimit.remaining).toEqual(expect.any(Number));
  standin.setFaults({ searchFailPage: 1 });
  const failed = await client
    .page({ ...req, endMs: Date.now(), maxResults: 10, nextToken: first.nextToken }, rule)
    .catch((e: unknown) => e);
  expect((failed as Error).message).toMatch(/HTTP 503/);
  const retried = await client.page(
    { ...req, endMs: Date.now(), maxResults: 10, nextToken: first.nextToken },
    rule,
  );
  expect(retried.posts.length).toBeGreaterThan(0);
  expect(retried.posts.map((p) => p.id)).not.toEqual(expect.arrayContaining(first.posts.map((p) => p.id)));
});

describe('searching a gap', () => {
  const sleeps: number[] = [];
  const sleep = async (ms: number) => {
    sleeps.push(ms);
    await new Promise((r) => setTimeout(r, Math.min(ms / 1000, 50)));
  };
  beforeEach(() => {
    sleeps.length = 0;
  });

  test('every post created in the gap is found, through a rate limit and a failed page', async () => {
    await eventually(
      async () => standin.world().created.length,
      (n) => n > 400,
      {
        timeoutMs: 15_000,
        intervalMs: 20,
      },
    );
    const created = standin.world().created;
    const gap = { id: 'g1', start: created[100]!.created_at, end: created[300]!.created_at };
    standin.setFaults({ searchRateLimited: 1, rateLimitResetSeconds: 20, searchFailPage: 1 });
    const published: string[] = [];
    const result = await searchGap(client, {
      gap,
      rules: [{ id: '42', value: 'tesla', tag: 'tesla' }],
      marginMs: 0,
      fullArchive: false,
      minAgeMs: 0,
      sleep,
      onPage: async (posts) => {
        published.push(...posts.map((p) => p.id));
        return posts.length;
      },
    });
    const inGap = created
      .filter((p) => p.created_at >= gap.start && p.created_at <= gap.end)
      .map((p) => p.id);
    expect(published).toEqual(expect.arrayContaining(inGap));
    expect(result).toMatchObject({ gapId: 'g1', state: 'filled', endpoint: 'recent', unsearchable: [] });
    expect(result.postsFound).toBe(published.length);
    // Waited for the reset (about 20 s) once, and backed off once for the failed page.
    expect(sleeps.some((ms) => ms > 15_000)).toBe(true);
    expect(sleeps).toContain(1000);
  });

  test('a rule search cannot run is reported on the gap; the other rules are still searched', async () => {
    await eventually(
      async () => standin.world().created.length,
      (n) => n > 50,
      { timeoutMs: 10_000, intervalMs: 20 },
    );
    const created = standin.world().created;
    const result = await searchGap(client, {
      gap: { id: 'g2', start: created[0]!.created_at, end: created.at(-1)!.created_at },
      rules: [
        { id: '1', value: 'tesla sample:10', tag: 'sampled' },
        { id: '2', value: 'tesla', tag: 'tesla' },
      ],
      marginMs: 0,
      fullArchive: false,
      minAgeMs: 0,
      sleep,
      onPage: async (posts) => posts.length,
    });
    expect(result.state).toBe('unrecoverable');
    expect(result.unsearchable).toEqual([
      { rule: 'tesla sample:10', reason: expect.stringMatching(/sample/) },
    ]);
    expect(result.postsFound).toBeGreaterThanOrEqual(50);
  });

  test('a gap older than 7 days is unrecoverable without full-archive, and X is not asked', async () => {
    const old = Date.now() - 8 * 24 * 3600_000;
    const before = standin.stats().searchRequests;
    const result = await searchGap(client, {
      gap: { id: 'g3', start: new Date(old).toISOString(), end: new Date(old + 60_000).toISOString() },
      rules: [{ id: '2', value: 'tesla', tag: 'tesla' }],
      marginMs: 30_000,
      fullArchive: false,
      minAgeMs: 0,
      sleep,
      onPage: async (posts) => posts.length,
    });
    expect(result).toMatchObject({ state: 'unrecoverable', postsFound: 0 });
    expect(result.detail).toMatch(/older than recent search reaches.*X_FULL_ARCHIVE_SEARCH/);
    expect(standin.stats().searchRequests).toBe(before);

    const archived = await searchGap(client, {
      gap: { id: 'g3', start: new Date(old).toISOString(), end: new Date(old + 60_000).toISOString() },
      rules: [{ id: '2', value: 'tesla', tag: 'tesla' }],
      marginMs: 30_000,
      fullArchive: true,
      minAgeMs: 0,
      sleep,
      onPage: async (posts) => posts.length,
    });
    expect(archived).toMatchObject({ state: 'filled', endpoint: 'all', postsFound: 0 });
  });
});
