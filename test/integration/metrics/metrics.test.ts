/**
 * `/metrics` scraped over HTTP from the workers' health server, on the real local stack: each metric
 * of issue #14 moves when its event happens. The load activity runs on the Pub/Sub and BigQuery
 * emulators (batch duration, end-to-end lag, the fallback backlog); the supervisor and a stream
 * worker built by the real composition root read the X stand-in on the Temporal dev server
 * (publish latency, read budget, open gaps, stream disconnected, paused by itself).
 */
import type { BigQuery } from '@google-cloud/bigquery';
import type { PubSub } from '@google-cloud/pubsub';
import { createLoadActivities } from '../../../src/activities/bigquery';
import { createBigQueryClient } from '../../../src/adapters/bigquery/client';
import { createBigQueryLoadSink } from '../../../src/adapters/bigquery/writer';
import { ensurePubSubResources } from '../../../src/adapters/pubsub/admin';
import { createPubSub } from '../../../src/adapters/pubsub/client';
import { createBatchSubscriber, type BatchSubscriber } from '../../../src/adapters/pubsub/subscriber';
import type { AppConfig } from '../../../src/config';
import { createMetrics, type Metrics } from '../../../src/observability/metrics';
import { startHealthServer, type HealthServer } from '../../../src/workers/health-server';
import { resumeSignal } from '../../../src/workflows/messages';
import { supervisorWorkflow } from '../../../src/workflows/supervisor';
import { startXStandin, type XStandin } from '../../../dev/x-api-standin/server';
import { eventually } from '../../support/eventually';
import { makePost, postMessage, privateConfig, publishAll } from '../bigquery/fixtures';
import {
  logger,
  startStreamWorker,
  statusOf,
  streamTestConfig,
  useTemporalHarness,
} from '../supervisor/harness';

jest.setTimeout(180_000);

/** One scrape: series (name plus labels, as exposed) → value. */
type Scrape = Map<string, number>;

async function scrape(server: HealthServer): Promise<Scrape> {
  const res = await fetch(`${server.url}/metrics`);
  expect(res.status).toBe(200);
  const out: Scrape = new Map();
  for (const line of (await res.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/** The sum of every series of `name` whose labels include `labels` (0 when there is none). */
function value(s: Scrape, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const [series, v] of s) {
    const brace = series.indexOf('{');
    if ((brace < 0 ? series : series.slice(0, brace)) !== name) continue;
    if (Object.entries(labels).every(([k, val]) => series.includes(`${k}="${val}"`))) total += v;
  }
  return total;
}

let metrics: Metrics;
let health: HealthServer;
beforeEach(async () => {
  metrics = createMetrics();
  health = await startHealthServer({
    host: '127.0.0.1',
    port: 0,
    registry: metrics.registry,
    ready: () => true,
  });
});
afterEach(async () => {
  await health.close();
});

describe('load batch on the emulators', () => {
  let config: AppConfig;
  let pubsub: PubSub;
  let bq: BigQuery;
  let subscriber: BatchSubscriber;
  beforeAll(async () => {
    config = privateConfig('it_metrics');
    pubsub = createPubSub(config.gcp);
    await ensurePubSubResources(pubsub, config.gcp);
    bq = createBigQueryClient(config.gcp);
    subscriber = createBatchSubscriber({ gcp: config.gcp, logger });
    await createBigQueryLoadSink({ bq, gcp: config.gcp, logger }).ensureTables();
  });
  afterAll(async () => {
    await subscriber?.close();
    await pubsub?.close();
  });

  it('moves batch duration, end-to-end lag and the fallback backlog', async () => {
    const sub = { subscription: config.gcp.subscription };
    const before = await scrape(health);
    expect(value(before, 'bq_load_batch_duration_seconds_count')).toBe(0);
    expect(value(before, 'bq_end_to_end_lag_seconds_count')).toBe(0);

    // Three posts received 20 s ago: each row's lag is at least that.
    const receivedAt = new Date(Date.now() - 20_000).toISOString();
    const posts = ['m1', 'm2', 'm3'].map((s) =>
      makePost(`${Date.now()}${s.slice(1)}`, { received_at: receivedAt }),
    );
    await publishAll(pubsub, config.gcp.topic, posts.map(postMessage));

    let during: Scrape | undefined;
    const load = createLoadActivities({
      subscriber,
      sink: createBigQueryLoadSink({ bq, gcp: config.gcp, logger }),
      logger,
      metrics,
      // Written but not acknowledged yet: the messages are leased and unacked.
      beforeAck: async () => {
        during = await scrape(health);
      },
    });
    let loaded = 0;
    while (loaded < posts.length) {
      const r = await load.loadBatch({ batchSize: 100, waitMs: 5000 });
      expect(r.pulled).toBeGreaterThan(0);
      loaded += r.rowsLoaded;
    }

    expect(value(during!, 'pubsub_messages_leased', sub)).toBeGreaterThan(0);
    expect(value(during!, 'pubsub_subscription_unacked_messages', sub)).toBe(
      value(during!, 'pubsub_messages_leased', sub),
    );
    const after = await scrape(health);
    const batches = value(after, 'bq_load_batch_duration_seconds_count');
    expect(batches).toBeGreaterThanOrEqual(1);
    expect(value(after, 'bq_load_batch_duration_seconds_sum')).toBeGreaterThan(0);
    expect(value(after, 'bq_end_to_end_lag_seconds_count')).toBe(3);
    expect(value(after, 'bq_end_to_end_lag_seconds_sum')).toBeGreaterThanOrEqual(3 * 20);
    // Under 20 s of lag: no row; all three by 120 s.
    expect(value(after, 'bq_end_to_end_lag_seconds_bucket', { le: '15' })).toBe(0);
    expect(value(after, 'bq_end_to_end_lag_seconds_bucket', { le: '120' })).toBe(3);
    expect(value(after, 'pubsub_messages_pulled_total', sub)).toBe(3);
    expect(value(after, 'pubsub_messages_acked_total', sub)).toBe(3);
    expect(value(after, 'pubsub_messages_leased', sub)).toBe(0);
    expect(value(after, 'pubsub_subscription_unacked_messages', sub)).toBe(0);
    expect(value(after, 'bq_rows_loaded_total')).toBe(3);
  });
});

describe('stream worker with the supervisor on the dev server', () => {
  const h = useTemporalHarness();
  let standin: XStandin | undefined;
  let stopWorker: (() => Promise<void>) | undefined;
  let workflowId: string | undefined;
  afterEach(async () => {
    if (workflowId)
      await h.client.workflow
        .getHandle(workflowId)
        .terminate('test cleanup')
        .catch(() => undefined);
    await stopWorker?.();
    await standin?.close();
  });

  it('moves publish latency, budget used, open gaps, stream running/connected and paused by itself', async () => {
    standin = await startXStandin({ rate: 40, seed: 7, keepAliveMs: 200, rules: [] });
    const { name, config } = await streamTestConfig(h, 'metrics', standin.url, {
      X_MONTHLY_POST_BUDGET: '1000000',
      LOAD_INTERVAL_MS: '12000',
    });
    stopWorker = await startStreamWorker(h, config, { metrics });

    const idle = await scrape(health);
    expect(value(idle, 'x_publish_latency_seconds_count', { source: 'stream' })).toBe(0);
    expect(value(idle, 'x_read_budget_month_posts')).toBe(0);
    expect(value(idle, 'x_load_interval_seconds')).toBe(12);

    workflowId = `x-ingest-${name}`;
    await h.client.workflow.start(supervisorWorkflow, {
      workflowId,
      taskQueue: config.temporal.streamTaskQueue,
      args: [{ streamName: name, children: { load: false, quality: false } }],
    });

    // Posts flow: publish latency is observed; the supervisor's budget count reaches the gauges.
    const flowing = await eventually(
      () => scrape(health),
      (s) =>
        value(s, 'x_publish_latency_seconds_count', { source: 'stream' }) >= 20 &&
        value(s, 'x_read_budget_month_posts') > 0 &&
        value(s, 'x_stream_connected') === 1,
    );
    expect(value(flowing, 'x_stream_running')).toBe(1);
    expect(value(flowing, 'x_read_budget_used_ratio')).toBeGreaterThan(0);
    expect(value(flowing, 'x_read_budget_used_ratio')).toBeLessThan(0.01);
    expect(value(flowing, 'x_publish_latency_seconds_sum')).toBeGreaterThan(0);
    expect(value(flowing, 'x_gaps_open')).toBe(0);

    // X drops the connection and refuses the reconnects: a gap opens, the stream is disconnected
    // while it still runs (what XStreamDisconnected watches).
    standin.setFaults({ dropAfterPosts: 0, unavailableConnects: 1000 });
    const gap = await eventually(
      () => scrape(health),
      (s) => value(s, 'x_gaps_open') >= 1 && value(s, 'x_stream_connected') === 0,
    );
    expect(value(gap, 'x_stream_running')).toBe(1);
    expect(value(gap, 'x_pipeline_paused_by_itself')).toBe(0);

    // The token is refused: a failure the supervisor does not retry pauses the pipeline by itself.
    standin.setFaults({ unavailableConnects: 0, unauthorizedConnects: 1000 });
    const paused = await eventually(
      () => scrape(health),
      (s) => value(s, 'x_pipeline_paused_by_itself', { reason: 'XAuthError' }) === 1,
    );
    expect(value(paused, 'x_stream_running')).toBe(0);
    await eventually(
      () => statusOf(h, workflowId!),
      (st) => st.state === 'paused',
    );

    // An operator fixed the token and resumed: the stream runs again and the alert clears.
    standin.setFaults({ unauthorizedConnects: 0 });
    await h.client.workflow.getHandle(workflowId).signal(resumeSignal);
    const resumed = await eventually(
      () => scrape(health),
      (s) => value(s, 'x_stream_connected') === 1,
    );
    expect(value(resumed, 'x_pipeline_paused_by_itself')).toBe(0);
    expect(value(resumed, 'x_stream_running')).toBe(1);
  });
});
