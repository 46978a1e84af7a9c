/**
 * `npm run setup` (and the image's `setup` command): provisions, idempotently and from the same
 * configuration the workers use, the Pub/Sub topic, subscription and dead-letter topic, and the
 * BigQuery dataset, tables and views. Safe to run on every deploy.
 */
import type { AppConfig } from '../config';
import { loadConfigOrExit } from '../config';
import { createBigQueryClient } from '../adapters/bigquery/client';
import { ensureTables } from '../adapters/bigquery/provision';
import { createBigQueryQualityStore } from '../adapters/bigquery/quality-queries';
import { ensureViews } from '../adapters/bigquery/views';
import { v1 } from '@google-cloud/pubsub';
import { ensurePubSubResources, pruneRetiredLanes } from '../adapters/pubsub/admin';
import { subscriberClientOptions } from '../adapters/pubsub/subscriber';
import { createPubSub } from '../adapters/pubsub/client';
import { createLogger, type Logger } from '../observability/logger';

export async function provision(
  config: AppConfig,
  logger: Logger,
  opts: { pruneLanes?: boolean } = {},
): Promise<void> {
  const pubsub = createPubSub(config.gcp);
  try {
    const lanes = config.load.lanes;
    const report = await ensurePubSubResources(pubsub, config.gcp, lanes);
    logger.info(
      { topic: config.gcp.topic, subscriptions: report.subscriptions, lanes },
      'Pub/Sub topic and lane subscriptions ready',
    );
    if (opts.pruneLanes) {
      const pruned = await pruneRetiredLanes(pubsub, config.gcp, lanes, (name) =>
        subscriptionIsEmpty(config, name),
      );
      logger.info(pruned, 'retired lane subscriptions pruned');
      if (pruned.notEmpty.length > 0) {
        throw new Error(
          `retired lane subscriptions still hold messages: ${pruned.notEmpty.join(', ')}; ` +
            'lane 0 of the running pipeline drains them; run `npm run setup -- --prune-lanes` again later',
        );
      }
    } else if (report.retired.length > 0) {
      logger.warn(
        { retired: report.retired },
        'subscriptions of retired load lanes are still attached: lane 0 drains them; once every ' +
          'stream worker runs with the new LOAD_LANES, remove them with `npm run setup -- --prune-lanes`',
      );
    }
  } finally {
    await pubsub.close();
  }
  const bq = createBigQueryClient(config.gcp);
  const report = await ensureTables(bq, config.gcp, logger);
  await createBigQueryQualityStore({ bq, gcp: config.gcp, logger }).ensureResultsTable();
  const views = await ensureViews(bq, config.gcp, logger);
  logger.info(
    {
      dataset: report.dataset,
      views: views.created.length + views.kept.length,
      viewsSkipped: views.skipped,
    },
    'BigQuery dataset, tables and views ready',
  );
}

/**
 * Whether a subscription holds no message it could deliver now: one short pull. A message found is
 * handed straight back (deadline 0). Messages leased by a running load batch are not seen; they are
 * loaded before their ack, so deleting the subscription under them loses nothing.
 */
async function subscriptionIsEmpty(config: AppConfig, subscription: string): Promise<boolean> {
  const client = new v1.SubscriberClient(subscriberClientOptions(config.gcp.pubsubEmulatorHost));
  try {
    const path = `projects/${config.gcp.projectId}/subscriptions/${subscription}`;
    const [res] = await client
      .pull({ subscription: path, maxMessages: 10 }, { timeout: 3000, retry: null as never })
      .catch((err: { code?: number }) => {
        if (err?.code === 4) return [{ receivedMessages: [] }]; // DEADLINE_EXCEEDED: nothing there
        throw err;
      });
    const ackIds = (res.receivedMessages ?? []).map((m) => m.ackId).filter((id): id is string => !!id);
    if (ackIds.length > 0)
      await client.modifyAckDeadline({ subscription: path, ackIds, ackDeadlineSeconds: 0 });
    return ackIds.length === 0;
  } finally {
    await client.close();
  }
}

if (require.main === module) {
  const config = loadConfigOrExit();
  const logger = createLogger({ level: config.logLevel, format: config.logFormat, name: 'setup' });
  provision(config, logger, { pruneLanes: process.argv.includes('--prune-lanes') }).then(
    () => logger.info('setup complete'),
    (err: unknown) => {
      logger.error({ err }, 'setup failed');
      process.exitCode = 1;
    },
  );
}
