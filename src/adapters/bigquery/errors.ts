/**
 * Classification of BigQuery failures where the call is made (STYLE.md rule 4): permanent ones become
 * `ApplicationFailure.nonRetryable` with a `type` and the table; transient ones are rethrown as they
 * are and retried by the activity's retry policy (exponential back-off). Only the adapters'
 * classifiers and, for conditions of their own, the activities create an `ApplicationFailure` (the
 * decision is written out in `adapters/x/errors.ts`).
 */
import { ApplicationFailure } from '@temporalio/common';
import { BigQueryFailureType } from '../../domain/failure-types';

/** Every failure names the operation and the table it concerns. */
export interface BigQueryErrorContext {
  operation: string;
  table: string;
}

interface ApiErrorLike {
  code?: number | string;
  message?: string;
  errors?: { reason?: string; message?: string }[];
}

const TRANSIENT_REASONS = new Set([
  'backendError',
  'internalError',
  'rateLimitExceeded',
  'quotaExceeded',
  'jobRateLimitExceeded',
  'tableUnavailable',
  'timeout',
]);
const PERMISSION_REASONS = new Set(['accessDenied', 'forbidden', 'unauthorized', 'billingNotEnabled']);

const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENOTFOUND']);

/** The reasons of an API error (`errors[].reason`), deduplicated. */
export function reasonsOf(err: unknown): string[] {
  const e = err as ApiErrorLike;
  return [...new Set((e?.errors ?? []).map((x) => x.reason).filter((r): r is string => !!r))];
}

/** Is this worth retrying? Network errors, 5xx, 429 and the documented transient reasons are. */
export function isTransientBigQueryError(err: unknown): boolean {
  const e = err as ApiErrorLike;
  if (typeof e?.code === 'string' && NETWORK_CODES.has(e.code)) return true;
  const reasons = reasonsOf(err);
  if (reasons.some((r) => TRANSIENT_REASONS.has(r))) return true;
  if (reasons.some((r) => PERMISSION_REASONS.has(r))) return false;
  const status = typeof e?.code === 'number' ? e.code : undefined;
  if (status === undefined) return true; // unknown shape: let the retry policy decide
  // The emulator reports some internal conflicts (e.g. a job id already created) as 500.
  return status === 408 || status === 429 || status >= 500;
}

/** Turns an error from a BigQuery call into what the activity should throw. */
export function classifyBigQueryError(err: unknown, ctx: BigQueryErrorContext): Error {
  if (err instanceof ApplicationFailure) return err;
  const e = err as ApiErrorLike;
  const message = e?.message ?? String(err);
  const where = `${ctx.operation} on ${ctx.table}`;
  const reasons = reasonsOf(err);
  const details = [{ table: ctx.table, operation: ctx.operation, status: e?.code ?? null, reasons }];
  if (e?.code === 401 || e?.code === 403 || reasons.some((r) => PERMISSION_REASONS.has(r))) {
    if (!reasons.some((r) => TRANSIENT_REASONS.has(r))) {
      return ApplicationFailure.create({
        message: `${where}: permission denied (${message}). Grant the worker's service account roles/bigquery.dataEditor on the dataset and roles/bigquery.jobUser on the project.`,
        type: BigQueryFailureType.permissionDenied,
        nonRetryable: true,
        details,
        cause: err instanceof Error ? err : undefined,
      });
    }
  }
  if (e?.code === 404 || reasons.includes('notFound')) {
    return ApplicationFailure.create({
      message: `${where}: not found (${message}). Run \`npm run setup\` or let the batch worker provision the dataset and tables.`,
      type: BigQueryFailureType.notFound,
      nonRetryable: true,
      details,
      cause: err instanceof Error ? err : undefined,
    });
  }
  if (isTransientBigQueryError(err)) {
    return err instanceof Error ? err : new Error(`${where}: ${message}`);
  }
  return ApplicationFailure.create({
    message: `${where}: rejected (${message})`,
    type: BigQueryFailureType.invalid,
    nonRetryable: true,
    details,
    cause: err instanceof Error ? err : undefined,
  });
}

/** A breaking schema difference: fails the activity for good, with what to do. */
export function breakingSchemaFailure(table: string, problems: string[], advice: string): ApplicationFailure {
  return ApplicationFailure.create({
    message: `${problems.join('; ')}. ${advice}`,
    type: BigQueryFailureType.breakingSchemaChange,
    nonRetryable: true,
    details: [{ table, problems }],
  });
}
