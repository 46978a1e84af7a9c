/**
 * The shared life cycle of the worker processes: install the Temporal runtime (logs into pino,
 * metrics to Prometheus), connect, create the worker with the prebuilt workflow bundle when present,
 * serve health and metrics, and shut down gracefully on SIGTERM/SIGINT.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker, type WorkerOptions } from '@temporalio/worker';
import type { AppConfig } from '../config';
import type { Logger } from '../observability/logger';
import type { Metrics } from '../observability/metrics';
import { installTemporalRuntime } from '../observability/temporal-logging';
import { startHealthServer, type HealthServer } from './health-server';
import { connectWorker } from './temporal-connection';

/** The bundle `npm run build` writes; used in production so workers start without webpack. */
export const WORKFLOW_BUNDLE_PATH = join(__dirname, '../../workflow-bundle.js');

export function workflowSource(): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> {
  if (existsSync(WORKFLOW_BUNDLE_PATH)) return { workflowBundle: { codePath: WORKFLOW_BUNDLE_PATH } };
  return { workflowsPath: require.resolve('../workflows') };
}

export interface RunWorkerOptions {
  name: string;
  config: AppConfig;
  logger: Logger;
  metrics: Metrics;
  taskQueue: string;
  healthPort: number;
  activities: object;
  /** Aborted when shutdown begins (long-running activities listen to it). */
  shutdown: AbortController;
  /** Called after the worker stopped (close clients, flush publishers). */
  onStopped?: () => Promise<void>;
  maxConcurrentActivityTaskExecutions?: number;
}

export async function runWorker(opts: RunWorkerOptions): Promise<void> {
  const { config, logger } = opts;
  const sdkMetricsPort = opts.healthPort > 0 ? opts.healthPort + 100 : undefined;
  installTemporalRuntime(logger, {
    metricsBindAddress: sdkMetricsPort ? `127.0.0.1:${sdkMetricsPort}` : undefined,
  });
  const connection = await connectWorker(config.temporal);
  const worker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: opts.taskQueue,
    activities: opts.activities,
    ...workflowSource(),
    shutdownGraceTime: config.temporal.shutdownGraceMs,
    maxConcurrentActivityTaskExecutions: opts.maxConcurrentActivityTaskExecutions,
  });
  let health: HealthServer | undefined;
  health = await startHealthServer({
    host: config.ports.healthHost,
    port: opts.healthPort,
    registry: opts.metrics.registry,
    ready: () => worker.getState() === 'RUNNING',
    sdkMetricsUrl: sdkMetricsPort ? `http://127.0.0.1:${sdkMetricsPort}/metrics` : undefined,
  });
  logger.info(
    { taskQueue: opts.taskQueue, namespace: config.temporal.namespace, health: health.url },
    `${opts.name} started`,
  );

  let shuttingDown = false;
  const onSignal = (sig: NodeJS.Signals) => {
    // SIGINT and SIGTERM may both arrive (a terminal's Ctrl-C reaches the whole process group).
    if (shuttingDown) return;
    shuttingDown = true;
    logger.info({ signal: sig }, `${opts.name} shutting down gracefully`);
    opts.shutdown.abort();
    worker.shutdown();
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  try {
    await worker.run();
  } finally {
    await opts.onStopped?.().catch((err: unknown) => logger.error({ err }, 'error while stopping'));
    await connection.close();
    await health?.close();
    health = undefined;
    logger.info(`${opts.name} stopped`);
  }
}
