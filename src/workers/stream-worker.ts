/**
 * The stream worker: polls the stream task queue (supervisor workflow + stream activity), holds the
 * one X connection and publishes to Pub/Sub. One replica is enough: the workflow id guarantees one
 * stream per X app.
 */
import type { Client } from '@temporalio/client';
import { createStreamActivities } from '../activities/stream';
import type { AppConfig } from '../config';
import { createPubSub } from '../adapters/pubsub/client';
import { XRulesClient } from '../adapters/x/rules-client';
import { XStreamSource } from '../adapters/x/stream-source';
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
  const token = config.x.bearerToken;
  const xLogger = logger.child({ component: 'x' });
  const activities = createStreamActivities({
    config,
    logger: logger.child({ component: 'stream-activity' }),
    metrics: deps.metrics,
    pubsub,
    rulesClient: token
      ? new XRulesClient({ baseUrl: config.x.baseUrl, bearerToken: token, logger: xLogger })
      : undefined,
    createSource: () => {
      if (!token) throw new Error('no X bearer token configured: set X_BEARER_TOKEN or X_BEARER_TOKEN_FILE');
      return new XStreamSource({
        baseUrl: config.x.baseUrl,
        bearerToken: token,
        tweetFields: config.x.tweetFields,
        expansions: config.x.expansions,
        userFields: config.x.userFields,
        stallTimeoutMs: config.x.stallTimeoutMs,
        closeDrainMs: config.x.closeDrainMs,
        backfillMinutes: config.x.backfillMinutes,
        logger: xLogger,
      });
    },
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
