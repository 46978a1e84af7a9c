/**
 * Global setup of the `integration` and `e2e` jest projects: starts the real local stack (or reuses
 * a running one), provisions the default resources, and exports the stack's addresses in
 * `process.env` so every test file (and `testConfig()`) talks to it.
 */
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/observability/logger';
import { provision } from '../../src/workers/setup';
import { stackUp } from '../../dev/stack/manager';

export default async function globalSetup(): Promise<void> {
  const up = await stackUp();
  Object.assign(process.env, up.env);
  await provision(loadConfig(process.env), createLogger({ level: 'warn', format: 'json' }));
}
