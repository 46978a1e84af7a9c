/**
 * Search for the stand-in (`GET /2/tweets/search/recent` and `/all`): the request validated the way
 * X validates it, and the world history scanned for the posts the query matches, newest first, one
 * page at a time. `server.ts` does the HTTP, the auth, the rate limits and the faults.
 *
 * The history is in creation order, which is both `created_at` order and id order (the ids are
 * snowflakes of a growing sequence), so a page is found by a binary search for its newest possible
 * post and a scan back from there, parsing only the lines it looks at.
 *
 * A `next_token` is opaque to clients (base64url JSON): it pins the endpoint, the query, the
 * resolved window (`start_time`, `end_time`, `since_id`, `until_id`) and the id of the last post
 * returned, so a page resumes exactly where the previous one stopped even as the world goes on
 * creating posts, and the same token can be asked again after a failed page.
 */
import { matchableOf, type PostJson } from './corpus';
import { compileRule, RuleSyntaxError, streamOnlyOperator } from './rule-engine';

export type SearchEndpoint = 'recent' | 'all';

/** One post of the world history: its id, its stream line (without `\r\n`), its creation time. */
export interface HistoryEntry {
  id: string;
  line: string;
  at: number;
}

/** One entry of X's `errors` in a 400 `Invalid Request`. */
export interface SearchParamError {
  parameters: Record<string, string[]>;
  message: string;
}

export interface SearchQuery {
  endpoint: SearchEndpoint;
  query: string;
  match: ReturnType<typeof compileRule>['match'];
  /** Epoch ms, inclusive. */
  startMs: number;
  /** Epoch ms, exclusive. */
  endMs: number;
  /** Exclusive. */
  sinceId?: bigint;
  /** Exclusive. */
  untilId?: bigint;
  /** From the `next_token`: only posts older than this one (exclusive). */
  beforeId?: bigint;
  maxResults: number;
  /** The request carried a `next_token` (or `pagination_token`). */
  paginated: boolean;
}

/** The longest query each endpoint takes. */
export const MAX_QUERY_LENGTH: Record<SearchEndpoint, number> = { recent: 512, all: 1024 };
const SEVEN_DAYS_MS = 7 * 24 * 3600_000;
/** The first day of the full archive. */
const ARCHIVE_START_MS = Date.UTC(2006, 2, 21);
const ISO_8601 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/;

interface TokenBody {
  e: SearchEndpoint;
  q: string;
  s: number;
  t: number;
  si?: string;
  ui?: string;
  b: string;
}

function encodeToken(t: TokenBody): string {
  return Buffer.from(JSON.stringify(t), 'utf8').toString('base64url');
}

function decodeToken(token: string): TokenBody | undefined {
  try {
    const t = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as Partial<TokenBody>;
    const ok =
      (t.e === 'recent' || t.e === 'all') &&
      typeof t.q === 'string' &&
      typeof t.s === 'number' &&
      typeof t.t === 'number' &&
      typeof t.b === 'string' &&
      /^\d+$/.test(t.b);
    return ok ? (t as TokenBody) : undefined;
  } catch {
    return undefined;
  }
}

function parseTime(v: string): number | undefined {
  if (!ISO_8601.test(v)) return undefined;
  // Date.parse takes at most milliseconds.
  const ms = Date.parse(v.replace(/(\.\d{3})\d+/, '$1'));
  return Number.isFinite(ms) ? ms : undefined;
}

const queryError = (query: string, reason: string): SearchParamError => ({
  parameters: { query: [query] },
  message: `There were errors processing your request: ${reason}`,
});

/**
 * Validates a search request like X: every problem found is listed (X answers them together).
 * `minAgeMs` is how recent `end_time` may be (X: 10 s).
 */
export function parseSearch(
  endpoint: SearchEndpoint,
  params: URLSearchParams,
  nowMs: number,
  minAgeMs: number,
): { query: SearchQuery } | { errors: SearchParamError[] } {
  const errors: SearchParamError[] = [];
  const query = params.get('query') ?? '';
  let match: SearchQuery['match'] | undefined;
  if (query.trim() === '') {
    errors.push({ parameters: { query: [] }, message: 'The `query` query parameter can not be empty' });
  } else if (query.length > MAX_QUERY_LENGTH[endpoint]) {
    errors.push(
      queryError(
        query,
        `Query is ${query.length} characters long; the maximum is ${MAX_QUERY_LENGTH[endpoint]}`,
      ),
    );
  } else {
    const streamOnly = streamOnlyOperator(query);
    if (streamOnly) {
      errors.push(
        queryError(
          query,
          `Reference to invalid operator '${streamOnly.op}'. Operator is not available in current ` +
            `product or product packaging. (at position ${streamOnly.position})`,
        ),
      );
    } else {
      try {
        match = compileRule(query).match;
      } catch (err) {
        if (!(err instanceof RuleSyntaxError)) throw err;
        errors.push(queryError(query, err.message));
      }
    }
  }

  const maxParam = params.get('max_results');
  const maxResults = maxParam === null ? 10 : Number(maxParam);
  if (!Number.isInteger(maxResults) || maxResults < 10 || maxResults > 100) {
    errors.push({
      parameters: { max_results: [maxParam ?? ''] },
      message: `The \`max_results\` query parameter value [${maxParam}] is not between 10 and 100`,
    });
  }

  const time = (name: 'start_time' | 'end_time'): number | undefined => {
    const v = params.get(name);
    if (v === null) return undefined;
    const ms = parseTime(v);
    if (ms === undefined) {
      errors.push({
        parameters: { [name]: [v] },
        message: `Invalid '${name}':'${v}'. '${name}' must be in ISO 8601 format (YYYY-MM-DDTHH:mm:ssZ)`,
      });
    }
    return ms;
  };
  const startParam = time('start_time');
  const endParam = time('end_time');
  const earliest = endpoint === 'recent' ? nowMs - SEVEN_DAYS_MS : ARCHIVE_START_MS;
  if (startParam !== undefined && startParam < earliest) {
    errors.push({
      parameters: { start_time: [params.get('start_time')!] },
      message:
        `Invalid 'start_time':'${params.get('start_time')}'. 'start_time' must be on or after ` +
        new Date(earliest).toISOString(),
    });
  }
  if (endParam !== undefined && endParam > nowMs - minAgeMs) {
    errors.push({
      parameters: { end_time: [params.get('end_time')!] },
      message:
        `Invalid 'end_time':'${params.get('end_time')}'. 'end_time' must be a minimum of ` +
        `${minAgeMs / 1000} seconds prior to the request time.`,
    });
  }
  const startMs = startParam ?? Math.max(earliest, 0);
  const endMs = endParam ?? nowMs - minAgeMs;
  if (startMs >= endMs && (startParam !== undefined || endParam !== undefined)) {
    errors.push({
      parameters: {
        ...(startParam !== undefined ? { start_time: [params.get('start_time')!] } : {}),
        ...(endParam !== undefined ? { end_time: [params.get('end_time')!] } : {}),
      },
      message: `Invalid 'end_time':'${new Date(endMs).toISOString()}'. 'end_time' must be after 'start_time'`,
    });
  }

  const id = (name: 'since_id' | 'until_id'): bigint | undefined => {
    const v = params.get(name);
    if (v === null) return undefined;
    if (!/^\d{1,19}$/.test(v)) {
      errors.push({
        parameters: { [name]: [v] },
        message: `The \`${name}\` query parameter value [${v}] is not valid`,
      });
      return undefined;
    }
    return BigInt(v);
  };
  let sinceId = id('since_id');
  let untilId = id('until_id');

  const tokenName = params.has('next_token') ? 'next_token' : 'pagination_token';
  const tokenParam = params.get(tokenName);
  let window = { startMs, endMs };
  let beforeId: bigint | undefined;
  if (tokenParam !== null) {
    const t = decodeToken(tokenParam);
    if (!t || t.e !== endpoint || t.q !== query) {
      errors.push({
        parameters: { [tokenName]: [tokenParam] },
        message: `The \`${tokenName}\` query parameter value [${tokenParam}] is not a valid token for this query`,
      });
    } else {
      window = { startMs: t.s, endMs: t.t };
      sinceId = t.si === undefined ? undefined : BigInt(t.si);
      untilId = t.ui === undefined ? undefined : BigInt(t.ui);
      beforeId = BigInt(t.b);
    }
  }

  if (errors.length > 0 || !match) return { errors };
  return {
    query: {
      endpoint,
      query,
      match,
      ...window,
      ...(sinceId !== undefined ? { sinceId } : {}),
      ...(untilId !== undefined ? { untilId } : {}),
      ...(beforeId !== undefined ? { beforeId } : {}),
      maxResults,
      paginated: tokenParam !== null,
    },
  };
}

type Json = Record<string, unknown>;

/** Adds each object of `from`'s arrays to `into`'s, once per `id` (or `media_key`). */
function mergeIncludes(into: Map<string, Map<string, unknown>>, from: unknown): void {
  if (typeof from !== 'object' || from === null) return;
  for (const [key, list] of Object.entries(from as Json)) {
    if (!Array.isArray(list)) continue;
    let seen = into.get(key);
    if (!seen) into.set(key, (seen = new Map()));
    for (const item of list) {
      const o = item as Json;
      const k =
        typeof o?.id === 'string' ? o.id : typeof o?.media_key === 'string' ? o.media_key : JSON.stringify(o);
      if (!seen.has(k)) seen.set(k, item);
    }
  }
}

/**
 * One page of results for `q` from `history[from..]`: X's response body (`data`, `includes`,
 * `meta`; just `meta` when nothing matched) and the ids it holds.
 */
export function searchHistory(
  history: readonly HistoryEntry[],
  from: number,
  q: SearchQuery,
): { body: Json; ids: string[] } {
  // The posts newer than the page may hold are a suffix of the history: find where it starts.
  const tooNew = (h: HistoryEntry): boolean => {
    if (h.at >= q.endMs) return true;
    const id = BigInt(h.id);
    return (q.untilId !== undefined && id >= q.untilId) || (q.beforeId !== undefined && id >= q.beforeId);
  };
  let lo = from;
  let hi = history.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (tooNew(history[mid]!)) hi = mid;
    else lo = mid + 1;
  }
  const data: unknown[] = [];
  const ids: string[] = [];
  const includes = new Map<string, Map<string, unknown>>();
  let more = false;
  for (let i = lo - 1; i >= from; i--) {
    const h = history[i]!;
    if (h.at < q.startMs || (q.sinceId !== undefined && BigInt(h.id) <= q.sinceId)) break;
    const post = JSON.parse(h.line) as PostJson;
    if (!q.match(matchableOf(post))) continue;
    if (data.length === q.maxResults) {
      more = true;
      break;
    }
    data.push(post.data);
    ids.push(h.id);
    mergeIncludes(includes, post.includes);
  }
  if (data.length === 0) return { body: { meta: { result_count: 0 } }, ids };
  const meta: Json = { newest_id: ids[0], oldest_id: ids[ids.length - 1], result_count: data.length };
  if (more) {
    meta.next_token = encodeToken({
      e: q.endpoint,
      q: q.query,
      s: q.startMs,
      t: q.endMs,
      ...(q.sinceId !== undefined ? { si: q.sinceId.toString() } : {}),
      ...(q.untilId !== undefined ? { ui: q.untilId.toString() } : {}),
      b: ids[ids.length - 1]!,
    });
  }
  const inc: Json = {};
  for (const [k, v] of includes) inc[k] = [...v.values()];
  return { body: { data, includes: inc, meta }, ids };
}
