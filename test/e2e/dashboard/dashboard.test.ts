/**
 * The dashboard in a real browser: Debian's Chromium driven by playwright-core (never a downloaded
 * browser) against the dashboard serving seeded rows from the BigQuery emulator. Every panel renders
 * something, the console stays clean, and screenshots (light and dark) land in artifacts/.
 */
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { BigQuery } from '@google-cloud/bigquery';
import { chromium, type BrowserContext } from 'playwright-core';
import { createBigQueryClient } from '../../../src/adapters/bigquery/client';
import { ensureViews } from '../../../src/adapters/bigquery/views';
import { NOT_REPORTED } from '../../../src/dashboard/panels';
import { startDashboard, type Dashboard } from '../../../src/dashboard/server';
import type { PipelineStatus } from '../../../src/domain/pipeline-status';
import { createLogger } from '../../../src/observability/logger';
import { testConfig, uniqueName } from '../../support/config';
import {
  createTables,
  gapsOf,
  legacyStatus,
  readsOf,
  runningStatus,
  seedRows,
} from '../../integration/dashboard/seed';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = resolve(__dirname, '../../../artifacts/dashboard');
const PANELS = [
  'posts-per-minute',
  'pipeline',
  'ingestion-lag',
  'load-runs',
  'reads-and-gaps',
  'dead-letters',
  'quality',
  'hashtags',
  'mentions',
  'domains',
  'languages',
  'top-posts',
];

/**
 * Launch flags for Debian's Chromium as root on a machine without a GPU or network
 * (../shared/reference/local-stack.md). The fresh --user-data-dir is given the way playwright-core
 * accepts it: as the directory of a persistent context (it refuses the flag in `args`).
 */
function launchArgs(): string[] {
  return [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ];
}

describe('dashboard in Chromium', () => {
  const config = testConfig({
    BIGQUERY_DATASET: uniqueName('dash_e2e'),
    DASHBOARD_PORT: '0',
    LOAD_BACKLOG_THRESHOLD: '5',
  });
  const now = Date.now();
  let bq: BigQuery;
  let dashboard: Dashboard;
  let browser: BrowserContext;
  let userDataDir: string;

  beforeAll(async () => {
    bq = createBigQueryClient(config.gcp);
    await createTables(bq, config.gcp);
    await seedRows(bq, config.gcp, now);
    await ensureViews(bq, config.gcp);
    dashboard = await startDashboard({
      bigquery: bq,
      config,
      logger: createLogger({ level: 'silent' }),
      status: async () => runningStatus(now),
    });
    userDataDir = mkdtempSync(join(tmpdir(), 'dashboard-chromium-'));
    browser = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: launchArgs(),
      viewport: { width: 1280, height: 1400 },
    });
    mkdirSync(ARTIFACTS, { recursive: true });
  });

  afterAll(async () => {
    await browser?.close();
    await dashboard?.close();
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
    await bq?.dataset(config.gcp.dataset).delete({ force: true });
  });

  for (const scheme of ['light', 'dark'] as const) {
    it(`renders every panel with the seeded data (${scheme})`, async () => {
      const page = await browser.newPage();
      await page.emulateMedia({ colorScheme: scheme });
      const problems: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
      });
      page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
      page.on('requestfailed', (r) => problems.push(`requestfailed: ${r.url()}`));

      await page.goto(dashboard.url);
      await page.waitForSelector('body[data-loaded="true"]', { timeout: 60_000 });

      for (const name of PANELS) {
        const card = page.locator(`[data-panel="${name}"]`);
        expect([name, await card.getAttribute('data-state')]).toEqual([name, 'ok']);
        expect([name, (await card.innerText()).trim().split('\n').length > 1]).toEqual([name, true]);
      }
      // Charts are drawn (uPlot canvases with a size), lists carry the seeded values.
      expect(await page.locator('#ppm-chart canvas').count()).toBe(1);
      expect(await page.locator('#lag-chart canvas').count()).toBe(1);
      expect(await page.locator('[data-panel="hashtags"] li').allInnerTexts()).toEqual([
        '#ev\n2',
        '#tesla\n2',
      ]);
      const topLinks = await page
        .locator('[data-panel="top-posts"] a')
        .evaluateAll((as) => as.map((a) => (a as unknown as { href: string }).href));
      expect(topLinks[0]).toBe('https://x.com/i/web/status/1001');
      const temporal = await page
        .locator('[data-panel="pipeline"] a')
        .evaluateAll((as) => as.map((a) => (a as unknown as { href: string }).href));
      expect(temporal).toContain(`${config.temporal.uiUrl}/namespaces/default/workflows/x-ingest-default`);
      expect(await page.locator('#pill').innerText()).toBe('connected');
      expect(await page.locator('[data-panel="quality"] .badge.fail').count()).toBeGreaterThan(0);
      // Reads from X and the gap ledger, as text.
      const reads = page.locator('[data-panel="reads-and-gaps"]');
      const tile = async (name: string) =>
        (await reads.locator(`[data-stat="${name}"] b`).innerText()).trim();
      expect(await tile('today')).toBe('1,234');
      expect(await tile('month')).toBe('45,678');
      expect(await tile('search')).toBe('321');
      expect(await tile('cost-today')).toBe('$6.17');
      expect(await tile('cost-month')).toBe('$228.39');
      expect(await tile('budget')).toBe('45,678 of 50,000 (91 %)');
      expect(
        await Promise.all(['found', 'open', 'filled', 'unrecoverable', 'skipped', 'posts-filled'].map(tile)),
      ).toEqual(['4', '1', '1', '1', '1', '40']);
      expect(await reads.locator('[data-open-gap]').innerText()).toMatch(/disconnect:http_503/);
      expect(
        await reads.locator('tr[data-gap]').evaluateAll((rs) => rs.map((r) => r.getAttribute('data-gap'))),
      ).toEqual(['gap-pending', 'gap-skipped', 'gap-unrecoverable', 'gap-filled']);
      const unrecoverable = await reads.locator('tr[data-gap="gap-unrecoverable"]').innerText();
      expect(unrecoverable).toMatch(/disconnect:stall/);
      expect(unrecoverable).toMatch(/\(30\.0 s\)/);
      expect(unrecoverable).toMatch(/not searchable: sample:10 tesla \(sample: is not available on search\)/);
      expect(await reads.locator('tr[data-gap="gap-filled"] td.n').innerText()).toBe('42');
      expect(await reads.locator('.banner').count()).toBe(0);

      // Switching to the last day refetches and shows the older post's hashtag.
      await page.click('button[data-range="day"]');
      const oldTag = page.locator('[data-panel="hashtags"] li', { hasText: '#old' });
      await oldTag.waitFor();

      const file = join(ARTIFACTS, `dashboard-${scheme}.png`);
      await page.click('button[data-range="hour"]');
      await oldTag.waitFor({ state: 'detached' });
      await page.screenshot({ path: file, fullPage: true });
      expect(statSync(file).size).toBeGreaterThan(10_000);
      expect(problems).toEqual([]);
      await page.close();
    });
  }

  it("shows a stream held by X's usage cap, then a supervisor that reports no reads or gaps", async () => {
    let answer: PipelineStatus = {
      ...legacyStatus(now),
      state: 'budget-exhausted',
      budget: readsOf(now, {
        by: 'x-usage-cap',
        detail: 'X answered 429 UsageCapExceeded: Monthly product cap reached.',
        until: '2031-01-01T00:00:00.000Z',
      }),
      gaps: gapsOf(now),
    };
    const held = await startDashboard({
      bigquery: bq,
      config,
      logger: createLogger({ level: 'silent' }),
      status: async () => answer,
      cacheTtlMs: 0,
    });
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    try {
      await page.goto(held.url);
      await page.waitForSelector('body[data-loaded="true"]', { timeout: 60_000 });
      expect(await page.locator('#pill').innerText()).toBe('X usage cap');
      const banner = page.locator('[data-panel="reads-and-gaps"] .banner[data-hold="x-usage-cap"]');
      expect(await banner.innerText()).toMatch(
        /X usage cap: stream held\s+X answered 429 UsageCapExceeded: Monthly product cap reached\. Held until 2031-01-01 00:00 UTC\./,
      );
      expect(await page.locator('[data-panel="pipeline"] .stats b.fail').innerText()).toBe(
        'held · X usage cap',
      );
      await page.screenshot({ path: join(ARTIFACTS, 'dashboard-usage-cap.png'), fullPage: true });

      answer = legacyStatus(now);
      await page.reload();
      await page.waitForSelector('body[data-loaded="true"]', { timeout: 60_000 });
      const card = page.locator('[data-panel="reads-and-gaps"]');
      expect(await card.getAttribute('data-state')).toBe('empty');
      expect((await card.locator('.body').innerText()).trim()).toBe(`X reads and gaps: ${NOT_REPORTED}`);
      expect(await page.locator('#pill').innerText()).toBe('connected');
      expect(problems).toEqual([]);
    } finally {
      await page.close();
      await held.close();
    }
  });
});
