/**
 * Points this process at a private local stack (its own STACK_DIR and ports) unless the caller set
 * STACK_DIR, so a benchmark or chaos run neither disturbs nor is disturbed by the default stack that tests
 * use. Import it before anything that imports `dev/stack/manager` (LOCAL_DIR is read at import time).
 * `BENCH_SHARED_STACK=1` keeps the environment as it is (the default stack).
 */
import { join, resolve } from 'node:path';

export const PRIVATE_STACK: Record<string, string> = {
  STACK_DIR: join(resolve(__dirname, '../..'), '.local/bench'),
  TEMPORAL_ADDRESS: '127.0.0.1:37233',
  TEMPORAL_UI_PORT: '38233',
  TEMPORAL_UI_URL: 'http://127.0.0.1:38233',
  PUBSUB_EMULATOR_HOST: '127.0.0.1:38185',
  BIGQUERY_EMULATOR_HOST: 'http://127.0.0.1:39550',
  BIGQUERY_EMULATOR_GRPC_PORT: '39560',
  X_STANDIN_PORT: '38787',
  DASHBOARD_PORT: '38080',
  STREAM_WORKER_HEALTH_PORT: '39464',
  BATCH_WORKER_HEALTH_PORT: '39465',
};

// A caller that chose its own STACK_DIR chose its ports too; otherwise all of them are ours.
if (process.env.BENCH_SHARED_STACK !== '1' && !process.env.STACK_DIR) {
  Object.assign(process.env, PRIVATE_STACK);
}
