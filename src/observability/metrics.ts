/**
 * Prometheus metrics of the pipeline (prom-client), served with the health endpoint. The Temporal
 * SDK's own runtime metrics are exported by the Rust core on its own port (see the README).
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const counter = (name: string, help: string, labelNames: string[] = []) =>
    new Counter({ name, help, labelNames, registers: [registry] });
  const gauge = (name: string, help: string, labelNames: string[] = []) =>
    new Gauge({ name, help, labelNames, registers: [registry] });
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
    streamConnected: gauge('x_stream_connected', '1 while the X stream is connected'),
    rowsLoaded: counter('bq_rows_loaded_total', 'Rows inserted into the posts table (ids not there yet)'),
    duplicatesSkipped: counter('bq_duplicates_skipped_total', 'Messages whose post id was already loaded'),
    deadLetters: counter('bq_dead_letters_total', 'Messages written to the dead-letter table', ['stage']),
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
    dqChecksFailed: counter('dq_checks_failed_total', 'Data-quality checks that failed', ['check', 'status']),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
