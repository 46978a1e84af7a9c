/**
 * Prometheus metrics of the pipeline (prom-client), served with the health endpoint. The Temporal
 * SDK's own runtime metrics are exported by the Rust core on its own port (see the README).
 *
 * The alert rules in `k8s/base/alert-rules.yaml` may only name metrics created here (the deploy
 * tests check it against this registry).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Publish latency (received → Pub/Sub acknowledged): milliseconds to tens of seconds. */
const PUBLISH_LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** One load batch (pull, validate, write, audit, ack): a second to minutes. */
const LOAD_DURATION_BUCKETS = [0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300];
/** Received → queryable: about the load interval (default 30 s) when healthy; up to an hour. */
const LAG_BUCKETS = [1, 2.5, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1800, 3600];
/**
 * A message pulled and not acknowledged is forgotten by the backlog gauge after this long: another
 * batch worker replica may have acknowledged its redelivery.
 */
const UNACKED_FORGET_MS = 15 * 60_000;

/**
 * The fallback subscription backlog: real Pub/Sub exposes `num_undelivered_messages` only through
 * Cloud Monitoring and the emulator not at all, so the loader counts what it sees itself: messages
 * pulled vs acknowledged per subscription, the ones leased in a batch now, and the distinct messages
 * pulled and not acknowledged yet (leased, or handed back by a failed batch until a later pull acks them).
 */
function subscriptionMeter(registry: Registry) {
  const labelNames = ['subscription'];
  const registers = [registry];
  const pulled = new Counter({
    name: 'pubsub_messages_pulled_total',
    help: 'Messages the loader pulled (redeliveries included), by subscription',
    labelNames,
    registers,
  });
  const acked = new Counter({
    name: 'pubsub_messages_acked_total',
    help: 'Messages the loader acknowledged after writing them, by subscription',
    labelNames,
    registers,
  });
  const leased = new Gauge({
    name: 'pubsub_messages_leased',
    help: 'Messages pulled and held in a batch being written now (neither acknowledged nor handed back)',
    labelNames,
    registers,
  });
  const backlog = new Gauge({
    name: 'pubsub_subscription_unacked_messages',
    help: 'Distinct messages this worker pulled and has not acknowledged yet (the backlog fallback where num_undelivered_messages is not available)',
    labelNames,
    registers,
  });
  /** Message id → (subscription, when first pulled), for the distinct unacked count. */
  const unacked = new Map<string, { subscription: string; at: number }>();
  const recount = (now: number) => {
    const counts = new Map<string, number>();
    for (const [id, u] of unacked) {
      if (now - u.at > UNACKED_FORGET_MS) unacked.delete(id);
      else counts.set(u.subscription, (counts.get(u.subscription) ?? 0) + 1);
    }
    backlog.reset();
    for (const [subscription, n] of counts) backlog.set({ subscription }, n);
  };
  type Message = { messageId: string; subscription?: string };
  const bySubscription = (messages: Message[], fallback: string) => {
    const out = new Map<string, Message[]>();
    for (const m of messages) {
      const s = m.subscription ?? fallback;
      const list = out.get(s);
      if (list) list.push(m);
      else out.set(s, [m]);
    }
    return out;
  };
  return {
    /** A batch was pulled and leased. */
    pulled(messages: Message[], fallback = 'unknown', now = Date.now()): void {
      for (const [subscription, ms] of bySubscription(messages, fallback)) {
        pulled.inc({ subscription }, ms.length);
        leased.inc({ subscription }, ms.length);
        for (const m of ms)
          if (!unacked.has(m.messageId)) unacked.set(m.messageId, { subscription, at: now });
      }
      recount(now);
    },
    /** The batch was written and acknowledged (`acked`) or handed back for redelivery. */
    settled(
      messages: Message[],
      outcome: 'acked' | 'released',
      fallback = 'unknown',
      now = Date.now(),
    ): void {
      for (const [subscription, ms] of bySubscription(messages, fallback)) {
        leased.dec({ subscription }, ms.length);
        if (outcome === 'acked') {
          acked.inc({ subscription }, ms.length);
          for (const m of ms) unacked.delete(m.messageId);
        }
      }
      recount(now);
    },
  };
}

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const counter = (name: string, help: string, labelNames: string[] = []) =>
    new Counter({ name, help, labelNames, registers: [registry] });
  const gauge = (name: string, help: string, labelNames: string[] = []) =>
    new Gauge({ name, help, labelNames, registers: [registry] });
  const histogram = (name: string, help: string, buckets: number[], labelNames: string[] = []) =>
    new Histogram({ name, help, buckets, labelNames, registers: [registry] });
  return {
    registry,
    postsReceived: counter('x_posts_received_total', 'Posts received from the X stream'),
    postsPublished: counter('x_posts_published_total', 'Posts acknowledged by Pub/Sub'),
    malformedMessages: counter('x_malformed_messages_total', 'Stream lines that could not be normalised'),
    reconnects: counter('x_stream_reconnects_total', 'Stream reconnects by reason', ['reason']),
    publishBackpressure: counter(
      'x_publish_backpressure_total',
      'Times the reader paused because Pub/Sub publishes were outstanding',
    ),
    publishErrors: counter('x_publish_errors_total', 'Failed publish attempts'),
    publishLatency: histogram(
      'x_publish_latency_seconds',
      'Post received (its received_at) → Pub/Sub acknowledged the publish, by source (stream or gap-fill)',
      PUBLISH_LATENCY_BUCKETS,
      ['source'],
    ),
    streamConnected: gauge('x_stream_connected', '1 while the X stream is connected'),
    streamRunning: gauge(
      'x_stream_running',
      '1 while the stream activity runs (the supervisor wants the stream: not paused, not held)',
    ),
    pausedByItself: gauge(
      'x_pipeline_paused_by_itself',
      '1 while the supervisor holds the stream because of a failure it cannot retry (reason: the failure type) or the read budget / X usage cap',
      ['reason'],
    ),
    loadIntervalSeconds: gauge(
      'x_load_interval_seconds',
      'LOAD_INTERVAL_MS of the pipeline in seconds (the stream worker resolves it for the load workflow)',
    ),
    gapsOpen: gauge(
      'x_gaps_open',
      "Gaps not filled yet: the stream's open gap, closed gaps not yet reported, and the supervisor's gaps waiting for or in gap fill",
    ),
    rowsLoaded: counter('bq_rows_loaded_total', 'Rows inserted into the posts table (ids not there yet)'),
    duplicatesSkipped: counter('bq_duplicates_skipped_total', 'Messages whose post id was already loaded'),
    deadLetters: counter('bq_dead_letters_total', 'Messages written to the dead-letter table', ['stage']),
    loadBatchDuration: histogram(
      'bq_load_batch_duration_seconds',
      'Duration of a load batch that pulled messages (pull, validate, write, audit row, ack)',
      LOAD_DURATION_BUCKETS,
    ),
    endToEndLag: histogram(
      'bq_end_to_end_lag_seconds',
      'Post received (received_at) → its batch written to BigQuery and acknowledged (queryable), per row',
      LAG_BUCKETS,
    ),
    subscription: subscriptionMeter(registry),
    gapSearchPosts: counter(
      'x_gap_search_posts_total',
      'Posts read by search to fill stream gaps (margins included), by endpoint',
      ['endpoint'],
    ),
    gapsFilled: counter('x_gaps_filled_total', 'Gaps searched, by outcome (filled or unrecoverable)', [
      'state',
    ]),
    budgetWarnings: counter(
      'x_read_budget_warnings_total',
      'Read-budget warnings raised (level 80 or 100 percent, or X usage cap)',
      ['level'],
    ),
    budgetUsedRatio: gauge('x_read_budget_used_ratio', 'Posts read this month / X_MONTHLY_POST_BUDGET'),
    budgetMonthPosts: gauge(
      'x_read_budget_month_posts',
      "Posts read from X this UTC month (stream and search), the supervisor's count",
    ),
    dqChecksFailed: counter('dq_checks_failed_total', 'Data-quality checks that failed', ['check', 'status']),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
