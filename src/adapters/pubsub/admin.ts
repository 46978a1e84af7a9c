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
import { laneFilter, laneSubscription, retiredSubscriptions } from '../../domain/lanes';

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

/** What `ensurePubSubResources` found: the lane subscriptions, and retired ones still attached. */
export interface PubSubReport {
  subscriptions: string[];
  retired: string[];
}

/**
 * Creates what is missing: the topics, the dead-letter subscription, and one subscription per load
 * lane (`domain/lanes.ts`; the unfiltered `PUBSUB_SUBSCRIPTION` with one lane). Never deletes: a
 * subscription of a retired lane is reported (lane 0 drains it; `pruneRetiredLanes` removes it).
 */
export async function ensurePubSubResources(
  pubsub: PubSub,
  gcp: Pick<GcpConfig, 'topic' | 'subscription' | 'deadLetterTopic'>,
  lanes = 1,
): Promise<PubSubReport> {
  await ignoreExists(pubsub.createTopic(gcp.topic));
  await ignoreExists(pubsub.createTopic(gcp.deadLetterTopic));
  await ignoreExists(
    pubsub.topic(gcp.deadLetterTopic).createSubscription(deadLetterSubscriptionName(gcp), {
      ackDeadlineSeconds: SUBSCRIPTION_ACK_DEADLINE_SECONDS,
      messageRetentionDuration: { seconds: MESSAGE_RETENTION_SECONDS },
    }),
  );
  const subscriptions: string[] = [];
  for (let lane = 0; lane < lanes; lane++) {
    const name = laneSubscription(gcp.subscription, lane, lanes);
    const filter = laneFilter(lane, lanes);
    await ignoreExists(
      pubsub.topic(gcp.topic).createSubscription(name, {
        ackDeadlineSeconds: SUBSCRIPTION_ACK_DEADLINE_SECONDS,
        messageRetentionDuration: { seconds: MESSAGE_RETENTION_SECONDS },
        deadLetterPolicy: {
          deadLetterTopic: pubsub.topic(gcp.deadLetterTopic).name,
          maxDeliveryAttempts: MAX_DELIVERY_ATTEMPTS,
        },
        ...(filter ? { filter } : {}),
      }),
    );
    subscriptions.push(name);
  }
  return { subscriptions, retired: await retiredLaneSubscriptions(pubsub, gcp, lanes) };
}

/** Subscriptions of the topic in this family that no current lane reads (see `domain/lanes.ts`). */
export async function retiredLaneSubscriptions(
  pubsub: PubSub,
  gcp: Pick<GcpConfig, 'topic' | 'subscription'>,
  lanes: number,
): Promise<string[]> {
  const [subs] = await pubsub.topic(gcp.topic).getSubscriptions();
  const names = subs.map((s) => s.name.slice(s.name.lastIndexOf('/') + 1));
  return retiredSubscriptions(names, gcp.subscription, lanes);
}

/**
 * Deletes the retired lane subscriptions that hold no message, and names the ones that still do
 * (lane 0 is still draining them). Run it only once every stream worker publishes with the new
 * LOAD_LANES: a message published to a retired subscription after the check would go with it.
 */
export async function pruneRetiredLanes(
  pubsub: PubSub,
  gcp: Pick<GcpConfig, 'topic' | 'subscription'>,
  lanes: number,
  isEmpty: (subscription: string) => Promise<boolean>,
): Promise<{ deleted: string[]; notEmpty: string[] }> {
  const deleted: string[] = [];
  const notEmpty: string[] = [];
  for (const name of await retiredLaneSubscriptions(pubsub, gcp, lanes)) {
    if (!(await isEmpty(name))) {
      notEmpty.push(name);
      continue;
    }
    await pubsub.subscription(name).delete();
    deleted.push(name);
  }
  return { deleted, notEmpty };
}

/** The lane subscriptions of `lanes` lanes that do not exist (`setup` has not run with this LOAD_LANES). */
export async function missingLaneSubscriptions(
  pubsub: PubSub,
  gcp: Pick<GcpConfig, 'subscription'>,
  lanes: number,
): Promise<string[]> {
  const missing: string[] = [];
  for (let lane = 0; lane < lanes; lane++) {
    const name = laneSubscription(gcp.subscription, lane, lanes);
    const [exists] = await pubsub.subscription(name).exists();
    if (!exists) missing.push(name);
  }
  return missing;
}
