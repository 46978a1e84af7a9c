/**
 * Errors raised by the X adapters, and their classification for Temporal. None of them ever carries
 * the bearer token: messages are built from status codes and X's problem fields only.
 *
 * Where an `ApplicationFailure` is created (STYLE.md rule 4, "classify failures where the external
 * call is made"): the adapters' error classifiers turn the errors of their external calls into
 * failures (`classifyXError` here, `classifyBigQueryError` in `adapters/bigquery/errors.ts`,
 * `classifyPubSubError` in `adapters/pubsub/errors.ts`), permanent ones non-retryable with a
 * type from `domain/failure-types.ts`, transient ones passed on as they are. Activities throw what
 * the classifiers return and create a failure themselves only for a condition of their own (no
 * bearer token configured, the worker shutting down); they never re-classify an adapter's error.
 * Workflows create one only to reject an update with its cause's reason (`setRules`).
 */
import { ApplicationFailure } from '@temporalio/common';
import { XFailureType } from '../../domain/failure-types';

/**
 * X rejected the credentials (HTTP 401/403). Permanent: retrying cannot help, the operator must fix
 * `X_BEARER_TOKEN` (or `X_BEARER_TOKEN_FILE`) or the app's access level.
 */
export class XAuthError extends Error {
  override readonly name = 'XAuthError';
  constructor(
    readonly status: number,
    /** X's problem title/detail, when it sent one (never contains the token). */
    readonly detail: string | undefined,
    readonly endpoint: string,
  ) {
    super(
      `X API refused the bearer token (HTTP ${status}${detail ? `: ${detail}` : ''}) on ${endpoint}: ` +
        'check X_BEARER_TOKEN / X_BEARER_TOKEN_FILE and the app access level (the token value is not shown)',
    );
  }
}

/** One rule X refused, with X's reason. */
export interface RuleProblem {
  value: string;
  tag?: string;
  /** X's problem title, e.g. `DuplicateRule`, `Invalid Rule`. */
  title: string;
  /** X's details, joined. */
  reason: string;
}

/** X refused one or more rules; nothing was applied. */
export class XRuleError extends Error {
  override readonly name = 'XRuleError';
  constructor(readonly problems: RuleProblem[]) {
    super(
      `X rejected ${problems.length} rule(s): ` +
        problems
          .map((p) => `${JSON.stringify(p.value)}: ${p.title}${p.reason ? ` (${p.reason})` : ''}`)
          .join('; '),
    );
  }
}

/** Any other failure of an X API call, with the endpoint and status for context. */
export class XApiError extends Error {
  override readonly name = 'XApiError';
  constructor(
    message: string,
    readonly endpoint: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/**
 * X refused a call because the app's usage cap is reached or its credits are spent: HTTP 429 with
 * the problem type `…/usage-capped` (title `UsageCapExceeded`), or HTTP 402 (payment required, e.g.
 * `CreditsDepleted`). Unlike a rate limit it does not reset in minutes: the pipeline pauses in
 * `budget-exhausted` with X's message and does not retry until an operator acts or the month turns.
 */
export class XUsageCapError extends Error {
  override readonly name = 'XUsageCapError';
  constructor(
    readonly status: number,
    /** X's problem title/detail. */
    readonly detail: string | undefined,
    readonly endpoint: string,
  ) {
    super(
      `X refused ${endpoint}: usage cap or credits exhausted (HTTP ${status}${detail ? `: ${detail}` : ''})`,
    );
  }
}

/** True when an X error answer (status and parsed problem body) means the usage cap / credits. */
export function isUsageCapProblem(status: number, problem: unknown): boolean {
  if (status === 402) return true;
  if (status !== 429 || typeof problem !== 'object' || problem === null) return false;
  const p = problem as Record<string, unknown>;
  const text = [p.type, p.title].filter((x): x is string => typeof x === 'string').join(' ');
  return /usage-capped|UsageCapExceeded|credits|CreditsDepleted/i.test(text);
}

/**
 * The human part of an X problem answer (its first error's message, its title and detail, each once),
 * at most 500 characters; '' when the body is not an object.
 */
export function problemText(body: unknown): string {
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObject(body)) return '';
  const first = Array.isArray(body.errors) && isObject(body.errors[0]) ? body.errors[0] : undefined;
  const parts = [first?.message, body.title, body.detail].filter(
    (x): x is string => typeof x === 'string' && x.length > 0,
  );
  return [...new Set(parts)].join(': ').slice(0, 500);
}

/**
 * Turns an error of an X API call into what the activity should throw: refused rules and refused
 * credentials cannot fix themselves (non-retryable `XRuleError` with X's problems as details,
 * `XAuthError`); anything else is returned as it is, for the retry policy.
 */
export function classifyXError(err: unknown): unknown {
  if (err instanceof XRuleError)
    return ApplicationFailure.nonRetryable(err.message, XFailureType.rule, err.problems);
  if (err instanceof XAuthError) return ApplicationFailure.nonRetryable(err.message, XFailureType.auth);
  if (err instanceof XUsageCapError)
    return ApplicationFailure.nonRetryable(err.message, XFailureType.usageCap, { detail: err.detail });
  return err;
}
