/**
 * Filtered-stream rule management on `twitter-api-v2` (which does rules well; see the reference).
 *
 * `twitter-api-v2` has no base-URL setting (its prefixes are hard-coded to `https://api.x.com/2/`),
 * so a small plugin rewrites every request URL — both `onBeforeRequestConfig` and
 * `onBeforeStreamRequestConfig` — to `X_API_BASE_URL`, and an `http.Agent` is used for `http://`
 * targets (the library always calls `https.request`, which accepts an `http.Agent`).
 *
 * Errors never carry the token: they are rebuilt from the status and X's problem fields, and the
 * library's error (whose request holds the `Authorization` header) is not attached as a cause.
 */
import http from 'node:http';
import https from 'node:https';
import { ApiRequestError, ApiResponseError, TwitterApi, type ITwitterApiClientPlugin } from 'twitter-api-v2';
import { ruleKey, validateRules, type ActiveRule, type StreamRule } from '../../domain/rules';
import type { XConfig } from '../../config';
import type { Logger } from '../../observability/logger';
import { XApiError, XAuthError, XRuleError, type RuleProblem } from './errors';

export { XApiError, XAuthError, XRuleError, type RuleProblem } from './errors';

const RULES_PATH = '/2/tweets/search/stream/rules';
const X_PREFIX_RE = /^https?:\/\/api\.(?:x|twitter)\.com\//;

export interface XRulesClientOptions {
  /** `X_API_BASE_URL`, e.g. `https://api.x.com` or `http://127.0.0.1:8787`. */
  baseUrl: string;
  /** Secret. */
  bearerToken: string;
  logger?: Logger;
  /** Per-request timeout. Default 30 000 ms. */
  timeoutMs?: number;
}

export interface RuleSyncResult {
  /** The active rules after the sync, as X lists them. */
  applied: ActiveRule[];
  added: ActiveRule[];
  deleted: ActiveRule[];
}

/** A `twitter-api-v2` plugin that sends every call to `baseUrl` instead of api.x.com. */
export function baseUrlPlugin(baseUrl: string): ITwitterApiClientPlugin {
  const base = baseUrl.replace(/\/+$/, '') + '/';
  const rewrite = (args: { params: { url: string } }): void => {
    args.params.url = args.params.url.replace(X_PREFIX_RE, base);
  };
  return {
    onBeforeRequestConfig: (args) => {
      rewrite(args);
    },
    onBeforeStreamRequestConfig: (args) => {
      rewrite(args);
    },
  };
}

interface XRuleErrorObject {
  value?: string;
  id?: string;
  title?: string;
  detail?: string;
  details?: string[];
  type?: string;
}

function ruleProblems(errors: unknown, tagOf: (value: string) => string | undefined): RuleProblem[] {
  if (!Array.isArray(errors)) return [];
  const out: RuleProblem[] = [];
  for (const e of errors as XRuleErrorObject[]) {
    if (typeof e !== 'object' || e === null || typeof e.value !== 'string') continue;
    const tag = tagOf(e.value);
    out.push({
      value: e.value,
      ...(tag !== undefined ? { tag } : {}),
      title: e.title ?? 'rule error',
      reason: [...(e.details ?? []), ...(e.detail ? [e.detail] : [])].join('; '),
    });
  }
  return out;
}

const isDuplicate = (p: RuleProblem): boolean => /duplicate/i.test(p.title);

function toActive(r: { id: string; value: string; tag?: string }): ActiveRule {
  return r.tag !== undefined && r.tag !== ''
    ? { id: r.id, value: r.value, tag: r.tag }
    : { id: r.id, value: r.value };
}

export class XRulesClient {
  private readonly api: TwitterApi;
  private readonly log?: Logger;
  private readonly timeoutMs: number;

  constructor(opts: XRulesClientOptions) {
    const isHttp = opts.baseUrl.startsWith('http://');
    this.api = new TwitterApi(opts.bearerToken, {
      plugins: [baseUrlPlugin(opts.baseUrl)],
      httpAgent: isHttp ? new http.Agent({ keepAlive: true }) : new https.Agent({ keepAlive: true }),
    });
    this.log = opts.logger;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  /** All active rules (follows `next_token` pagination). */
  async list(): Promise<ActiveRule[]> {
    const out: ActiveRule[] = [];
    let token: string | undefined;
    for (let page = 0; page < 1000; page++) {
      const res = await this.call('GET', () =>
        this.api.v2.get(
          'tweets/search/stream/rules',
          { max_results: 1000, ...(token ? { pagination_token: token } : {}) },
          { timeout: this.timeoutMs },
        ),
      );
      const body = res as {
        data?: { id: string; value: string; tag?: string }[];
        meta?: { next_token?: string };
      };
      for (const r of body.data ?? []) out.push(toActive(r));
      token = body.meta?.next_token;
      if (!token) break;
    }
    return out;
  }

  /**
   * Validates rules with X (`dry_run`), committing nothing. Throws {@link XRuleError} with X's
   * reason for every invalid rule. A rule that already exists is valid (X's `DuplicateRule` is
   * ignored here).
   */
  async validate(rules: readonly StreamRule[]): Promise<void> {
    const problems = (await this.addRules(rules, true)).problems.filter((p) => !isDuplicate(p));
    if (problems.length > 0) throw new XRuleError(problems);
  }

  /**
   * Makes the active rules equal `desired` (identity = value + tag): validates what must be added
   * with `dry_run` first, so an invalid rule changes nothing; then adds the missing rules, deletes
   * the extra ones and finally adds rules whose tag changed (a tag cannot be edited: X requires
   * delete + re-add, and refuses to add a value that still exists). If a step fails after the dry
   * run passed (e.g. a network error), the steps already applied are undone, best effort.
   */
  async sync(desired: readonly StreamRule[]): Promise<RuleSyncResult> {
    const want = validateRules(desired);
    const current = await this.list();
    const wantKeys = new Set(want.map(ruleKey));
    const haveKeys = new Set(current.map(ruleKey));
    const toAdd = want.filter((r) => !haveKeys.has(ruleKey(r)));
    const toDelete = current.filter((r) => !wantKeys.has(ruleKey(r)));
    if (toAdd.length === 0 && toDelete.length === 0) {
      this.log?.info({ rules: current.length }, 'X rules already in sync');
      return { applied: current, added: [], deleted: [] };
    }

    const deletingValues = new Set(toDelete.map((r) => r.value));
    // A value being re-tagged still exists until the delete: X's dry run says DuplicateRule for it.
    const retag = toAdd.filter((r) => deletingValues.has(r.value));
    const plainAdd = toAdd.filter((r) => !deletingValues.has(r.value));
    if (toAdd.length > 0) {
      const dry = await this.addRules(toAdd, true);
      const problems = dry.problems.filter((p) => !(isDuplicate(p) && deletingValues.has(p.value)));
      if (problems.length > 0) throw new XRuleError(problems);
    }

    const added: ActiveRule[] = [];
    const deleted: ActiveRule[] = [];
    try {
      if (plainAdd.length > 0) added.push(...(await this.applyAdd(plainAdd)));
      if (toDelete.length > 0) {
        await this.deleteRules(toDelete.map((r) => r.id));
        deleted.push(...toDelete);
      }
      if (retag.length > 0) added.push(...(await this.applyAdd(retag)));
    } catch (err) {
      await this.rollback(added, deleted);
      throw err;
    }
    const applied = await this.list();
    this.log?.info(
      {
        added: added.map((r) => ({ value: r.value, tag: r.tag })),
        deleted: deleted.map((r) => ({ value: r.value, tag: r.tag })),
        rules: applied.length,
      },
      'X rules synced',
    );
    return { applied, added, deleted };
  }

  /** Adds rules for real; if X creates only some of them, deletes those and throws. */
  private async applyAdd(rules: readonly StreamRule[]): Promise<ActiveRule[]> {
    const res = await this.addRules(rules, false);
    if (res.problems.length > 0 || res.created.length < rules.length) {
      if (res.created.length > 0) await this.deleteRules(res.created.map((r) => r.id)).catch(() => undefined);
      throw res.problems.length > 0
        ? new XRuleError(res.problems)
        : new XApiError(`X created ${res.created.length} of ${rules.length} rules`, `POST ${RULES_PATH}`);
    }
    return res.created;
  }

  private async rollback(added: ActiveRule[], deleted: ActiveRule[]): Promise<void> {
    try {
      if (added.length > 0) await this.deleteRules(added.map((r) => r.id));
      if (deleted.length > 0) await this.addRules(deleted, false);
      this.log?.warn('X rule sync failed part-way; the applied steps were undone');
    } catch (err) {
      this.log?.error({ err: (err as Error).message }, 'X rule sync failed part-way and could not be undone');
    }
  }

  private async addRules(
    rules: readonly StreamRule[],
    dryRun: boolean,
  ): Promise<{ created: ActiveRule[]; problems: RuleProblem[] }> {
    const tags = new Map(rules.map((r) => [r.value, r.tag]));
    const add = rules.map((r) => (r.tag ? { value: r.value, tag: r.tag } : { value: r.value }));
    try {
      const res = (await this.call(
        'POST',
        () =>
          this.api.v2.post(
            'tweets/search/stream/rules',
            { add },
            { query: dryRun ? { dry_run: true } : {}, timeout: this.timeoutMs },
          ),
        true,
      )) as { data?: { id: string; value: string; tag?: string }[]; errors?: unknown };
      return {
        created: (res.data ?? []).map(toActive),
        problems: ruleProblems(res.errors, (v) => tags.get(v)),
      };
    } catch (err) {
      // X answers 400 for a request whose rules are all invalid; the problems are the same shape.
      if (err instanceof RuleResponse) {
        const problems = ruleProblems(err.errors, (v) => tags.get(v));
        if (problems.length > 0) return { created: [], problems };
        throw err.apiError;
      }
      throw err;
    }
  }

  private async deleteRules(ids: string[]): Promise<void> {
    const res = (await this.call('POST', () =>
      this.api.v2.post('tweets/search/stream/rules', { delete: { ids } }, { timeout: this.timeoutMs }),
    )) as { meta?: { summary?: { deleted?: number; not_deleted?: number } }; errors?: unknown };
    const notDeleted = res.meta?.summary?.not_deleted ?? 0;
    if (notDeleted > 0) {
      throw new XApiError(
        `X did not delete ${notDeleted} of ${ids.length} rules (${JSON.stringify(res.errors ?? []).slice(0, 300)})`,
        `POST ${RULES_PATH}`,
      );
    }
  }

  /** Runs one library call and turns its failures into our token-free errors. */
  private async call<T>(method: string, fn: () => Promise<T>, ruleErrorsAllowed = false): Promise<T> {
    const endpoint = `${method} ${RULES_PATH}`;
    try {
      return await fn();
    } catch (err) {
      if (err instanceof ApiResponseError) {
        const data = err.data as { title?: string; detail?: string; errors?: unknown } | undefined;
        const detail = [data?.title, data?.detail].filter(Boolean).join(': ') || undefined;
        if (err.code === 401 || err.code === 403) throw new XAuthError(err.code, detail, endpoint);
        const apiError = new XApiError(
          `X API ${endpoint} failed with HTTP ${err.code}${detail ? `: ${detail}` : ''}`,
          endpoint,
          err.code,
        );
        if (ruleErrorsAllowed && err.code === 400 && Array.isArray(data?.errors)) {
          throw new RuleResponse(data.errors, apiError);
        }
        throw apiError;
      }
      if (err instanceof ApiRequestError) {
        const code = (err.requestError as NodeJS.ErrnoException | undefined)?.code;
        throw new XApiError(
          `X API ${endpoint} request failed (${code ?? err.requestError.message})`,
          endpoint,
        );
      }
      throw err;
    }
  }
}

/** Internal: a 400 answer carrying per-rule problems. */
class RuleResponse extends Error {
  constructor(
    readonly errors: unknown[],
    readonly apiError: XApiError,
  ) {
    super(apiError.message);
  }
}

/** Builds the rules client from the `x` section of the configuration. */
export function createXRulesClient(x: XConfig, logger?: Logger): XRulesClient {
  if (!x.bearerToken) {
    throw new Error('no X bearer token configured: set X_BEARER_TOKEN or X_BEARER_TOKEN_FILE');
  }
  return new XRulesClient({ baseUrl: x.baseUrl, bearerToken: x.bearerToken, logger });
}
