/**
 * X API v2 search (`GET /2/tweets/search/recent`, `/2/tweets/search/all`): one page per call, with
 * the rate-limit headers of the answer, for the gap fill. Plain `fetch` (Node 20) rather than
 * `twitter-api-v2`'s paginator, because the gap fill must see every page boundary (to resume from a
 * `next_token` after a failed page) and every `x-rate-limit-*` header (to wait instead of failing).
 *
 * Each result is turned into the same line a stream delivery would be (`{"data","includes",
 * "matching_rules"}`, with the rule that was searched as the matching rule) and normalised by the
 * stream's own `normalizeStreamLine`, so a post found by search is the same `Post` record as one
 * read from the stream, with `source` = `search`.
 *
 * Errors never carry the token: X's 400 for a query search cannot run is an {@link XSearchQueryError}
 * (reported on the gap, not retried), 401/403 an `XAuthError`, the usage cap an `XUsageCapError`, a
 * 429 rate limit an {@link XSearchRateLimitError} with its reset time, anything else an `XApiError`.
 */
import { normalizeStreamLine } from '../../domain/normalize';
import type { Post } from '../../domain/post';
import type { SearchEndpoint } from '../../domain/gaps';
import { XApiError, XAuthError, XUsageCapError, isUsageCapProblem, problemText } from './errors';

export interface SearchRequest {
  endpoint: SearchEndpoint;
  query: string;
  /** Epoch ms, inclusive. */
  startMs: number;
  /** Epoch ms, exclusive. */
  endMs: number;
  /** 10-100. @default 100 */
  maxResults?: number;
  nextToken?: string;
}

export interface RateLimit {
  limit?: number;
  remaining?: number;
  /** Epoch ms when the window resets. */
  resetAtMs?: number;
}

export interface SearchPage {
  posts: Post[];
  /** Results that did not normalise (kept with the reason; the gap fill publishes them as malformed). */
  malformed: { reason: string; raw: string }[];
  nextToken?: string;
  rateLimit: RateLimit;
}

/** X refused the query itself (HTTP 400), e.g. an operator only the filtered stream supports. */
export class XSearchQueryError extends Error {
  override readonly name = 'XSearchQueryError';
  constructor(
    readonly query: string,
    readonly reason: string,
  ) {
    super(`X search cannot run ${JSON.stringify(query)}: ${reason}`);
  }
}

/** HTTP 429 from search: wait until `resetAtMs`, then ask again. */
export class XSearchRateLimitError extends Error {
  override readonly name = 'XSearchRateLimitError';
  constructor(readonly resetAtMs: number | undefined) {
    super(
      `X search rate limit reached${resetAtMs ? `; resets at ${new Date(resetAtMs).toISOString()}` : ''}`,
    );
  }
}

export interface XSearchClientOptions {
  /** `X_API_BASE_URL`. */
  baseUrl: string;
  /** Secret. */
  bearerToken: string;
  tweetFields?: readonly string[];
  expansions?: readonly string[];
  userFields?: readonly string[];
  /** Per-request timeout. @default 30 000 ms */
  timeoutMs?: number;
  /** Clock for `received_at`; injectable for tests. */
  now?: () => number;
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function rateLimitOf(h: Headers): RateLimit {
  const n = (k: string) => {
    const v = Number(h.get(k));
    return h.get(k) !== null && Number.isFinite(v) ? v : undefined;
  };
  const reset = n('x-rate-limit-reset');
  return {
    limit: n('x-rate-limit-limit'),
    remaining: n('x-rate-limit-remaining'),
    resetAtMs: reset !== undefined ? reset * 1000 : undefined,
  };
}

/** The author (and any other user) of a result, from the page's `includes.users`. */
function includesFor(tweet: Json, users: Map<string, Json>): Json {
  const author = typeof tweet.author_id === 'string' ? users.get(tweet.author_id) : undefined;
  return author ? { users: [author] } : {};
}

export class XSearchClient {
  constructor(private readonly opts: XSearchClientOptions) {}

  private url(req: SearchRequest): URL {
    const url = new URL(`${this.opts.baseUrl.replace(/\/+$/, '')}/2/tweets/search/${req.endpoint}`);
    const p = url.searchParams;
    p.set('query', req.query);
    p.set('start_time', new Date(req.startMs).toISOString());
    p.set('end_time', new Date(req.endMs).toISOString());
    p.set('max_results', String(req.maxResults ?? 100));
    if (req.nextToken) p.set('next_token', req.nextToken);
    if (this.opts.tweetFields?.length) p.set('tweet.fields', this.opts.tweetFields.join(','));
    if (this.opts.expansions?.length) p.set('expansions', this.opts.expansions.join(','));
    if (this.opts.userFields?.length) p.set('user.fields', this.opts.userFields.join(','));
    return url;
  }

  /**
   * One page of results, newest first. `rule` is the stream rule being searched for: it becomes the
   * post's matching rule, as on the stream.
   */
  async page(req: SearchRequest, rule: { id: string; tag?: string }): Promise<SearchPage> {
    const endpoint = `GET /2/tweets/search/${req.endpoint}`;
    let res: Response;
    try {
      res = await fetch(this.url(req), {
        headers: { authorization: `Bearer ${this.opts.bearerToken}` },
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 30_000),
      });
    } catch (err) {
      throw new XApiError(`X search request failed: ${(err as Error).message}`, endpoint);
    }
    const rateLimit = rateLimitOf(res.headers);
    const text = await res.text();
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    if (res.status !== 200) {
      const detail = problemText(body) || text.slice(0, 200);
      if (isUsageCapProblem(res.status, body)) throw new XUsageCapError(res.status, detail, endpoint);
      if (res.status === 401 || res.status === 403) throw new XAuthError(res.status, detail, endpoint);
      if (res.status === 429) throw new XSearchRateLimitError(rateLimit.resetAtMs);
      if (res.status === 400) throw new XSearchQueryError(req.query, detail);
      throw new XApiError(
        `X search answered HTTP ${res.status}${detail ? `: ${detail}` : ''}`,
        endpoint,
        res.status,
      );
    }
    if (!isObject(body))
      throw new XApiError('X search answered HTTP 200 without a JSON object', endpoint, 200);
    const users = new Map<string, Json>();
    const inc = isObject(body.includes) ? body.includes : {};
    for (const u of Array.isArray(inc.users) ? inc.users : []) {
      if (isObject(u) && typeof u.id === 'string') users.set(u.id, u);
    }
    const receivedAt = new Date((this.opts.now ?? Date.now)()).toISOString();
    const matching = [rule.tag !== undefined ? { id: rule.id, tag: rule.tag } : { id: rule.id }];
    const posts: Post[] = [];
    const malformed: SearchPage['malformed'] = [];
    for (const tweet of Array.isArray(body.data) ? body.data : []) {
      const line = JSON.stringify({
        data: tweet,
        ...(isObject(tweet) ? { includes: includesFor(tweet, users) } : {}),
        matching_rules: matching,
      });
      const n = normalizeStreamLine(line, receivedAt);
      if (n.kind === 'post') posts.push({ ...n.post, source: 'search' });
      else
        malformed.push({
          reason: n.kind === 'malformed' ? n.message.reason : `unexpected ${n.kind}`,
          raw: line,
        });
    }
    const meta = isObject(body.meta) ? body.meta : {};
    const nextToken = typeof meta.next_token === 'string' ? meta.next_token : undefined;
    return { posts, malformed, ...(nextToken ? { nextToken } : {}), rateLimit };
  }
}
