/**
 * Points this process at a private local stack (its own STACK_DIR and ports) unless the caller set
 * STACK_DIR, so a benchmark or chaos run neither disturbs nor is disturbed by the default stack that tests
 * use. Import it before anything that imports `dev/stack/manager` (LOCAL_DIR is read at import time).
 * `BENCH_SHARED_STACK=1` keeps the environment as it is (the default stack).
 */
import { join, resolve } from 'node:path';

/** Ports below Linux's ephemeral range (32768-60999), which outgoing connections may hold. */
export const PRIVATE_STACK: Record<string, string> = {
  STACK_DIR: join(resolve(__dirname, '../..'), '.local/bench'),
  TEMPORAL_ADDRESS: '127.0.0.1:27233',
  TEMPORAL_UI_PORT: '28233',
  TEMPORAL_UI_URL: 'http://127.0.0.1:28233',
  PUBSUB_EMULATOR_HOST: '127.0.0.1:28185',
  BIGQUERY_EMULATOR_HOST: 'http://127.0.0.1:29550',
  BIGQUERY_EMULATOR_GRPC_PORT: '29560',
  X_STANDIN_PORT: '28787',
  DASHBOARD_PORT: '28080',
  STREAM_WORKER_HEALTH_PORT: '29464',
  BATCH_WORKER_HEALTH_PORT: '29465',
};

// A caller that chose its own STACK_DIR chose its ports too; otherwise all of them are ours.
if (process.env.BENCH_SHARED_STACK !== '1' && !process.env.STACK_DIR) {
  Object.assign(process.env, PRIVATE_STACK);
}
