/**
 * The batch worker: polls the batch task queue (load and data-quality workflows and activities).
 * Stateless; scale it horizontally (the HPA in k8s/ does). Each load activity holds one Pub/Sub
 * lease and one BigQuery write at a time.
 */
import type { Client } from '@temporalio/client';
import { createLoadActivities } from '../activities/bigquery';
import { createQualityActivities } from '../activities/quality';
import type { AppConfig } from '../config';
import { createBigQueryClient } from '../adapters/bigquery/client';
import { createBigQueryQualityStore } from '../adapters/bigquery/quality-queries';
import { createBigQueryLoadSink } from '../adapters/bigquery/writer';
import { deadLetterSubscriptionName } from '../adapters/pubsub/admin';
import { createBatchSubscriber } from '../adapters/pubsub/subscriber';
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
  const subscriber = createBatchSubscriber({
    gcp: config.gcp,
    deadLetterSubscription: deadLetterSubscriptionName(config.gcp),
    logger: logger.child({ component: 'subscriber' }),
  });
  const load = createLoadActivities({
    subscriber,
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
  });
  return { activities: { ...load, ...quality }, close: async () => subscriber.close?.() };
}

if (require.main === module) {
  workerMain({
    name: 'batch worker',
    taskQueue: (c) => c.temporal.batchTaskQueue,
    healthPort: (c) => c.ports.batchWorkerHealth,
    build: (config, logger, deps) => buildBatchActivities(config, logger, deps),
  });
}
