/**
 * Every data-quality check against the real BigQuery emulator: the clean fixture passes all of
 * them, and a fixture with exactly one defect fails exactly that check, with a message naming the
 * defect. Also: results are written once per run id, and a failing run's alert reaches a local
 * webhook server.
 */
import type { BigQuery } from '@google-cloud/bigquery';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { createQualityActivities, type QualityActivitiesDeps } from '../../../src/activities/quality';
import { createBigQueryClient } from '../../../src/adapters/bigquery/client';
import { ensureDataset } from '../../../src/adapters/bigquery/provision';
import { createBigQueryQualityStore } from '../../../src/adapters/bigquery/quality-queries';
import { createWebhookAlerter } from '../../../src/adapters/webhook';
import type { AppConfig } from '../../../src/config';
import { POSTS_TABLE } from '../../../src/domain/bigquery-schema';
import type { DataQualityVerdict, MinuteCount } from '../../../src/domain/pipeline-status';
import type { CheckName, QualityChecksOverrides } from '../../../src/domain/quality';
import { createMetrics } from '../../../src/observability/metrics';
import { testConfig, uniqueName } from '../../support/config';
import {
  cleanFixture,
  countersOf,
  deadLetter,
  fixtureClock,
  post,
  shift,
  writeFixture,
  type Fixture,
} from './fixtures';

const dataset = uniqueName('dq_checks');
const config: AppConfig = testConfig({ BIGQUERY_DATASET: dataset });
const logger = pino({ level: 'silent' });
/** The fixtures are small: judge volume drops on a baseline of a few posts per window. */
const checks: QualityChecksOverrides = { volume: { minBaseline: 5 } };
let bq: BigQuery;
let asOf: string;

beforeAll(async () => {
  bq = createBigQueryClient(config.gcp);
  await ensureDataset(bq, config.gcp);
  asOf = fixtureClock();
});

// The dataset is left in place (unique name): on emulator v0.8.1, dropping tables rebuilds its
// whole catalog and, after a few hundred queries, overflows the SQL engine's 2 GiB WASM memory.

interface Scenario {
  fixture: Fixture;
  /** Counters the stream reports; default: those matching the fixture. */
  counters?: MinuteCount[] | null;
  connected?: boolean;
  postsColumns?: typeof POSTS_TABLE.columns;
  deps?: Partial<QualityActivitiesDeps>;
}

async function run(name: string, s: Scenario, runId = `${name}-run-1`) {
  const tables = await writeFixture(bq, config.gcp, name, s.fixture, s.postsColumns);
  const gcp = { ...config.gcp, tables: { ...config.gcp.tables, ...tables } };
  const store = createBigQueryQualityStore({ bq, gcp, logger });
  const metrics = createMetrics();
  const counters = s.counters === undefined ? countersOf(s.fixture) : s.counters;
  const acts = createQualityActivities({
    store,
    logger,
    metrics,
    checks,
    publishedCounts: async (from, to) =>
      counters === null ? undefined : counters.filter((c) => c.minute >= from && c.minute < to),
    streamConnected: async () => s.connected,
    ...s.deps,
  });
  await acts.ensureQualityTable();
  const verdict = await acts.runQualityChecks({ runId, asOf });
  return { verdict, acts, store, metrics };
}

/** Exactly one check is not ok, with this status and a message naming the defect. */
function expectOnly(verdict: DataQualityVerdict, check: CheckName, status: 'warn' | 'fail', defect: RegExp) {
  expect(verdict.problems.map((p) => p.check)).toEqual([check]);
  expect(verdict.problems[0]!.status).toBe(status);
  expect(verdict.problems[0]!.details).toMatch(defect);
  expect(verdict.status).toBe(status);
}

const MINUTE = 60_000;

test('the clean fixture passes every check and writes one ok row per check, once per run id', async () => {
  const { verdict, store } = await run('clean', { fixture: cleanFixture(asOf), connected: true });
  expect(verdict.problems).toEqual([]);
  expect(verdict.status).toBe('ok');

  const [rows] = await bq.query({
    query: `SELECT \`check\`, status, severity, observed, threshold, details FROM \`${config.gcp.projectId}.${dataset}.${config.gcp.tables.dqResults}\`
            WHERE checked_at = @at AND run_id = @run ORDER BY \`check\``,
    params: { at: bq.timestamp(asOf), run: 'clean-run-1' },
  });
  expect(rows.map((r: { check: string }) => r.check)).toEqual([
    'completeness',
    'dead_letter_rate',
    'freshness',
    'reconciliation',
    'schema_drift',
    'uniqueness',
    'validity',
    'volume',
  ]);
  expect(new Set(rows.map((r: { status: string }) => r.status))).toEqual(new Set(['ok']));
  const recon = rows.find((r: { check: string }) => r.check === 'reconciliation') as { details: string };
  // Both dead letters (one JSON payload, one not JSON: publish_time fallback) are in the window.
  expect(recon.details).toMatch(/published 12, loaded 10 distinct ids \+ 2 dead letters/);

  // A retried attempt of the same run writes nothing more.
  await store.writeResults('clean-run-1', asOf, [
    {
      run_id: 'clean-run-1',
      check: 'freshness',
      window_start: null,
      window_end: null,
      observed: 1,
      threshold: 1,
      status: 'ok',
      severity: 'fail',
      details: 'retry',
      checked_at: asOf,
    },
  ]);
  const [[count]] = await bq.query({
    query: `SELECT COUNT(*) AS n FROM \`${config.gcp.projectId}.${dataset}.${config.gcp.tables.dqResults}\` WHERE checked_at = @at AND run_id = @run`,
    params: { at: bq.timestamp(asOf), run: 'clean-run-1' },
  });
  expect(count.n).toBe(8);
});

test('freshness: stale rows fail', async () => {
  const { verdict, metrics } = await run('stale', { fixture: shift(cleanFixture(asOf), -3 * 60 * MINUTE) });
  expectOnly(verdict, 'freshness', 'fail', /stale: newest row ingested 1\d\d\.\d min ago/);
  const failed = await metrics.dqChecksFailed.get();
  expect(failed.values).toEqual([
    expect.objectContaining({ value: 1, labels: { check: 'freshness', status: 'fail' } }),
  ]);
});

test('volume: a drop against the rolling baseline fails', async () => {
  const f = cleanFixture(asOf);
  // Keep only 1 of the ~15 posts of the latest closed window (minutes 3..17 before asOf).
  f.posts = f.posts.filter((_, i) => i + 1 < 3 || i + 1 > 17 || i + 1 === 10);
  const { verdict } = await run('volume', { fixture: f });
  expectOnly(verdict, 'volume', 'fail', /volume drop: 1 posts in .* vs baseline mean 15\.0/);
});

test('volume: zero posts while the stream reports connected fails', async () => {
  const f = cleanFixture(asOf);
  f.posts = f.posts.filter((_, i) => i + 1 < 3 || i + 1 > 17);
  f.deadLetters = [];
  const { verdict } = await run('zero', { fixture: f, connected: true });
  expectOnly(verdict, 'volume', 'fail', /zero volume: 0 posts in .* while the stream reports connected/);
});

test('uniqueness: a duplicate id fails', async () => {
  const f = cleanFixture(asOf);
  f.posts.push({ ...f.posts[20]! });
  const { verdict } = await run('dup', { fixture: f, counters: countersOf(cleanFixture(asOf)) });
  expectOnly(
    verdict,
    'uniqueness',
    'fail',
    new RegExp(`duplicate ids: 1 extra row\\(s\\).*${f.posts[20]!.id} ×2`),
  );
});

test('completeness: a null text fails', async () => {
  const f = cleanFixture(asOf);
  f.posts[4] = { ...f.posts[4]!, text: null };
  const { verdict } = await run('nulltext', { fixture: f });
  expectOnly(verdict, 'completeness', 'fail', /null or empty text: 1 of 59 rows/);
});

test('validity: a created_at in the future fails', async () => {
  const f = cleanFixture(asOf);
  f.posts.push(
    post(asOf, 30, '1800000000000000001', {
      created_at: new Date(Date.parse(asOf) + 2 * 3600_000).toISOString(),
    }),
  );
  const { verdict } = await run('future', { fixture: f });
  expectOnly(
    verdict,
    'validity',
    'fail',
    /future created_at \(beyond 300 s skew\): 1 row\(s\).*1800000000000000001/,
  );
});

test('schema drift: an unexpected extra column fails; a column added by the loader only warns', async () => {
  const extra = await run('extracol', {
    fixture: cleanFixture(asOf),
    postsColumns: [...POSTS_TABLE.columns, { name: 'sentiment', type: 'FLOAT64', mode: 'NULLABLE' }],
  });
  expectOnly(extra.verdict, 'schema_drift', 'fail', /unexpected extra column: sentiment FLOAT64/);

  const evolved = await run('evolved', {
    fixture: cleanFixture(asOf),
    postsColumns: [
      ...POSTS_TABLE.columns,
      { name: 'community_id', type: 'STRING', mode: 'NULLABLE', description: 'Post field community_id' },
    ],
  });
  expectOnly(
    evolved.verdict,
    'schema_drift',
    'warn',
    /column added by schema evolution: community_id STRING/,
  );
});

test('dead-letter rate: a burst of dead letters fails', async () => {
  const f = cleanFixture(asOf);
  for (let i = 0; i < 12; i++)
    f.deadLetters.push(deadLetter(asOf, 3 + (i % 3), `burst-${i}`, true, 'validate'));
  const { verdict } = await run('burst', { fixture: f });
  expectOnly(
    verdict,
    'dead_letter_rate',
    'fail',
    /dead-letter burst: 14 dead letters \/ 29 messages .*decode: 1, malformed: 1, validate: 12/,
  );
});

test('reconciliation: a post the stream published but that never loaded fails as a loss', async () => {
  const f = cleanFixture(asOf);
  const counters = countersOf(f);
  f.posts = f.posts.filter((_, i) => i + 1 !== 9); // published 9 minutes ago, inside the closed window
  const { verdict } = await run('missing', { fixture: f, counters });
  expectOnly(
    verdict,
    'reconciliation',
    'fail',
    /loss: 1 message\(s\) published but neither loaded nor dead-lettered/,
  );
});

test('reconciliation without stream counters is skipped as ok', async () => {
  const { verdict, store } = await run('nocounters', { fixture: cleanFixture(asOf), counters: null });
  expect(verdict.status).toBe('ok');
  void store;
});

describe('webhook alert', () => {
  let server: Server;
  let url: string;
  const received: { body: unknown; headers: IncomingMessage['headers'] }[] = [];
  let failFirst = 1;

  beforeAll(async () => {
    server = createServer((req, res) => {
      let data = '';
      req.on('data', (c) => (data += c));
      req.on('end', () => {
        if (failFirst-- > 0) {
          res.writeHead(503).end();
          return;
        }
        received.push({ body: JSON.parse(data), headers: req.headers });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/dq`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  test('a failing run is POSTed as JSON to the webhook (retried after a 503)', async () => {
    const f = cleanFixture(asOf);
    f.posts[4] = { ...f.posts[4]!, text: '' };
    const alert = createWebhookAlerter(url, { initialBackoffMs: 10, logger });
    const { verdict, acts } = await run('alert', { fixture: f, deps: { alert } });
    expect(verdict.status).toBe('fail');
    await expect(acts.sendQualityAlert(verdict, 'wf-1')).resolves.toBe(true);
    expect(received).toHaveLength(1);
    expect(received[0]!.headers['content-type']).toBe('application/json');
    expect(received[0]!.body).toEqual({
      kind: 'data_quality_alert',
      runId: 'alert-run-1',
      workflowId: 'wf-1',
      status: 'fail',
      checkedAt: verdict.finishedAt,
      failures: [
        {
          check: 'completeness',
          status: 'fail',
          details: expect.stringMatching(/null or empty text: 1 of 59/),
        },
      ],
    });
  });
});
