/**
 * The shared life cycle of the worker processes: install the Temporal runtime (logs into pino,
 * metrics to Prometheus), connect, create the worker with the prebuilt workflow bundle when present,
 * serve health and metrics, and shut down gracefully on SIGTERM/SIGINT.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker, type WorkerOptions } from '@temporalio/worker';
import type { Client } from '@temporalio/client';
import { loadConfigOrExit, type AppConfig } from '../config';
import { createLogger, type Logger } from '../observability/logger';
import { createMetrics, type Metrics } from '../observability/metrics';
import { installTemporalRuntime } from '../observability/temporal-logging';
import { startHealthServer, type HealthServer } from './health-server';
import { connectClient, connectWorker } from '../adapters/temporal/connection';

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

export interface WorkerProcess {
  /** e.g. `stream worker`; the logger is named after it. */
  name: string;
  taskQueue: (config: AppConfig) => string;
  healthPort: (config: AppConfig) => number;
  /** The composition root: builds the adapters once and returns the activities. */
  build: (
    config: AppConfig,
    logger: Logger,
    deps: { client: Client; metrics: Metrics; shutdownSignal: AbortSignal },
  ) => { activities: object; close: () => Promise<void> };
  /** Start-up checks that only warn. */
  preflight?: (config: AppConfig, logger: Logger) => void;
}

/** A worker process's `main`: configuration once, a client for activities, the worker, clean exit. */
export function workerMain(proc: WorkerProcess): void {
  const run = async () => {
    const config = loadConfigOrExit();
    const logger = createLogger({
      level: config.logLevel,
      format: config.logFormat,
      name: proc.name.replace(/ /g, '-'),
    });
    proc.preflight?.(config, logger);
    const metrics = createMetrics();
    const shutdown = new AbortController();
    const client = await connectClient(config.temporal);
    const built = proc.build(config, logger, { client, metrics, shutdownSignal: shutdown.signal });
    await runWorker({
      name: proc.name,
      config,
      logger,
      metrics,
      taskQueue: proc.taskQueue(config),
      healthPort: proc.healthPort(config),
      activities: built.activities,
      shutdown,
      onStopped: async () => {
        await built.close();
        await client.connection.close();
      },
    });
  };
  run().catch((err: unknown) => {
    process.stderr.write(`${proc.name} failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
