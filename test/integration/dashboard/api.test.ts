/**
 * The dashboard's JSON API against the real BigQuery emulator: seeded rows give known numbers on each
 * endpoint; empty tables, missing views and a stopped supervisor give explanatory empty states.
 */
import type { BigQuery } from '@google-cloud/bigquery';
import { createBigQueryClient } from '../../../src/adapters/bigquery/client';
import { ensureViews } from '../../../src/adapters/bigquery/views';
import type { AppConfig } from '../../../src/config';
import { NOT_REPORTED } from '../../../src/dashboard/panels';
import { startDashboard, SupervisorUnavailableError, type Dashboard } from '../../../src/dashboard/server';
import type { PipelineStatus } from '../../../src/domain/pipeline-status';
import { createLogger } from '../../../src/observability/logger';
import { testConfig, uniqueName } from '../../support/config';
import { createTables, gapsOf, legacyStatus, readsOf, runningStatus, seedRows } from './seed';

const logger = createLogger({ level: 'silent' });

interface PanelBody {
  state: 'ok' | 'empty' | 'error';
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  data?: any;
  message?: string;
}

async function get(d: Dashboard, path: string): Promise<{ status: number; body: PanelBody }> {
  const res = await fetch(new URL(path, d.url));
  return { status: res.status, body: (await res.json()) as PanelBody };
}

function configFor(dataset: string): AppConfig {
  return testConfig({
    BIGQUERY_DATASET: dataset,
    DASHBOARD_PORT: '0',
    LOAD_INTERVAL_MS: '30000',
    LOAD_BACKLOG_THRESHOLD: '5',
    X_STREAM_NAME: 'default',
    TEMPORAL_UI_URL: 'http://127.0.0.1:8233',
    TEMPORAL_NAMESPACE: 'default',
  });
}

describe('dashboard API with seeded rows', () => {
  const config = configFor(uniqueName('dash_api'));
  let bq: BigQuery;
  let dashboard: Dashboard;
  let queries = 0;
  const now = Date.now();

  beforeAll(async () => {
    bq = createBigQueryClient(config.gcp);
    await createTables(bq, config.gcp);
    await seedRows(bq, config.gcp, now);
    const report = await ensureViews(bq, config.gcp);
    expect(report.skipped).toEqual([]);
    // Count the queries the dashboard sends (still the real emulator answering them).
    const query = bq.query.bind(bq);
    bq.query = ((...args: Parameters<BigQuery['query']>) => {
      queries += 1;
      return query(...args);
    }) as BigQuery['query'];
    dashboard = await startDashboard({
      bigquery: bq,
      config,
      logger,
      status: async () => runningStatus(now),
      cacheTtlMs: 60_000,
    });
  });
  afterAll(async () => {
    await dashboard?.close();
    await bq?.dataset(config.gcp.dataset).delete({ force: true });
  });

  it('binds to loopback and answers /healthz', async () => {
    expect(dashboard.url).toBe(`http://127.0.0.1:${dashboard.port}/`);
    const res = await fetch(new URL('/healthz', dashboard.url));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true });
  });

  it('counts posts per minute, created and loaded, over the last hour and day', async () => {
    const hour = await get(dashboard, '/api/posts-per-minute?range=hour');
    expect(hour.status).toBe(200);
    expect(hour.body.state).toBe('ok');
    expect(hour.body.data.totalCreated).toBe(3);
    expect(hour.body.data.totalLoaded).toBe(3);
    expect(hour.body.data.loadIntervalMs).toBe(30_000);
    const tenMinAgo = new Date(Math.floor((now - 10 * 60_000) / 60_000) * 60_000).toISOString();
    expect(hour.body.data.points).toContainEqual({ minute: tenMinAgo, created: 2, loaded: 0 });
    const day = await get(dashboard, '/api/posts-per-minute?range=day');
    expect(day.body.data.totalCreated).toBe(4);
  });

  it('ranks hashtags (case-folded), mentions, domains and languages', async () => {
    expect((await get(dashboard, '/api/hashtags')).body.data.items).toEqual([
      { key: 'ev', posts: 2 },
      { key: 'tesla', posts: 2 },
    ]);
    expect((await get(dashboard, '/api/hashtags?range=day')).body.data.items).toEqual([
      { key: 'ev', posts: 2 },
      { key: 'tesla', posts: 2 },
      { key: 'old', posts: 1 },
    ]);
    expect((await get(dashboard, '/api/mentions')).body.data.items).toEqual([
      { key: 'elonmusk', posts: 2 },
      { key: 'nasa', posts: 1 },
    ]);
    expect((await get(dashboard, '/api/domains')).body.data.items).toEqual([
      { key: 'tesla.com', posts: 2 },
      { key: 'nasa.gov', posts: 1 },
    ]);
    expect((await get(dashboard, '/api/languages?range=day')).body.data.items).toEqual([
      { key: 'en', posts: 2 },
      { key: 'de', posts: 1 },
      { key: 'fr', posts: 1 },
    ]);
  });

  it('lists the most engaged posts with their x.com links', async () => {
    const { body } = await get(dashboard, '/api/top-posts');
    expect(body.data.items.map((p: { id: string }) => p.id)).toEqual(['1001', '1003', '1002']);
    expect(body.data.items[0]).toMatchObject({
      url: 'https://x.com/i/web/status/1001',
      author: 'alice',
      likes: 10,
      reposts: 5,
      replies: 1,
      quotes: 0,
      engagement: 16,
    });
    const day = await get(dashboard, '/api/top-posts?range=day');
    expect(day.body.data.items[0].id).toBe('1004');
  });

  it('measures ingestion lag (created → loaded)', async () => {
    const { body } = await get(dashboard, '/api/ingestion-lag');
    expect(body.state).toBe('ok');
    expect(body.data.posts).toBe(3);
    expect(body.data.avgSeconds).toBeCloseTo(50, 3);
    expect(body.data.minSeconds).toBeCloseTo(30, 3);
    expect(body.data.maxSeconds).toBeCloseTo(60, 3);
    expect(body.data.latest.avgSeconds).toBeCloseTo(30, 3);
  });

  it('counts dead letters per window and stage', async () => {
    const hour = await get(dashboard, '/api/dead-letters');
    expect(hour.body.data.total).toBe(3);
    expect(hour.body.data.byStage).toEqual([
      { stage: 'validate', count: 2 },
      { stage: 'decode', count: 1 },
    ]);
    expect((await get(dashboard, '/api/dead-letters?range=day')).body.data.total).toBe(4);
  });

  it('shows the last load runs, the window totals and the backlog the last batch reveals', async () => {
    const { body } = await get(dashboard, '/api/load-runs');
    expect(body.data.items.map((r: { runId: string }) => r.runId)).toEqual(['run-b', 'run-a', 'run-day']);
    expect(body.data.items[0]).toMatchObject({
      messages: 5,
      rowsLoaded: 1,
      deadLetters: 1,
      durationMs: 1500,
    });
    expect(body.data.window).toEqual({
      runs: 2,
      messages: 9,
      rowsLoaded: 3,
      duplicatesSkipped: 3,
      deadLetters: 3,
    });
    expect(body.data.backlog).toMatchObject({ lastBatchMessages: 5, threshold: 5, batchFull: true });
    expect(body.data.backlog.lastRunAgeSeconds).toBeGreaterThan(4 * 60 - 5);
  });

  it('gives the latest data-quality verdict per check and the last day of history', async () => {
    const { body } = await get(dashboard, '/api/quality');
    expect(body.data.overall).toBe('fail');
    expect(body.data.latest.map((r: { check: string; status: string }) => [r.check, r.status])).toEqual([
      ['freshness', 'fail'],
      ['schema', 'warn'],
      ['volume', 'ok'],
    ]);
    expect(body.data.latest[0]).toMatchObject({ observed: 7, threshold: 1, runId: 'dq2' });
    expect(body.data.history.map((r: { check: string; status: string }) => `${r.check}:${r.status}`)).toEqual(
      ['freshness:ok', 'freshness:fail', 'volume:ok'],
    );
  });

  it('reports the supervisor status and links the workflows in the Temporal Web UI', async () => {
    const { body } = await get(dashboard, '/api/pipeline');
    expect(body.state).toBe('ok');
    expect(body.data.running).toBe(true);
    expect(body.data.status.progress).toMatchObject({ connected: true, reconnects: 3 });
    expect(body.data.links).toEqual([
      {
        role: 'supervisor',
        workflowId: 'x-ingest-default',
        url: 'http://127.0.0.1:8233/namespaces/default/workflows/x-ingest-default',
      },
      {
        role: 'load',
        workflowId: 'x-ingest-default-load',
        url: 'http://127.0.0.1:8233/namespaces/default/workflows/x-ingest-default-load',
      },
      {
        role: 'quality',
        workflowId: 'x-ingest-default-quality',
        url: 'http://127.0.0.1:8233/namespaces/default/workflows/x-ingest-default-quality',
      },
    ]);
  });

  it("shows the supervisor's reads from X, its budget and its gap ledger, newest gaps first", async () => {
    const { status, body } = await get(dashboard, '/api/reads-and-gaps');
    expect(status).toBe(200);
    expect(body.state).toBe('ok');
    expect(body.data.state).toBe('running');
    expect(body.data.reads).toEqual({
      day: new Date(now).toISOString().slice(0, 10),
      month: new Date(now).toISOString().slice(0, 7),
      dayPosts: 1234,
      monthPosts: 45_678,
      monthSearchPosts: 321,
      monthlyPosts: 50_000,
      usedPercent: expect.closeTo(91.356, 3),
      costPerPostUsd: 0.005,
      estimatedCostTodayUsd: 6.17,
      estimatedCostMonthUsd: 228.39,
      level: 'warn',
      lastCountedDay: null,
      hold: null,
    });
    expect(body.data.gaps.counts).toEqual({
      found: 4,
      open: 1,
      pending: 1,
      filled: 1,
      unrecoverable: 1,
      skipped: 1,
      postsFilled: 40,
    });
    expect(body.data.gaps.open).toEqual({
      start: new Date(now - 60_000).toISOString(),
      reason: 'disconnect:http_503',
    });
    expect(body.data.gaps.inLedger).toBe(4);
    expect(body.data.gaps.latest.map((g: { id: string }) => g.id)).toEqual([
      'gap-pending',
      'gap-skipped',
      'gap-unrecoverable',
      'gap-filled',
    ]);
    expect(body.data.gaps.latest[2]).toEqual({
      id: 'gap-unrecoverable',
      start: new Date(now - 30 * 60_000).toISOString(),
      end: new Date(now - 30 * 60_000 + 30_000).toISOString(),
      durationSeconds: 30,
      reason: 'disconnect:stall',
      state: 'unrecoverable',
      postsFound: 7,
      postsPublished: 7,
      unsearchable: [{ rule: 'sample:10 tesla', reason: 'sample: is not available on search' }],
      detail: '1 rule could not be searched',
      endpoint: 'recent',
      finishedAt: new Date(now - 28 * 60_000).toISOString(),
    });
    expect(body.data.gaps.latest[0]).toMatchObject({
      state: 'pending',
      postsFound: null,
      detail: null,
      unsearchable: [],
    });
  });

  it('answers every panel in one summary, and many viewers cost one query per panel', async () => {
    const before = queries;
    const summaries = await Promise.all(
      Array.from({ length: 8 }, () =>
        fetch(new URL('/api/summary?range=day', dashboard.url)).then((r) => r.json()),
      ),
    );
    const first = summaries[0] as { panels: Record<string, PanelBody> };
    expect(Object.keys(first.panels).sort()).toEqual(
      [
        'dead-letters',
        'domains',
        'hashtags',
        'ingestion-lag',
        'languages',
        'load-runs',
        'mentions',
        'pipeline',
        'posts-per-minute',
        'quality',
        'reads-and-gaps',
        'top-posts',
      ].sort(),
    );
    for (const [name, p] of Object.entries(first.panels)) expect([name, p.state]).toEqual([name, 'ok']);
    // 14 queries for the whole page (posts-per-minute, load-runs and quality run two each; quality
    // and pipeline were cached by the tests above), however many viewers ask at once.
    const sent = queries - before;
    expect(sent).toBeLessThanOrEqual(14);
    await Promise.all(
      Array.from({ length: 8 }, () => fetch(new URL('/api/summary?range=day', dashboard.url))),
    );
    expect(queries - before).toBe(sent);
  });

  it('rejects bad input without touching BigQuery', async () => {
    expect((await get(dashboard, '/api/hashtags?range=week')).status).toBe(400);
    expect((await get(dashboard, '/api/nope')).status).toBe(404);
    expect((await fetch(new URL('/api/summary', dashboard.url), { method: 'POST' })).status).toBe(405);
    expect((await fetch(new URL('/../package.json', dashboard.url))).status).toBe(404);
  });

  it('serves the page and the charting library from node_modules', async () => {
    const page = await fetch(dashboard.url);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(await page.text()).toContain('/vendor/uPlot.iife.min.js');
    const lib = await fetch(new URL('/vendor/uPlot.iife.min.js', dashboard.url));
    expect(lib.status).toBe(200);
    expect(await lib.text()).toContain('uPlot');
  });
});

describe('dashboard API without data', () => {
  let bq: BigQuery;
  const dashboards: Dashboard[] = [];
  const datasets: string[] = [];
  afterAll(async () => {
    await Promise.all(dashboards.map((d) => d.close()));
    for (const ds of datasets) await bq?.dataset(ds).delete({ force: true });
  });

  it('explains empty tables, a missing dq_results table and a supervisor that is not running', async () => {
    const config = configFor(uniqueName('dash_empty'));
    bq = createBigQueryClient(config.gcp);
    await createTables(bq, config.gcp, { dq: false });
    datasets.push(config.gcp.dataset);
    const report = await ensureViews(bq, config.gcp);
    expect(report.skipped.map((s) => s.view).sort()).toEqual(['v_dq_history', 'v_dq_latest']);
    const d = await startDashboard({
      bigquery: bq,
      config,
      logger,
      status: async () => {
        throw new SupervisorUnavailableError('The supervisor workflow x-ingest-default is not running.');
      },
    });
    dashboards.push(d);
    const { body } = (await get(d, '/api/summary')) as unknown as {
      body: { panels: Record<string, PanelBody> };
    };
    for (const [name, p] of Object.entries(body.panels)) {
      expect([name, p.state]).toEqual([name, 'empty']);
      expect(p.message).toMatch(/\w{3,}/);
    }
    expect(body.panels['posts-per-minute'].message).toMatch(/No posts in the last hour/);
    expect(body.panels.quality.message).toMatch(/No data-quality results yet/);
    expect(body.panels.pipeline.message).toBe('The supervisor workflow x-ingest-default is not running.');
    expect(body.panels.pipeline.data.links).toHaveLength(3);
    expect(body.panels['reads-and-gaps'].message).toBe(
      'No reads from X or gaps to show. The supervisor workflow x-ingest-default is not running.',
    );
    expect(body.panels['load-runs'].data.backlog).toMatchObject({
      lastBatchMessages: null,
      batchFull: false,
    });
  });

  it('explains views that do not exist yet (setup not run)', async () => {
    const config = configFor(uniqueName('dash_none'));
    bq = createBigQueryClient(config.gcp);
    const d = await startDashboard({
      bigquery: bq,
      config,
      logger,
      status: async () => runningStatus(Date.now()),
    });
    dashboards.push(d);
    const res = await get(d, '/api/hashtags');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      state: 'empty',
      message: expect.stringMatching(/v_top_hashtags reads .* does not exist yet\. Run `npm run setup`/),
    });
  });
});

describe("X reads and gaps from the supervisor's status", () => {
  const config = configFor(uniqueName('dash_reads'));
  const bq = createBigQueryClient(config.gcp);
  const dashboards: Dashboard[] = [];
  afterAll(async () => {
    await Promise.all(dashboards.map((d) => d.close()));
  });

  /** A dashboard whose supervisor answers `answer()`; counts the status queries it is sent. */
  async function dashboardFor(answer: () => PipelineStatus, at?: number) {
    const asked = { queries: 0 };
    const d = await startDashboard({
      bigquery: bq,
      config,
      logger,
      status: async () => {
        asked.queries += 1;
        return answer();
      },
      ...(at === undefined ? {} : { now: () => new Date(at) }),
    });
    dashboards.push(d);
    return { d, asked };
  }

  it('says "not reported by this supervisor" when its status has neither field, and the pipeline panel is unchanged', async () => {
    // Only the status panels: this dashboard's dataset does not exist, and BigQuery is not under test.
    const { d, asked } = await dashboardFor(() => legacyStatus(Date.now()));
    const [pipeline, reads] = await Promise.all([get(d, '/api/pipeline'), get(d, '/api/reads-and-gaps')]);
    expect(reads.status).toBe(200);
    expect(reads.body).toEqual({
      state: 'empty',
      data: { state: 'running', reads: null, gaps: null, notReported: NOT_REPORTED },
      message: `X reads and gaps: ${NOT_REPORTED}`,
    });
    expect(pipeline.body.state).toBe('ok');
    expect(pipeline.body.data.status.progress.reconnects).toBe(3);
    // Both panels come from one answer of the status query.
    expect(asked.queries).toBe(1);
  });

  it('shows the part that is reported when the other is missing', async () => {
    const now = Date.now();
    const { d } = await dashboardFor(() => ({ ...legacyStatus(now), gaps: gapsOf(now) }));
    const { body } = await get(d, '/api/reads-and-gaps');
    expect(body.state).toBe('ok');
    expect(body.data.reads).toBeNull();
    expect(body.data.gaps.counts.found).toBe(4);
  });

  it("shows the hold and its end while the stream is held by X's usage cap", async () => {
    const now = Date.now();
    const until = new Date(now + 3_600_000).toISOString();
    const { d } = await dashboardFor(() => ({
      ...legacyStatus(now),
      state: 'budget-exhausted',
      budget: readsOf(now, { by: 'x-usage-cap', detail: 'X: UsageCapExceeded: Monthly product cap', until }),
      gaps: gapsOf(now),
    }));
    const { body } = await get(d, '/api/reads-and-gaps');
    expect(body.data.state).toBe('budget-exhausted');
    expect(body.data.reads.hold).toEqual({
      by: 'x-usage-cap',
      label: 'X usage cap',
      detail: 'X: UsageCapExceeded: Monthly product cap',
      until,
    });
  });

  it('counts an earlier UTC day and month as nothing read today and this month', async () => {
    // The supervisor rolls its counters over only when it next reads a post.
    const at = Date.parse('2026-12-01T00:05:00Z');
    const before = Date.parse('2026-11-30T23:50:00Z');
    const { d } = await dashboardFor(
      () => ({
        ...legacyStatus(at),
        budget: { ...readsOf(before), monthPosts: 50_000, level: 'exhausted' },
      }),
      at,
    );
    const { body } = await get(d, '/api/reads-and-gaps');
    expect(body.data.reads).toMatchObject({
      day: '2026-12-01',
      month: '2026-12',
      dayPosts: 0,
      monthPosts: 0,
      monthSearchPosts: 0,
      estimatedCostTodayUsd: 0,
      estimatedCostMonthUsd: 0,
      usedPercent: 0,
      level: 'ok',
      lastCountedDay: '2026-11-30',
    });
    expect(body.data.gaps).toBeNull();
  });

  it('says "no limit" as a null budget', async () => {
    const now = Date.now();
    const { monthlyPosts: _unset, ...unlimited } = readsOf(now);
    const { d } = await dashboardFor(() => ({ ...legacyStatus(now), budget: { ...unlimited, level: 'ok' } }));
    const { body } = await get(d, '/api/reads-and-gaps');
    expect(body.data.reads).toMatchObject({ monthlyPosts: null, usedPercent: null, level: 'ok' });
  });
});
