/**
 * `npm run dashboard`: parses the configuration once, connects to BigQuery and Temporal, makes sure the
 * views exist (best effort: the tables may not exist yet), and serves the live dashboard until SIGINT
 * or SIGTERM.
 */
import { createBigQueryClient } from '../adapters/bigquery/client';
import { ensureViews } from '../adapters/bigquery/views';
import { lazyClient } from '../adapters/temporal/connection';
import { createSupervisorStatus } from '../adapters/temporal/supervisor-status';
import { loadConfigOrExit } from '../config';
import { createLogger } from '../observability/logger';
import { startDashboard } from './server';

async function main(): Promise<void> {
  const config = loadConfigOrExit();
  const logger = createLogger({ level: config.logLevel, format: config.logFormat, name: 'dashboard' });
  const bigquery = createBigQueryClient(config.gcp);
  try {
    await ensureViews(bigquery, config.gcp, logger);
  } catch (err) {
    logger.warn({ err }, 'could not create the views yet; panels explain what is missing');
  }
  // Connection.lazy: the dashboard starts (and says so) even while Temporal is down.
  const client = lazyClient(config.temporal);
  const status = createSupervisorStatus({
    client,
    streamName: config.x.streamName,
    address: config.temporal.address,
  });
  const dashboard = await startDashboard({ bigquery, config, status, logger });
  logger.info({ url: dashboard.url, dataset: config.gcp.dataset }, `dashboard: ${dashboard.url}`);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'dashboard stopping');
    dashboard
      .close()
      .then(() => client.connection.close())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          logger.error({ err }, 'dashboard shutdown failed');
          process.exit(1);
        },
      );
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
}

main().catch((err: unknown) => {
  createLogger({ name: 'dashboard' }).fatal({ err }, 'dashboard failed to start');
  process.exit(1);
});
