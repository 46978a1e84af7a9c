/**
 * The `type` of every `ApplicationFailure` the pipeline raises, in one sandbox-safe module: the
 * adapters' error classifiers and the activities set them, the workflows name them in their retry
 * policies (`nonRetryableErrorTypes`) instead of repeating string literals. The values are part of
 * the contract (they appear in the Web UI, in histories and in alerts): never rename one.
 */

/** BigQuery calls (`adapters/bigquery/errors.ts`). */
export const BigQueryFailureType = {
  permissionDenied: 'BigQueryPermissionDenied',
  notFound: 'BigQueryNotFound',
  invalid: 'BigQueryInvalidRequest',
  breakingSchemaChange: 'BigQueryBreakingSchemaChange',
  /** Retryable: another attempt overwrote the staging slot between this one's load and insert. */
  stagingOverwritten: 'BigQueryStagingOverwritten',
} as const;
export type BigQueryFailureType = (typeof BigQueryFailureType)[keyof typeof BigQueryFailureType];

/** Pub/Sub subscriber calls (`adapters/pubsub/subscriber.ts`). */
export const PubSubFailureType = {
  notFound: 'PubSubNotFound',
  permissionDenied: 'PubSubPermissionDenied',
  invalid: 'PubSubInvalidRequest',
} as const;
export type PubSubFailureType = (typeof PubSubFailureType)[keyof typeof PubSubFailureType];

/** X API calls (`adapters/x/errors.ts`). */
export const XFailureType = {
  /** X refused a rule (or the supervisor's `setRules` update rejects with X's reason). */
  rule: 'XRuleError',
  /** X refused the bearer token, or none is configured. */
  auth: 'XAuthError',
  /** X's usage cap is reached or the app's credits are spent (HTTP 429 `usage-capped`, HTTP 402). */
  usageCap: 'XUsageCapped',
} as const;
export type XFailureType = (typeof XFailureType)[keyof typeof XFailureType];

/** The stream worker is shutting down (retryable: another worker picks the stream up). */
export const WORKER_SHUTDOWN_FAILURE_TYPE = 'WorkerShutdown';

/**
 * The message of the innermost cause of a failure: an ActivityFailure or ChildWorkflowFailure says
 * "activity task failed"; its cause says what happened (X's reason, the table, the rule).
 */
export function causeMessage(err: unknown): string {
  let e: unknown = err;
  while (e && typeof e === 'object' && 'cause' in e && (e as { cause?: unknown }).cause) {
    e = (e as { cause: unknown }).cause;
  }
  return e instanceof Error ? e.message : String(e);
}

/** The `type` of the innermost ApplicationFailure in a failure's cause chain, if any. */
export function causeType(err: unknown): string | undefined {
  let type: string | undefined;
  for (let e: unknown = err; e && typeof e === 'object'; e = (e as { cause?: unknown }).cause) {
    const t = (e as { type?: unknown }).type;
    if (typeof t === 'string') type = t;
  }
  return type;
}

/** Thrown (non-retryable) by a load attempt whose lane a newer attempt claimed: it wrote nothing. */
export const LOAD_ATTEMPT_SUPERSEDED = 'LoadAttemptSuperseded';
