/**
 * Searching one gap: recent (or full-archive) search for every active rule over the gap widened by
 * a margin, page by page, honouring X's rate limit. The posts of each page are handed to `onPage`
 * (the gap fill publishes them to the topic, where the loader's insert-if-absent makes the overlap
 * with what the stream delivered harmless) before the cursor moves on, so a retried activity that
 * resumes from its last heartbeated cursor loses no page.
 *
 * - HTTP 429 (rate limit): wait until `x-rate-limit-reset`, then ask for the same page again; an
 *   answer with `x-rate-limit-remaining: 0` waits before the next page instead of provoking a 429.
 * - HTTP 5xx or a network error on a page: retried `maxPageRetries` times with doubling back-off,
 *   then thrown (the activity's retry resumes from the cursor).
 * - HTTP 400 for a rule (an operator only the filtered stream supports): the rule is reported on
 *   the gap with X's reason, the other rules are still searched, and the gap is `unrecoverable`.
 * - A window older than recent search reaches (7 days): full-archive search when the app has it
 *   (`fullArchive`), else `unrecoverable` with its interval, without calling X.
 * - Usage cap and refused credentials: thrown (the supervisor pauses).
 */
import {
  endpointFor,
  searchWindow,
  type GapFillResult,
  type GapReport,
  type UnsearchableRule,
} from '../../domain/gaps';
import type { Post } from '../../domain/post';
import type { ActiveRule } from '../../domain/rules';
import { XApiError } from './errors';
import {
  XSearchQueryError,
  XSearchRateLimitError,
  type SearchPage,
  type XSearchClient,
} from './search-client';

/** Where a gap's search stands; heartbeated so a retried attempt resumes. */
export interface GapSearchCursor {
  ruleIndex: number;
  nextToken?: string;
  postsFound: number;
  postsPublished: number;
  unsearchable: UnsearchableRule[];
}

export interface GapSearchOptions {
  gap: Pick<GapReport, 'id' | 'start' | 'end'>;
  rules: readonly ActiveRule[];
  marginMs: number;
  fullArchive: boolean;
  /** Publishes one page; resolves with how many messages it accepted. */
  onPage: (posts: Post[], malformed: SearchPage['malformed']) => Promise<number>;
  /** Called after every page (the activity heartbeats it). */
  onCursor?: (c: GapSearchCursor) => void;
  cursor?: GapSearchCursor;
  signal?: AbortSignal;
  /** Must resolve (not reject) when `signal` aborts. */
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  now?: () => number;
  maxPageRetries?: number;
  /** X's minimum age of `end_time` (10 s); the stand-in can be told to accept 0 in tests. */
  minAgeMs?: number;
  /** Longest wait for a rate-limit reset before giving the page back to the retry policy. @default 16 min */
  maxRateLimitWaitMs?: number;
}

const transient = (err: unknown): boolean =>
  err instanceof XApiError && (err.status === undefined || err.status >= 500);

export async function searchGap(client: XSearchClient, o: GapSearchOptions): Promise<GapFillResult> {
  const now = o.now ?? Date.now;
  const { startMs, endMs } = searchWindow(o.gap, o.marginMs, now(), o.minAgeMs);
  const endpoint = endpointFor(startMs, now(), o.fullArchive);
  const interval = `${new Date(startMs).toISOString()} – ${new Date(endMs).toISOString()}`;
  if (endpoint === undefined) {
    return {
      gapId: o.gap.id,
      state: 'unrecoverable',
      postsFound: 0,
      postsPublished: 0,
      postsRead: 0,
      unsearchable: [],
      detail: `${interval} is older than recent search reaches (7 days); set X_FULL_ARCHIVE_SEARCH=true if the app has full-archive access`,
    };
  }
  const c: GapSearchCursor = o.cursor
    ? { ...o.cursor, unsearchable: [...o.cursor.unsearchable] }
    : { ruleIndex: 0, postsFound: 0, postsPublished: 0, unsearchable: [] };
  const maxRetries = o.maxPageRetries ?? 3;
  const maxWait = o.maxRateLimitWaitMs ?? 16 * 60_000;

  while (c.ruleIndex < o.rules.length && !o.signal?.aborted) {
    const rule = o.rules[c.ruleIndex]!;
    let page: SearchPage | undefined;
    let failures = 0;
    while (!page && !o.signal?.aborted) {
      try {
        page = await client.page(
          { endpoint, query: rule.value, startMs, endMs, maxResults: 100, nextToken: c.nextToken },
          { id: rule.id, tag: rule.tag },
        );
      } catch (err) {
        if (err instanceof XSearchRateLimitError) {
          const wait = Math.max(1000, (err.resetAtMs ?? now() + 60_000) - now() + 1000);
          if (wait > maxWait) throw err;
          await o.sleep(wait, o.signal);
        } else if (err instanceof XSearchQueryError) {
          c.unsearchable.push({ rule: rule.value, reason: err.reason });
          break;
        } else if (transient(err) && failures < maxRetries) {
          failures += 1;
          await o.sleep(1000 * 2 ** (failures - 1), o.signal);
        } else {
          throw err;
        }
      }
    }
    if (o.signal?.aborted) break;
    if (page) {
      c.postsFound += page.posts.length;
      c.postsPublished += await o.onPage(page.posts, page.malformed);
      c.nextToken = page.nextToken;
      if (page.rateLimit.remaining === 0 && page.rateLimit.resetAtMs && c.nextToken) {
        await o.sleep(Math.max(0, page.rateLimit.resetAtMs - now() + 1000), o.signal);
      }
    }
    if (!page || !c.nextToken) {
      c.ruleIndex += 1;
      c.nextToken = undefined;
    }
    o.onCursor?.({ ...c, unsearchable: [...c.unsearchable] });
  }
  if (o.signal?.aborted) throw new Error(`gap ${o.gap.id}: search cancelled`);
  return {
    gapId: o.gap.id,
    state: c.unsearchable.length > 0 ? 'unrecoverable' : 'filled',
    postsFound: c.postsFound,
    postsPublished: c.postsPublished,
    postsRead: c.postsFound,
    unsearchable: c.unsearchable,
    endpoint,
    ...(c.unsearchable.length > 0
      ? { detail: `${c.unsearchable.length} rule(s) cannot be searched over ${interval}` }
      : {}),
  };
}
