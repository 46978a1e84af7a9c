/**
 * Test helpers for configuration. The integration global setup (`global-setup.ts`) starts or reuses
 * the local stack and exports its addresses in `process.env` (TEMPORAL_ADDRESS, PUBSUB_EMULATOR_HOST,
 * BIGQUERY_EMULATOR_HOST, GCP_PROJECT_ID), so `testConfig()` points at the real local stack.
 */
import { randomBytes } from 'node:crypto';
import { loadConfig, type AppConfig, type Env } from '../../src/config';

/** A name unique to this test run, safe for Pub/Sub, BigQuery and task queues (letters, digits, _). */
export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
}

/** The configuration a worker would parse, from the stack's environment plus `overrides`. */
export function testConfig(overrides: Env = {}): AppConfig {
  return loadConfig({ ...process.env, LOG_LEVEL: 'warn', ...overrides });
}
