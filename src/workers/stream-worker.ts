/**
 * The stream worker: polls the stream task queue (supervisor workflow + stream activity), holds the
 * one X connection and publishes to Pub/Sub. One replica is enough: the workflow id guarantees one
 * stream per X app.
 */
import type { Client } from '@temporalio/client';
import { createStreamActivities } from '../activities/stream';
import type { AppConfig } from '../config';
import { createPubSub } from '../adapters/pubsub/client';
import { createXRulesClient } from '../adapters/x/rules-client';
import { createXStreamSource } from '../adapters/x/stream-source';
import type { Logger } from '../observability/logger';
import type { Metrics } from '../observability/metrics';
import { progressSignal } from '../workflows/messages';
import { workerMain } from './run-worker';

export function buildStreamActivities(
  config: AppConfig,
  logger: Logger,
  deps: { client: Client; metrics?: Metrics; shutdownSignal?: AbortSignal },
) {
  const pubsub = createPubSub(config.gcp);
  const xLogger = logger.child({ component: 'x' });
  const activities = createStreamActivities({
    config,
    logger: logger.child({ component: 'stream-activity' }),
    metrics: deps.metrics,
    pubsub,
    // Without a token the rule activities fail with a non-retryable XAuthError naming the setting.
    rulesClient: config.x.bearerToken ? createXRulesClient(config.x, xLogger) : undefined,
    createSource: () => createXStreamSource(config.x, xLogger),
    reportProgress: (workflowId, report) =>
      deps.client.workflow.getHandle(workflowId).signal(progressSignal, report),
    shutdownSignal: deps.shutdownSignal,
  });
  return { activities, close: () => pubsub.close() };
}

if (require.main === module) {
  workerMain({
    name: 'stream worker',
    taskQueue: (c) => c.temporal.streamTaskQueue,
    healthPort: (c) => c.ports.streamWorkerHealth,
    build: (config, logger, deps) => buildStreamActivities(config, logger, deps),
    preflight: (config, logger) => {
      if (!config.x.bearerToken) {
        logger.warn(
          'no X bearer token configured (X_BEARER_TOKEN / X_BEARER_TOKEN_FILE): the stream cannot connect',
        );
      }
    },
  });
}
