/**
 * The gap-fill activity of the stream worker: fills one stream gap through X search and publishes
 * what it finds to the posts topic, where the loader's insert-if-absent makes the overlap with what
 * the stream delivered harmless. Thin factory over adapters (X search client, X rules client,
 * Pub/Sub publisher); the worker is the composition root.
 *
 * Posts never pass through workflow history: the result is counts only ({@link GapFillResult}).
 */
import { ApplicationFailure, CancelledFailure, Context, activityInfo } from '@temporalio/activity';
import type { PubSub } from '@google-cloud/pubsub';
import type { AppConfig } from '../config';
import { PostPublisher, publisherSettings } from '../adapters/pubsub/publisher';
import { classifyXError } from '../adapters/x/errors';
import { searchGap, type GapSearchCursor } from '../adapters/x/gap-search';
import type { XRulesClient } from '../adapters/x/rules-client';
import type { XSearchClient } from '../adapters/x/search-client';
import { WORKER_SHUTDOWN_FAILURE_TYPE, XFailureType } from '../domain/failure-types';
import {
  SEARCH_MIN_AGE_MS,
  endpointFor,
  searchWindow,
  type FillGapInput,
  type GapFillResult,
} from '../domain/gaps';
import type { PostAttributes } from '../domain/post';
import type { ActiveRule } from '../domain/rules';
import type { Logger } from '../observability/logger';
import type { Metrics } from '../observability/metrics';

export interface GapFillActivityDeps {
  config: Pick<AppConfig, 'x' | 'publish' | 'gcp' | 'load'>;
  logger: Logger;
  metrics?: Metrics;
  pubsub: PubSub | undefined;
  /** Builds the X search client; undefined when no bearer token is configured. */
  createSearchClient: () => XSearchClient | undefined;
  /** Resolves the ids of rules given without one (X's active rules); undefined without a token. */
  rulesClient: Pick<XRulesClient, 'list'> | undefined;
  /** Aborted when the worker begins a graceful shutdown: the fill stops after the current page. */
  shutdownSignal?: AbortSignal;
  /** Override for tests: publish function instead of Pub/Sub. */
  publishFn?: (data: Buffer, attributes: Record<string, string>) => Promise<string>;
  /**
   * How long before the request `end_time` must be (X: 10 s). Tests against the stand-in started
   * with `searchMinAgeMs: 0` set 0 to search what it just created. @default SEARCH_MIN_AGE_MS
   */
  searchMinAgeMs?: number;
}

/** A sleep that resolves (never rejects) early when `signal` aborts, as `searchGap` requires. */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** The cursor a previous attempt heartbeated, when it is one (anything else starts over). */
export function resumeCursor(details: unknown, ruleCount: number): GapSearchCursor | undefined {
  if (typeof details !== 'object' || details === null) return undefined;
  const c = details as Partial<GapSearchCursor>;
  const count = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0;
  if (!count(c.ruleIndex) || c.ruleIndex > ruleCount || !count(c.postsFound) || !count(c.postsPublished))
    return undefined;
  if (!Array.isArray(c.unsearchable)) return undefined;
  if (c.nextToken !== undefined && typeof c.nextToken !== 'string') return undefined;
  return {
    ruleIndex: c.ruleIndex,
    ...(c.nextToken ? { nextToken: c.nextToken } : {}),
    postsFound: c.postsFound,
    postsPublished: c.postsPublished,
    unsearchable: c.unsearchable,
  };
}

/**
 * Gives every rule X's rule id, which becomes each found post's `matching_rules` id as on the
 * stream. Rules given with an id keep it (X is not asked). A rule given without one is looked up in
 * X's active rules by its value (values are unique on X). A rule that is not active on X (deleted
 * since the gap, say) is still searched, since the gap's posts matched it at the time: its posts
 * carry its tag and the id `''` (unknown), so `matching_rule_tags` stays right.
 */
export async function resolveRuleIds(
  rules: FillGapInput['rules'],
  rulesClient: Pick<XRulesClient, 'list'> | undefined,
): Promise<ActiveRule[]> {
  const missing = rules.some((r) => !r.id);
  const active = missing && rulesClient ? await rulesClient.list() : [];
  const idOf = new Map(active.map((r) => [r.value, r.id]));
  return rules.map((r) => {
    const id = r.id || idOf.get(r.value) || '';
    return r.tag !== undefined && r.tag !== '' ? { id, value: r.value, tag: r.tag } : { id, value: r.value };
  });
}

export function createGapFillActivities(deps: GapFillActivityDeps) {
  const { config, logger, metrics } = deps;

  function requireSearch(): XSearchClient {
    const client = deps.createSearchClient();
    if (!client) {
      throw ApplicationFailure.nonRetryable(
        'no X bearer token configured on the stream worker: set X_BEARER_TOKEN or X_BEARER_TOKEN_FILE',
        XFailureType.auth,
      );
    }
    return client;
  }

  return {
    /**
     * Fills one gap: searches every rule over the gap widened by `marginMs` (recent search, or
     * full-archive when allowed and needed), publishes each page (posts and malformed results) and
     * waits for Pub/Sub to acknowledge it before moving on. The cursor is heartbeated after every
     * page (and while waiting), and a retried attempt resumes from it: no page is lost, at most the
     * page in flight is read and published again. Stops on cancellation and on worker shutdown
     * (retryable: another worker resumes from the cursor).
     *
     * Fails with a non-retryable `XAuthError` (no or refused token) or `XUsageCapped` (X's cap);
     * anything else (5xx after the page retries, a rate-limit reset too far away) is retryable.
     */
    async fillGap(input: FillGapInput): Promise<GapFillResult> {
      const ctx = Context.current();
      const info = activityInfo();
      const startedAt = Date.now();
      const client = requireSearch();
      const minAgeMs = deps.searchMinAgeMs ?? SEARCH_MIN_AGE_MS;
      const log = logger.child({
        gapId: input.gap.id,
        supervisorWorkflowId: input.supervisorWorkflowId,
        attempt: info.attempt,
      });

      // The endpoint searchGap will use (for the per-endpoint post counter); none: a gap older than
      // recent search reaches, which searchGap reports without calling X, so no rule is looked up.
      const now = Date.now();
      const window = searchWindow(input.gap, input.marginMs, now, minAgeMs);
      const endpoint = endpointFor(window.startMs, now, input.fullArchive);

      let rules: ActiveRule[];
      try {
        rules = await resolveRuleIds(input.rules, endpoint ? deps.rulesClient : undefined);
      } catch (err) {
        throw classifyXError(err);
      }
      const previous = resumeCursor(info.heartbeatDetails, rules.length);
      let cursor = previous;

      const stop = new AbortController();
      const onStop = (): void => stop.abort();
      ctx.cancellationSignal.addEventListener('abort', onStop);
      deps.shutdownSignal?.addEventListener('abort', onStop);
      if (ctx.cancellationSignal.aborted || deps.shutdownSignal?.aborted) stop.abort();
      const stopped = new Promise<void>((resolve) => {
        if (stop.signal.aborted) resolve();
        else stop.signal.addEventListener('abort', () => resolve(), { once: true });
      });

      let postsAcked = 0;
      let malformedAcked = 0;
      const publisher = new PostPublisher(deps.pubsub, {
        ...publisherSettings(config),
        logger: log,
        publishFn: deps.publishFn,
        onAcked: (attrs: PostAttributes, _id: string, receivedAt: string | undefined) => {
          const latencyMs = Date.now() - Date.parse(receivedAt ?? '');
          if (latencyMs >= 0) metrics?.publishLatency.observe({ source: 'gap-fill' }, latencyMs / 1000);
          if (attrs.malformed === 'true') malformedAcked += 1;
          else {
            postsAcked += 1;
            metrics?.postsPublished.inc();
          }
        },
        onBackpressure: () => metrics?.publishBackpressure.inc(),
        onPublishError: () => metrics?.publishErrors.inc(),
      });

      /**
       * Publishes one page and waits until Pub/Sub acknowledged all of it, so the cursor heartbeated
       * next never passes a page that was not handed over. Throws when stopped meanwhile: the cursor
       * then stays before this page, which a retry publishes again.
       */
      const onPage: Parameters<typeof searchGap>[1]['onPage'] = async (posts, malformed) => {
        const before = postsAcked;
        metrics?.gapSearchPosts.inc({ endpoint: endpoint ?? 'recent' }, posts.length);
        const receivedAt = new Date().toISOString();
        for (const post of posts) await publisher.publishPost(post);
        for (const m of malformed)
          await publisher.publishMalformed({ kind: 'malformed', ...m, received_at: receivedAt });
        await Promise.race([publisher.flush(), stopped]);
        if (stop.signal.aborted) throw new Error(`gap ${input.gap.id}: stopped while publishing a page`);
        return postsAcked - before;
      };

      const heartbeat = (): void => ctx.heartbeat(cursor);
      heartbeat();
      const hbTimer = setInterval(heartbeat, config.publish.heartbeatIntervalMs);

      let result: GapFillResult | undefined;
      let failure: unknown;
      try {
        result = await searchGap(client, {
          gap: input.gap,
          rules,
          marginMs: input.marginMs,
          fullArchive: input.fullArchive,
          minAgeMs,
          cursor: previous,
          signal: stop.signal,
          sleep: abortableSleep,
          onPage,
          onCursor: (c) => {
            cursor = c;
            heartbeat();
          },
        });
      } catch (err) {
        failure = err;
      } finally {
        clearInterval(hbTimer);
        const { unacked } = await publisher.close();
        if (unacked > 0) log.error({ unacked }, 'gap fill stopped with unacknowledged publishes');
        ctx.cancellationSignal.removeEventListener('abort', onStop);
        deps.shutdownSignal?.removeEventListener('abort', onStop);
      }

      const summary = {
        gapStart: input.gap.start,
        gapEnd: input.gap.end,
        rules: rules.length,
        resumedAtRule: previous?.ruleIndex,
        malformedPublished: malformedAcked,
        durationMs: Date.now() - startedAt,
      };
      if (!result) {
        if (ctx.cancellationSignal.aborted) {
          log.info({ ...summary, cursor }, 'gap fill cancelled');
          throw ctx.cancellationSignal.reason ?? new CancelledFailure('gap fill cancelled');
        }
        if (deps.shutdownSignal?.aborted) {
          log.info({ ...summary, cursor }, 'gap fill stopped: the worker is shutting down');
          // Retryable on purpose: another worker resumes from the heartbeated cursor.
          throw ApplicationFailure.retryable('stream worker is shutting down', WORKER_SHUTDOWN_FAILURE_TYPE);
        }
        log.warn({ ...summary, cursor, err: (failure as Error)?.message }, 'gap fill failed');
        throw classifyXError(failure);
      }
      metrics?.gapsFilled.inc({ state: result.state });
      log.info(
        {
          ...summary,
          state: result.state,
          endpoint: result.endpoint,
          postsFound: result.postsFound,
          postsPublished: result.postsPublished,
          unsearchable: result.unsearchable,
          detail: result.detail,
        },
        'gap fill finished',
      );
      return result;
    },
  };
}

export type GapFillActivities = ReturnType<typeof createGapFillActivities>;
