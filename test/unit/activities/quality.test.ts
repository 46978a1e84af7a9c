import { ApplicationFailure } from '@temporalio/common';
import pino from 'pino';
import { createQualityActivities } from '../../../src/activities/quality';
import type { QualityStore } from '../../../src/adapters/bigquery/quality-queries';
import { POSTS_TABLE } from '../../../src/domain/bigquery-schema';
import type { DqResultRow } from '../../../src/domain/quality';
import { createMetrics } from '../../../src/observability/metrics';

const asOf = '2026-11-25T18:04:20.000Z';

function store(overrides: Partial<QualityStore> = {}): QualityStore & { written: DqResultRow[][] } {
  const written: DqResultRow[][] = [];
  return {
    written,
    ensureResultsTable: async () => undefined,
    freshness: async () => ({
      rows: 1,
      maxIngestedAt: '2026-11-25T18:04:00Z',
      maxCreatedAt: '2026-11-25T18:03:59Z',
    }),
    volume: async (_f, _t, _w, n) => new Array<number>(n).fill(30),
    uniqueness: async () => ({ rows: 10, distinctIds: 10, examples: [] }),
    completeness: async () => ({ rows: 10, missing: {} }),
    validity: async () => ({
      rows: 10,
      invalidRows: 0,
      badId: 0,
      futureCreatedAt: 0,
      unknownLang: 0,
      negativeMetric: 0,
      examples: [],
    }),
    postsSchema: async () => POSTS_TABLE.columns.map((c) => ({ name: c.name, type: c.type, mode: c.mode })),
    deadLetters: async () => ({ deadLetters: 0, postsIngested: 10, byStage: {} }),
    reconciliation: async () => ({ loaded: 10, deadLetters: 0 }),
    writeResults: async (_r, _a, rows) => {
      written.push(rows);
    },
    ...overrides,
  };
}

const logger = pino({ level: 'silent' });

test('a permanent query error is a failing check; the rest still run and are written', async () => {
  const s = store({
    uniqueness: async () => {
      throw ApplicationFailure.nonRetryable('posts not found', 'BigQueryNotFound');
    },
  });
  const metrics = createMetrics();
  const acts = createQualityActivities({ store: s, logger, metrics, publishedCounts: async () => undefined });
  const v = await acts.runQualityChecks({ runId: 'r1', asOf });
  expect(v.problems).toEqual([
    { check: 'uniqueness', status: 'fail', details: 'check could not run: posts not found' },
  ]);
  expect(s.written[0]).toHaveLength(8);
  expect((await metrics.dqChecksFailed.get()).values[0]).toMatchObject({
    value: 1,
    labels: { check: 'uniqueness' },
  });
});

test('a transient error fails the attempt (retried by Temporal) before anything is written', async () => {
  const s = store({
    freshness: async () => {
      throw Object.assign(new Error('backendError'), { code: 503 });
    },
  });
  const acts = createQualityActivities({ store: s, logger, publishedCounts: async () => undefined });
  await expect(acts.runQualityChecks({ runId: 'r1', asOf })).rejects.toThrow('backendError');
  expect(s.written).toHaveLength(0);
});

test('disabled checks are skipped; alerts are sent only for failures and only with a webhook', async () => {
  const acts = createQualityActivities({
    store: store(),
    logger,
    publishedCounts: async () => undefined,
    checks: { reconciliation: { enabled: false } },
  });
  const v = await acts.runQualityChecks({ runId: 'r1', asOf });
  expect(v.status).toBe('ok');
  const fail = {
    ...v,
    status: 'fail' as const,
    problems: [{ check: 'volume', status: 'fail' as const, details: 'x' }],
  };
  await expect(acts.sendQualityAlert(fail)).resolves.toBe(false);
  const sent: unknown[] = [];
  const withHook = createQualityActivities({
    store: store(),
    logger,
    publishedCounts: async () => undefined,
    alert: async (a) => {
      sent.push(a);
      return { delivered: true, attempts: 1 };
    },
  });
  await expect(withHook.sendQualityAlert(v)).resolves.toBe(false);
  await expect(withHook.sendQualityAlert(fail, 'wf')).resolves.toBe(true);
  expect(sent).toEqual([
    expect.objectContaining({ kind: 'data_quality_alert', workflowId: 'wf', failures: fail.problems }),
  ]);
});
