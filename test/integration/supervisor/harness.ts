/**
 * What the supervisor's integration tests share: a Temporal client and worker connection to the
 * dev server, a workflow bundle, a Pub/Sub client, a stand-in-backed configuration on private
 * topic, subscription and task queues, and stream workers built by the real composition root.
 */
import type { PubSub } from '@google-cloud/pubsub';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker, bundleWorkflowCode } from '@temporalio/worker';
import { ensurePubSubResources } from '../../../src/adapters/pubsub/admin';
import { createPubSub } from '../../../src/adapters/pubsub/client';
import type { AppConfig } from '../../../src/config';
import type { PipelineStatus } from '../../../src/domain/pipeline-status';
import { createLogger } from '../../../src/observability/logger';
import { statusQuery } from '../../../src/workflows/messages';
import { buildStreamActivities } from '../../../src/workers/stream-worker';
import { testConfig, uniqueName } from '../../support/config';

export const logger = createLogger({ level: 'warn', format: 'json' });

export interface TemporalHarness {
  bundle: { code: string };
  pubsub: PubSub;
  client: Client;
  nativeConnection: NativeConnection;
}

/** Registers the suite's hooks; the object it returns is filled in before the first test. */
export function useTemporalHarness(): TemporalHarness {
  const h = {} as TemporalHarness;
  beforeAll(async () => {
    h.bundle = await bundleWorkflowCode({
      workflowsPath: require.resolve('../../../src/workflows'),
      logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} },
    });
    const base = testConfig();
    h.pubsub = createPubSub(base.gcp);
    h.client = new Client({
      connection: await Connection.connect({ address: base.temporal.address }),
      namespace: base.temporal.namespace,
    });
    h.nativeConnection = await NativeConnection.connect({ address: base.temporal.address });
  }, 180_000);
  afterAll(async () => {
    await h.nativeConnection?.close();
    await h.client?.connection.close();
    await h.pubsub?.close();
  });
  return h;
}

/** A configuration reading the stand-in at `standinUrl`, on its own topic and task queues. */
export async function streamTestConfig(
  h: TemporalHarness,
  prefix: string,
  standinUrl: string,
  env: Record<string, string> = {},
): Promise<{ name: string; config: AppConfig }> {
  const name = uniqueName(prefix);
  const config = testConfig({
    X_API_BASE_URL: standinUrl,
    X_BEARER_TOKEN: 'test-token',
    X_RULES: 'tesla#tesla',
    PUBSUB_TOPIC: `${name}-posts`,
    PUBSUB_SUBSCRIPTION: `${name}-sub`,
    PUBSUB_DEAD_LETTER_TOPIC: `${name}-dlq`,
    TEMPORAL_STREAM_TASK_QUEUE: `${name}-stream`,
    TEMPORAL_BATCH_TASK_QUEUE: `${name}-batch`,
    HEARTBEAT_INTERVAL_MS: '500',
    PROGRESS_REPORT_INTERVAL_MS: '300',
    PUBLISH_MAX_DELAY_MS: '10',
    X_STALL_TIMEOUT_MS: '3000',
    ...env,
  });
  await ensurePubSubResources(h.pubsub, config.gcp, config.load.lanes);
  return { name, config };
}

/**
 * A stream worker (supervisor, stream and gap-fill activities) on the config's stream task queue;
 * `metrics` is the registry its activities record into (default: their own).
 */
export async function startStreamWorker(
  h: TemporalHarness,
  config: AppConfig,
  opts: { metrics?: Parameters<typeof buildStreamActivities>[2]['metrics'] } = {},
): Promise<() => Promise<void>> {
  const shutdown = new AbortController();
  const built = buildStreamActivities(config, logger, {
    client: h.client,
    shutdownSignal: shutdown.signal,
    ...opts,
  });
  const worker = await Worker.create({
    connection: h.nativeConnection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.streamTaskQueue,
    workflowBundle: h.bundle,
    activities: built.activities,
  });
  const running = worker.run();
  return async () => {
    shutdown.abort();
    worker.shutdown();
    await running;
    await built.close();
  };
}

export const statusOf = (h: TemporalHarness, workflowId: string): Promise<PipelineStatus> =>
  h.client.workflow.getHandle(workflowId).query(statusQuery);
