/**
 * The batch worker: polls the batch task queue (load and data-quality workflows and activities).
 * Stateless; scale it horizontally (the HPA in k8s/ does). Each load activity holds one Pub/Sub
 * lease and one BigQuery write at a time.
 */
import type { Client } from '@temporalio/client';
import { createLoadActivities } from '../activities/bigquery';
import { createQualityActivities } from '../activities/quality';
import { loadConfigOrExit, type AppConfig } from '../config';
import { createBigQueryClient } from '../adapters/bigquery/client';
import { createBigQueryQualityStore } from '../adapters/bigquery/quality-queries';
import { createBigQueryLoadSink } from '../adapters/bigquery/writer';
import { createBatchSubscriber } from '../adapters/pubsub/subscriber';
import { createSupervisorCounters } from '../adapters/temporal/published-counts';
import { createWebhookAlerter } from '../adapters/webhook';
import { createLogger, type Logger } from '../observability/logger';
import { createMetrics, type Metrics } from '../observability/metrics';
import { runWorker } from './run-worker';
import { connectClient } from './temporal-connection';

export function buildBatchActivities(
  config: AppConfig,
  logger: Logger,
  deps: { client: Client; metrics?: Metrics },
) {
  const bq = createBigQueryClient(config.gcp);
  const subscriber = createBatchSubscriber({
    gcp: config.gcp,
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
    streamConnected: () => counters.streamConnected(),
    alert: config.dq.webhookUrl ? createWebhookAlerter(config.dq.webhookUrl) : undefined,
  });
  return { activities: { ...load, ...quality }, close: async () => subscriber.close?.() };
}

async function main(): Promise<void> {
  const config = loadConfigOrExit();
  const logger = createLogger({ level: config.logLevel, format: config.logFormat, name: 'batch-worker' });
  const metrics = createMetrics();
  const shutdown = new AbortController();
  const client = await connectClient(config.temporal);
  const built = buildBatchActivities(config, logger, { client, metrics });
  await runWorker({
    name: 'batch worker',
    config,
    logger,
    metrics,
    taskQueue: config.temporal.batchTaskQueue,
    healthPort: config.ports.batchWorkerHealth,
    activities: built.activities,
    shutdown,
    onStopped: async () => {
      await built.close();
      await client.connection.close();
    },
  });
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`batch worker failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
