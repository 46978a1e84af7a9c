/**
 * Idempotent provisioning of the Pub/Sub resources, from the same configuration the workers use:
 * the posts topic, the pull subscription the load workflow drains, and a dead-letter topic (with its
 * own subscription so that nothing forwarded there is lost) for messages that fail delivery
 * `maxDeliveryAttempts` times. The load activity drains that subscription too (see
 * `createBatchSubscriber`'s `deadLetterSubscription`): a post that BigQuery could not take for a long
 * time still lands in `posts` once it can.
 */
import type { PubSub } from '@google-cloud/pubsub';
import type { GcpConfig } from '../../config';

/** gRPC ALREADY_EXISTS. */
const ALREADY_EXISTS = 6;

/** Ack deadline of the load subscription; the load activity extends it while a batch is in flight. */
export const SUBSCRIPTION_ACK_DEADLINE_SECONDS = 60;
export const MAX_DELIVERY_ATTEMPTS = 20;
/** Posts are retained for 7 days so a stopped load workflow loses nothing (Pub/Sub maximum). */
export const MESSAGE_RETENTION_SECONDS = 7 * 24 * 3600;

async function ignoreExists<T>(p: Promise<T>): Promise<void> {
  try {
    await p;
  } catch (err) {
    if ((err as { code?: number }).code !== ALREADY_EXISTS) throw err;
  }
}

export function deadLetterSubscriptionName(gcp: Pick<GcpConfig, 'deadLetterTopic'>): string {
  return `${gcp.deadLetterTopic}-sub`;
}

export async function ensurePubSubResources(
  pubsub: PubSub,
  gcp: Pick<GcpConfig, 'topic' | 'subscription' | 'deadLetterTopic'>,
): Promise<void> {
  await ignoreExists(pubsub.createTopic(gcp.topic));
  await ignoreExists(pubsub.createTopic(gcp.deadLetterTopic));
  await ignoreExists(
    pubsub.topic(gcp.deadLetterTopic).createSubscription(deadLetterSubscriptionName(gcp), {
      ackDeadlineSeconds: SUBSCRIPTION_ACK_DEADLINE_SECONDS,
      messageRetentionDuration: { seconds: MESSAGE_RETENTION_SECONDS },
    }),
  );
  await ignoreExists(
    pubsub.topic(gcp.topic).createSubscription(gcp.subscription, {
      ackDeadlineSeconds: SUBSCRIPTION_ACK_DEADLINE_SECONDS,
      messageRetentionDuration: { seconds: MESSAGE_RETENTION_SECONDS },
      deadLetterPolicy: {
        deadLetterTopic: pubsub.topic(gcp.deadLetterTopic).name,
        maxDeliveryAttempts: MAX_DELIVERY_ATTEMPTS,
      },
    }),
  );
}
