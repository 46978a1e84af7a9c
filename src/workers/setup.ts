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
import { ensurePubSubResources } from '../adapters/pubsub/admin';
import { createPubSub } from '../adapters/pubsub/client';
import { createLogger, type Logger } from '../observability/logger';

export async function provision(config: AppConfig, logger: Logger): Promise<void> {
  const pubsub = createPubSub(config.gcp);
  try {
    await ensurePubSubResources(pubsub, config.gcp);
    logger.info(
      { topic: config.gcp.topic, subscription: config.gcp.subscription },
      'Pub/Sub topic and subscription ready',
    );
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

if (require.main === module) {
  const config = loadConfigOrExit();
  const logger = createLogger({ level: config.logLevel, format: config.logFormat, name: 'setup' });
  provision(config, logger).then(
    () => logger.info('setup complete'),
    (err: unknown) => {
      logger.error({ err }, 'setup failed');
      process.exitCode = 1;
    },
  );
}
