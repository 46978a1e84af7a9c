/**
 * `npm run dashboard`: parses the configuration once, connects to BigQuery and Temporal, makes sure the
 * views exist (best effort: the tables may not exist yet), and serves the live dashboard until SIGINT
 * or SIGTERM.
 */
import { readFileSync } from 'node:fs';
import { Client, Connection, type ConnectionOptions } from '@temporalio/client';
import { createBigQueryClient } from '../adapters/bigquery/client';
import { ensureViews } from '../adapters/bigquery/views';
import { loadConfigOrExit, type AppConfig } from '../config';
import { createLogger } from '../observability/logger';
import { startDashboard } from './server';
import { createSupervisorStatus } from './supervisor-status';

function temporalConnectionOptions(t: AppConfig['temporal']): ConnectionOptions {
  const tls = t.tls
    ? {
        clientCertPair:
          t.tls.clientCertPath && t.tls.clientKeyPath
            ? { crt: readFileSync(t.tls.clientCertPath), key: readFileSync(t.tls.clientKeyPath) }
            : undefined,
        serverRootCACertificate: t.tls.caPath ? readFileSync(t.tls.caPath) : undefined,
      }
    : undefined;
  return {
    address: t.address,
    tls,
    apiKey: t.apiKey,
    metadata: t.apiKey ? { 'temporal-namespace': t.namespace } : undefined,
  };
}

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
  const connection = Connection.lazy(temporalConnectionOptions(config.temporal));
  const client = new Client({ connection, namespace: config.temporal.namespace });
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
      .then(() => connection.close())
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
