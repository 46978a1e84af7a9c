/**
 * Classification of Pub/Sub subscriber failures where the call is made (STYLE.md rule 4): permanent
 * ones become `ApplicationFailure.nonRetryable` with a type from `domain/failure-types.ts` and the
 * subscription; transient ones are rethrown as they are and retried by the activity's retry policy.
 * Only the adapters' classifiers and, for conditions of their own, the activities create an
 * `ApplicationFailure` (the decision is written out in `adapters/x/errors.ts`).
 */
import { ApplicationFailure } from '@temporalio/common';
import { PubSubFailureType } from '../../domain/failure-types';

/** The gRPC status codes the subscriber tells apart. */
export const GRPC = {
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  INVALID_ARGUMENT: 3,
  UNAUTHENTICATED: 16,
};

/** Permanent gRPC failures become non-retryable, naming the subscription; the rest are rethrown. */
export function classifyPubSubError(err: unknown, subscription: string, operation: string): Error {
  const code = (err as { code?: number })?.code;
  const message = `${operation} on ${subscription}: ${(err as Error)?.message ?? String(err)}`;
  const fail = (type: string, hint: string) =>
    ApplicationFailure.create({
      message: `${message}. ${hint}`,
      type,
      nonRetryable: true,
      details: [{ subscription, operation, code }],
      cause: err instanceof Error ? err : undefined,
    });
  if (code === GRPC.NOT_FOUND) {
    return fail(PubSubFailureType.notFound, 'Create the topic and subscription (`npm run setup`).');
  }
  if (code === GRPC.PERMISSION_DENIED || code === GRPC.UNAUTHENTICATED) {
    return fail(
      PubSubFailureType.permissionDenied,
      'Grant the worker roles/pubsub.subscriber on the subscription.',
    );
  }
  if (code === GRPC.INVALID_ARGUMENT) return fail(PubSubFailureType.invalid, 'This is a bug in the request.');
  return err instanceof Error ? err : new Error(message);
}
