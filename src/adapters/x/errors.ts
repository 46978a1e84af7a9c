/**
 * Errors raised by the X adapters. None of them ever carries the bearer token: messages are built
 * from status codes and X's problem fields only.
 */

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
