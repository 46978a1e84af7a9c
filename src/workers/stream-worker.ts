/**
 * The stream worker: polls the stream task queue (supervisor workflow + stream activity), holds the
 * one X connection and publishes to Pub/Sub. One replica is enough: the workflow id guarantees one
 * stream per X app.
 */
import type { Client } from '@temporalio/client';
import { createStreamActivities } from '../activities/stream';
import { loadConfigOrExit, type AppConfig } from '../config';
import { createPubSub } from '../adapters/pubsub/client';
import { XRulesClient } from '../adapters/x/rules-client';
import { XStreamSource } from '../adapters/x/stream-source';
import { createLogger, type Logger } from '../observability/logger';
import { createMetrics } from '../observability/metrics';
import { progressSignal } from '../workflows/messages';
import { runWorker } from './run-worker';
import { connectClient } from './temporal-connection';

export function buildStreamActivities(
  config: AppConfig,
  logger: Logger,
  deps: { client: Client; metrics?: ReturnType<typeof createMetrics>; shutdownSignal?: AbortSignal },
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

async function main(): Promise<void> {
  const config = loadConfigOrExit();
  const logger = createLogger({ level: config.logLevel, format: config.logFormat, name: 'stream-worker' });
  if (!config.x.bearerToken) {
    logger.warn(
      'no X bearer token configured (X_BEARER_TOKEN / X_BEARER_TOKEN_FILE): the stream cannot connect',
    );
  }
  const metrics = createMetrics();
  const shutdown = new AbortController();
  const client = await connectClient(config.temporal);
  const built = buildStreamActivities(config, logger, { client, metrics, shutdownSignal: shutdown.signal });
  await runWorker({
    name: 'stream worker',
    config,
    logger,
    metrics,
    taskQueue: config.temporal.streamTaskQueue,
    healthPort: config.ports.streamWorkerHealth,
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
    process.stderr.write(`stream worker failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
