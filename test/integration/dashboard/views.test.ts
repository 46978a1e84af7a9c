/**
 * The views as code on the BigQuery emulator: created idempotently with the tables, skipped (not
 * failed) while a source table is missing, every one executes, and the dashboard reading them by name
 * answers exactly what it answers with their SQL inlined (its default on the emulator).
 */
import type { BigQuery } from '@google-cloud/bigquery';
import { createBigQueryClient } from '../../../src/adapters/bigquery/client';
import { ensureViews } from '../../../src/adapters/bigquery/views';
import { startDashboard } from '../../../src/dashboard/server';
import { VIEWS, qualified } from '../../../src/domain/views';
import { createLogger } from '../../../src/observability/logger';
import { testConfig, uniqueName } from '../../support/config';
import { createDqTable, createTables, runningStatus, seedRows } from './seed';

describe('BigQuery views', () => {
  const config = testConfig({ BIGQUERY_DATASET: uniqueName('dash_views'), DASHBOARD_PORT: '0' });
  let bq: BigQuery;

  beforeAll(async () => {
    bq = createBigQueryClient(config.gcp);
    await createTables(bq, config.gcp, { dq: false });
  });
  afterAll(async () => {
    await bq?.dataset(config.gcp.dataset).delete({ force: true });
  });

  it('are created idempotently, skipping the ones whose table does not exist yet', async () => {
    const first = await ensureViews(bq, config.gcp);
    expect(first.skipped).toEqual([
      { view: 'v_dq_history', reason: `table ${config.gcp.tables.dqResults} does not exist yet` },
      { view: 'v_dq_latest', reason: `table ${config.gcp.tables.dqResults} does not exist yet` },
    ]);
    await createDqTable(bq, config.gcp);
    const second = await ensureViews(bq, config.gcp);
    expect(second).toEqual({
      created: VIEWS.map((v) => v.name).filter((n) => n.startsWith('v_dq_')),
      kept: VIEWS.map((v) => v.name).filter((n) => !n.startsWith('v_dq_')),
      skipped: [],
    });
    // The emulator cannot replace a view: existing ones are kept, not dropped and created again
    // (each drop would grow its SQL catalog for good).
    const third = await ensureViews(bq, config.gcp);
    expect(third).toEqual({ created: [], kept: VIEWS.map((v) => v.name), skipped: [] });
    const [tables] = await bq.dataset(config.gcp.dataset).getTables();
    const names = tables.map((t) => t.id).filter((id) => id?.startsWith('v_'));
    expect(names.sort()).toEqual(VIEWS.map((v) => v.name).sort());
  });

  it('each execute and read the rows inserted after they were created', async () => {
    await seedRows(bq, config.gcp, Date.now());
    const counts: Record<string, number> = {};
    for (const v of VIEWS) {
      const [rows] = await bq.query({ query: `SELECT COUNT(*) AS n FROM ${qualified(config.gcp, v.name)}` });
      counts[v.name] = Number(rows[0].n);
    }
    expect(counts).toEqual({
      v_posts_per_minute: 4, // five posts, two in the same minute
      v_loaded_per_minute: 4,
      v_top_hashtags: 5, // (minute, hashtag) pairs, case-folded: #Tesla and #tesla of one minute are one
      v_top_mentions: 3,
      v_top_domains: 3,
      v_languages: 4,
      v_top_posts: 5,
      v_ingestion_lag: 4,
      v_dead_letters_per_minute: 3,
      v_load_runs_recent: 3, // the 8-day-old run is outside
      v_dq_history: 4,
      v_dq_latest: 3,
    });
  });

  it('give the dashboard the same answers by name as inlined', async () => {
    const logger = createLogger({ level: 'silent' });
    const status = async () => runningStatus(Date.now());
    const byName = await startDashboard({ bigquery: bq, config, logger, status, viewMode: 'view' });
    const inline = await startDashboard({ bigquery: bq, config, logger, status, viewMode: 'inline' });
    try {
      for (const path of [
        '/api/hashtags',
        '/api/top-posts',
        '/api/quality',
        '/api/load-runs',
        '/api/ingestion-lag',
      ]) {
        // eslint-disable-next-line @typescript-eslint/no-explicit-any
        const a: any = await (await fetch(new URL(path, byName.url))).json();
        // eslint-disable-next-line @typescript-eslint/no-explicit-any
        const b: any = await (await fetch(new URL(path, inline.url))).json();
        expect(a.state).toBe('ok');
        if (path === '/api/load-runs') {
          // Measured from each server's own clock.
          delete a.data.backlog.lastRunAgeSeconds;
          delete b.data.backlog.lastRunAgeSeconds;
        }
        expect([path, a]).toEqual([path, b]);
      }
    } finally {
      await byName.close();
      await inline.close();
    }
  });
});
