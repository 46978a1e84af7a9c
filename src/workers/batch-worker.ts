/**
 * The batch worker: polls the batch task queue (load and data-quality workflows and activities).
 * Stateless; scale it horizontally (the HPA in k8s/ does). Each load activity holds one Pub/Sub
 * lease and one BigQuery write at a time.
 */
import type { Client } from '@temporalio/client';
import { createLoadActivities } from '../activities/bigquery';
import { createQualityActivities } from '../activities/quality';
import { createReplayActivities } from '../activities/replay';
import type { AppConfig } from '../config';
import { createBigQueryClient } from '../adapters/bigquery/client';
import { createBigQueryDeadLetterStore } from '../adapters/bigquery/dead-letters';
import { createBigQueryQualityStore } from '../adapters/bigquery/quality-queries';
import { repairDuplicates } from '../adapters/bigquery/repair';
import { createBigQueryLoadSink } from '../adapters/bigquery/writer';
import { v1 } from '@google-cloud/pubsub';
import { deadLetterSubscriptionName, retiredLaneSubscriptions } from '../adapters/pubsub/admin';
import { createPubSub } from '../adapters/pubsub/client';
import {
  createBatchSubscriber,
  subscriberClientOptions,
  type BatchSubscriber,
} from '../adapters/pubsub/subscriber';
import { laneSubscription } from '../domain/lanes';
import { createSupervisorCounters } from '../adapters/temporal/published-counts';
import { createWebhookAlerter } from '../adapters/webhook';
import type { Logger } from '../observability/logger';
import type { Metrics } from '../observability/metrics';
import { workerMain } from './run-worker';

export function buildBatchActivities(
  config: AppConfig,
  logger: Logger,
  deps: { client: Client; metrics?: Metrics },
) {
  const bq = createBigQueryClient(config.gcp);
  const lanes = createLaneSubscribers(config, logger);
  const load = createLoadActivities({
    subscriber: lanes.subscriberFor,
    sink: createBigQueryLoadSink({ bq, gcp: config.gcp, logger: logger.child({ component: 'bigquery' }) }),
    logger: logger.child({ component: 'load-activity' }),
    metrics: deps.metrics,
  });
  const counters = createSupervisorCounters(deps.client, config.x.streamName, { logger });
  const quality = createQualityActivities({
    store: createBigQueryQualityStore({
      bq,
      gcp: config.gcp,
      logger: logger.child({ component: 'quality' }),
    }),
    logger: logger.child({ component: 'quality-activity' }),
    metrics: deps.metrics,
    publishedCounts: (from, to) => counters.publishedCounts(from, to),
    streamConnected: (since) => counters.streamConnected(since),
    pipelineStartedAt: () => counters.pipelineStartedAt(),
    alert: config.dq.webhookUrl ? createWebhookAlerter(config.dq.webhookUrl) : undefined,
    checks: config.dq.checks,
    repair: (opts) => repairDuplicates(bq, config.gcp, opts, logger.child({ component: 'repair' })),
  });
  const replay = createReplayActivities({
    store: createBigQueryDeadLetterStore({ bq, gcp: config.gcp }),
    sink: createBigQueryLoadSink({ bq, gcp: config.gcp, logger: logger.child({ component: 'bigquery' }) }),
    logger: logger.child({ component: 'replay-activity' }),
    metrics: deps.metrics,
  });
  return { activities: { ...load, ...quality, ...replay }, close: lanes.close };
}

/** How long lane 0 trusts its list of retired lane subscriptions before listing the topic's again. */
const RETIRED_LIST_TTL_MS = 60_000;

/**
 * One subscriber per load lane, sharing one gRPC client. Lane 0 also drains the dead-letter
 * subscription and every retired lane subscription (`domain/lanes.ts`); the others read only their own.
 */
function createLaneSubscribers(config: AppConfig, logger: Logger) {
  const client = new v1.SubscriberClient(subscriberClientOptions(config.gcp.pubsubEmulatorHost));
  const pubsub = createPubSub(config.gcp);
  const log = logger.child({ component: 'subscriber' });
  const byLane = new Map<string, BatchSubscriber>();
  let retired: { names: string[]; at: number } | undefined;
  const retiredNow = async (lanes: number): Promise<string[]> => {
    if (!retired || Date.now() - retired.at > RETIRED_LIST_TTL_MS) {
      try {
        retired = { names: await retiredLaneSubscriptions(pubsub, config.gcp, lanes), at: Date.now() };
        if (retired.names.length > 0)
          log.warn({ retired: retired.names }, 'retired lane subscriptions attached');
      } catch (err) {
        log.warn({ err }, 'could not list the topic subscriptions; retired lanes are not drained this time');
        return retired?.names ?? [];
      }
    }
    return retired.names;
  };
  return {
    subscriberFor(lane: number, lanes: number): BatchSubscriber {
      const key = `${lane}/${lanes}`;
      let sub = byLane.get(key);
      if (!sub) {
        sub = createBatchSubscriber({
          gcp: config.gcp,
          client,
          subscription: laneSubscription(config.gcp.subscription, lane, lanes),
          lane: { lane, lanes },
          ...(lane === 0
            ? {
                deadLetterSubscription: deadLetterSubscriptionName(config.gcp),
                extraSubscriptions: () => retiredNow(lanes),
              }
            : {}),
          logger: log.child({ lane }),
        });
        byLane.set(key, sub);
      }
      return sub;
    },
    async close() {
      await client.close();
      await pubsub.close();
    },
  };
}

if (require.main === module) {
  workerMain({
    name: 'batch worker',
    taskQueue: (c) => c.temporal.batchTaskQueue,
    healthPort: (c) => c.ports.batchWorkerHealth,
    build: (config, logger, deps) => buildBatchActivities(config, logger, deps),
  });
}
