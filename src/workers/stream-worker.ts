/**
 * The stream worker: polls the stream task queue (supervisor workflow, stream activity, gap-fill
 * and compliance workflows and activities), holds the one X connection and the X token, and
 * publishes to Pub/Sub. One replica is enough: the workflow id guarantees one stream per X app.
 * The compliance activities call X (the token is only here) and BigQuery (the GCP configuration is
 * here too), so the post ids of a compliance job never leave this worker.
 */
import type { Client } from '@temporalio/client';
import { createComplianceActivities } from '../activities/compliance';
import { createGapFillActivities } from '../activities/gap-fill';
import { createStreamActivities } from '../activities/stream';
import type { AppConfig } from '../config';
import { createBigQueryClient } from '../adapters/bigquery/client';
import { createComplianceStore } from '../adapters/bigquery/compliance';
import { createPubSub } from '../adapters/pubsub/client';
import { XComplianceClient } from '../adapters/x/compliance-client';
import { createXRulesClient } from '../adapters/x/rules-client';
import { XSearchClient } from '../adapters/x/search-client';
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
  // Without a token the rule and gap-fill activities fail with a non-retryable XAuthError naming
  // the setting; the worker itself starts.
  const rulesClient = config.x.bearerToken ? createXRulesClient(config.x, xLogger) : undefined;
  const { bearerToken } = config.x;
  const searchClient = bearerToken
    ? new XSearchClient({
        baseUrl: config.x.baseUrl,
        bearerToken,
        tweetFields: config.x.tweetFields,
        expansions: config.x.expansions,
        userFields: config.x.userFields,
      })
    : undefined;
  const complianceClient = bearerToken
    ? new XComplianceClient({ baseUrl: config.x.baseUrl, bearerToken })
    : undefined;
  const activities = {
    ...createStreamActivities({
      config,
      logger: logger.child({ component: 'stream-activity' }),
      metrics: deps.metrics,
      pubsub,
      rulesClient,
      createSource: () => createXStreamSource(config.x, xLogger),
      reportProgress: (workflowId, report) =>
        deps.client.workflow.getHandle(workflowId).signal(progressSignal, report),
      shutdownSignal: deps.shutdownSignal,
    }),
    ...createGapFillActivities({
      config,
      logger: logger.child({ component: 'gap-fill-activity' }),
      metrics: deps.metrics,
      pubsub,
      rulesClient,
      createSearchClient: () => searchClient,
      shutdownSignal: deps.shutdownSignal,
    }),
    ...createComplianceActivities({
      settings: config.compliance,
      logger: logger.child({ component: 'compliance-activity' }),
      store: createComplianceStore(
        createBigQueryClient(config.gcp),
        config.gcp,
        logger.child({ component: 'compliance-bigquery' }),
      ),
      createClient: () => complianceClient,
    }),
  };
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
