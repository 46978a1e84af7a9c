/**
 * Global setup of the `integration` and `e2e` jest projects: starts the real local stack (or reuses
 * a running one), provisions the default resources, and exports the stack's addresses in
 * `process.env` so every test file (and `testConfig()`) talks to it.
 */
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/observability/logger';
import { provision } from '../../src/workers/setup';
import { restartBigQuery, stackUp } from '../../dev/stack/manager';

export default async function globalSetup(): Promise<void> {
  // Every test file starts the emulator on an empty database anyway (ensure-stack.ts); start the
  // run that way too, so a database a long demo left behind (near the emulator's heap limit) cannot
  // fail the provisioning below.
  const up = await stackUp({ freshBigQuery: true });
  Object.assign(process.env, up.env);
  if (up.reused.includes('bigquery')) await restartBigQuery({ fresh: true });
  await provision(loadConfig(process.env), createLogger({ level: 'warn', format: 'json' }));
}
