/**
 * The live dashboard: a plain `node:http` server with a JSON API over the BigQuery views and the
 * supervisor's `status` query, and a static page (`public/`) that draws it with uPlot.
 *
 * API (all GET; `range` = `hour` (default) or `day`):
 *   /api/summary                       every panel at once (what the page polls)
 *   /api/posts-per-minute, /api/hashtags, /api/mentions, /api/domains, /api/languages,
 *   /api/top-posts, /api/ingestion-lag, /api/dead-letters, /api/load-runs, /api/quality,
 *   /api/pipeline, /api/reads-and-gaps one panel each: { state: ok|empty|error, data?, message? }
 *   /healthz                           liveness
 * Each panel's result is cached for `cacheTtlMs` per range, single-flight: concurrent viewers share
 * one query; `pipeline` and `reads-and-gaps` share one answer of the supervisor's `status` query.
 * Bound to HEALTH_HOST (127.0.0.1 by default), port DASHBOARD_PORT (0 = any free port).
 */
import { createReadStream } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { BigQuery } from '@google-cloud/bigquery';
import { createDashboardQueries, type ViewMode } from '../adapters/bigquery/dashboard-queries';
import type { PipelineStatus } from '../domain/pipeline-status';
import type { Logger } from '../observability/logger';
import { createSingleFlightCache } from './cache';
import {
  RANGES,
  deadLetters,
  ingestionLag,
  languages,
  loadRuns,
  pipelineHealth,
  postsPerMinute,
  quality,
  readsAndGaps,
  settle,
  topDomains,
  topHashtags,
  topMentions,
  topPosts,
  type DashboardConfig,
  type Panel,
  type PanelContext,
  type PipelineHealth,
  type Range,
} from './panels';

export type { DashboardConfig } from './panels';
export { SupervisorUnavailableError } from './panels';

export interface DashboardDeps {
  /** A real BigQuery client (the emulator locally); the dashboard only reads the views. */
  bigquery: BigQuery;
  config: DashboardConfig;
  /**
   * The supervisor's `status` query. Throw `SupervisorUnavailableError` with a message for the
   * operator when it is not running; any other error is shown as a failed query.
   */
  status: () => Promise<PipelineStatus>;
  logger: Logger;
  /** Overrides `config.ports.dashboard` (0 = any free port). */
  port?: number;
  /** Overrides `config.ports.healthHost`. */
  host?: string;
  /**
   * Read the views by name (`view`) or inline their SQL (`inline`). Default: `inline` when
   * BIGQUERY_EMULATOR_HOST is set (the emulator leaks memory on every view query), else `view`.
   */
  viewMode?: ViewMode;
  /** How long a panel's result is served to every viewer. Default 5000 ms. */
  cacheTtlMs?: number;
  now?: () => Date;
}

export interface Dashboard {
  url: string;
  port: number;
  close(): Promise<void>;
}

const PANELS = {
  'posts-per-minute': postsPerMinute,
  hashtags: topHashtags,
  mentions: topMentions,
  domains: topDomains,
  languages,
  'top-posts': topPosts,
  'ingestion-lag': ingestionLag,
  'dead-letters': deadLetters,
  'load-runs': loadRuns,
  quality,
} as const satisfies Record<string, (ctx: PanelContext) => Promise<Panel<unknown>>>;

/** The panels drawn from the supervisor's `status` query rather than from BigQuery. */
const STATUS_PANELS = ['pipeline', 'reads-and-gaps'] as const;

type PanelName = keyof typeof PANELS | (typeof STATUS_PANELS)[number];
const PANEL_NAMES = [...Object.keys(PANELS), ...STATUS_PANELS] as PanelName[];

const PUBLIC_DIR = join(__dirname, 'public');

/** The files the server serves: nothing else on disk is reachable. */
const STATIC: Record<string, { file: string; type: string }> = {
  '/': { file: join(PUBLIC_DIR, 'index.html'), type: 'text/html; charset=utf-8' },
  '/app.js': { file: join(PUBLIC_DIR, 'app.js'), type: 'text/javascript; charset=utf-8' },
  '/styles.css': { file: join(PUBLIC_DIR, 'styles.css'), type: 'text/css; charset=utf-8' },
  '/favicon.svg': { file: join(PUBLIC_DIR, 'favicon.svg'), type: 'image/svg+xml' },
  '/vendor/uPlot.iife.min.js': {
    file: require.resolve('uplot/dist/uPlot.iife.min.js'),
    type: 'text/javascript; charset=utf-8',
  },
  '/vendor/uPlot.min.css': {
    file: require.resolve('uplot/dist/uPlot.min.css'),
    type: 'text/css; charset=utf-8',
  },
};

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'content-security-policy':
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; " +
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
};

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function parseRange(value: string | null): Range | undefined {
  if (value === null || value === '') return 'hour';
  return Object.hasOwn(RANGES, value) ? (value as Range) : undefined;
}

export async function startDashboard(deps: DashboardDeps): Promise<Dashboard> {
  const { bigquery, config, status, logger } = deps;
  const now = deps.now ?? (() => new Date());
  const viewMode: ViewMode = deps.viewMode ?? (config.gcp.bigqueryEmulatorHost ? 'inline' : 'view');
  const queries = createDashboardQueries({ bigquery, gcp: config.gcp, viewMode });
  const cache = createSingleFlightCache(deps.cacheTtlMs ?? 5000);
  const onQueryError = (panel: string) => (err: unknown) =>
    logger.warn({ err, panel, dataset: config.gcp.dataset }, 'dashboard panel query failed');

  const rangeless = (name: PanelName) =>
    name === 'quality' || (STATUS_PANELS as readonly string[]).includes(name);
  const loadPanel = (name: PanelName, range: Range): Promise<Panel<unknown>> =>
    cache.get<Panel<unknown>>(`${name}:${rangeless(name) ? '' : range}`, () => {
      if (name === 'pipeline') return pipelineHealth(config, status);
      if (name === 'reads-and-gaps') {
        // The pipeline panel's cached answer: one status query for both panels.
        return loadPanel('pipeline', range).then((health) =>
          readsAndGaps(health as Panel<PipelineHealth>, now()),
        );
      }
      const t = now();
      const since = new Date(t.getTime() - RANGES[range]);
      const ctx: PanelContext = { queries, config, range, now: t, since };
      const load: (c: PanelContext) => Promise<Panel<unknown>> = PANELS[name];
      return settle(() => load(ctx), onQueryError(name));
    });

  const summary = async (range: Range) => {
    const results = await Promise.all(PANEL_NAMES.map((n) => loadPanel(n, range)));
    return {
      generatedAt: now().toISOString(),
      range,
      streamName: config.x.streamName,
      dataset: `${config.gcp.projectId}.${config.gcp.dataset}`,
      loadIntervalMs: config.load.intervalMs,
      refreshMs: 10_000,
      panels: Object.fromEntries(PANEL_NAMES.map((n, i) => [n, results[i]])),
    };
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://dashboard.local');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    const path = url.pathname;
    if (path === '/healthz') return sendJson(res, 200, { ok: true });
    if (path.startsWith('/api/')) {
      const range = parseRange(url.searchParams.get('range'));
      if (!range) return sendJson(res, 400, { error: 'range: expected hour or day' });
      const name = path.slice('/api/'.length);
      if (name === 'summary') return sendJson(res, 200, await summary(range));
      if ((PANEL_NAMES as string[]).includes(name)) {
        const result = await loadPanel(name as PanelName, range);
        return sendJson(res, result.state === 'error' ? 502 : 200, result);
      }
      return sendJson(res, 404, { error: `no such endpoint: ${path}` });
    }
    const asset = STATIC[path === '/index.html' ? '/' : path];
    if (!asset) return sendJson(res, 404, { error: `not found: ${path}` });
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'content-type': asset.type,
      'cache-control': path.startsWith('/vendor/') ? 'public, max-age=86400' : 'no-cache',
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    createReadStream(asset.file)
      .on('error', (err) => {
        logger.error({ err, file: asset.file }, 'dashboard asset unreadable');
        res.destroy(err);
      })
      .pipe(res);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      logger.error({ err, url: req.url }, 'dashboard request failed');
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
      else res.destroy();
    });
  });
  // Sockets held open by browsers must not keep close() waiting.
  server.keepAliveTimeout = 5000;

  const host = deps.host ?? config.ports.healthHost;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(deps.port ?? config.ports.dashboard, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const shownHost = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  const url = `http://${shownHost}:${port}/`;
  logger.info({ url, viewMode }, 'dashboard listening');

  return {
    url,
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
