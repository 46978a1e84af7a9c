/**
 * Seeds a fresh dataset on the BigQuery emulator for the dashboard tests: the tables from the
 * TableSpecs of `src/domain/bigquery-schema.ts` and `src/domain/quality.ts` (`dq_results`),
 * and rows placed relative to `now` so the expected numbers of each panel are known.
 */
import type { BigQuery } from '@google-cloud/bigquery';
import { tableIds } from '../../../src/adapters/bigquery/provision';
import type { AppConfig } from '../../../src/config';
import { TABLES, type TableSpec } from '../../../src/domain/bigquery-schema';
import { budgetStatus, dayOf, monthOf, type BudgetStatus } from '../../../src/domain/budget';
import type { GapsStatus, PipelineStatus } from '../../../src/domain/pipeline-status';
import { DQ_RESULTS_TABLE } from '../../../src/domain/quality';

type Gcp = AppConfig['gcp'];

const tableIdOf = (gcp: Gcp, spec: TableSpec) => tableIds(gcp)[spec.name];

/** Creates the dataset and the pipeline tables (and `dq_results` unless told not to). */
export async function createTables(bq: BigQuery, gcp: Gcp, opts: { dq?: boolean } = {}): Promise<void> {
  await bq.createDataset(gcp.dataset, { location: gcp.location });
  const ds = bq.dataset(gcp.dataset);
  for (const spec of TABLES) {
    await ds.table(tableIdOf(gcp, spec)).create({
      schema: { fields: spec.columns.map((c) => ({ name: c.name, type: c.type, mode: c.mode })) },
      timePartitioning: { type: 'DAY', field: spec.partitionField },
    });
  }
  if (opts.dq !== false) await createDqTable(bq, gcp);
}

export async function createDqTable(bq: BigQuery, gcp: Gcp): Promise<void> {
  await bq
    .dataset(gcp.dataset)
    .table(gcp.tables.dqResults)
    .create({
      schema: { fields: DQ_RESULTS_TABLE.columns.map((c) => ({ name: c.name, type: c.type, mode: c.mode })) },
    });
}

const MIN = 60_000;
const iso = (ms: number) => new Date(ms).toISOString();

interface PostSeed {
  id: string;
  ageMs: number;
  lagMs: number;
  hashtags?: string[];
  mentions?: string[];
  domains?: string[];
  lang?: string | null;
  author?: string;
  likes?: number;
  reposts?: number;
  replies?: number;
  quotes?: number;
}

/** Posts: three in the last hour, one three hours ago, one two days ago. */
export const POSTS: PostSeed[] = [
  {
    id: '1001',
    ageMs: 10 * MIN,
    lagMs: 60_000,
    hashtags: ['Tesla', 'EV'],
    mentions: ['elonmusk'],
    domains: ['tesla.com'],
    lang: 'en',
    author: 'alice',
    likes: 10,
    reposts: 5,
    replies: 1,
    quotes: 0,
  },
  { id: '1002', ageMs: 10 * MIN, lagMs: 60_000, hashtags: ['tesla'], lang: 'en', author: 'bob', likes: 1 },
  {
    id: '1003',
    ageMs: 5 * MIN,
    lagMs: 30_000,
    hashtags: ['ev'],
    mentions: ['ElonMusk', 'nasa'],
    domains: ['nasa.gov', 'tesla.com'],
    lang: 'de',
    author: 'carol',
    likes: 3,
    reposts: 2,
  },
  { id: '1004', ageMs: 180 * MIN, lagMs: 120_000, hashtags: ['old'], lang: 'fr', author: 'dave', likes: 100 },
  { id: '1005', ageMs: 2 * 24 * 60 * MIN, lagMs: 5_000, hashtags: ['ancient'], lang: 'ja', likes: 1000 },
];

export async function seedRows(bq: BigQuery, gcp: Gcp, now: number): Promise<void> {
  const ds = bq.dataset(gcp.dataset);
  await ds.table(gcp.tables.posts).insert(
    POSTS.map((p) => ({
      id: p.id,
      text: `post ${p.id} about ${(p.hashtags ?? []).join(' ')}`,
      created_at: iso(now - p.ageMs),
      author_id: `u${p.id}`,
      author_username: p.author ?? null,
      lang: p.lang ?? null,
      like_count: p.likes ?? 0,
      retweet_count: p.reposts ?? 0,
      reply_count: p.replies ?? 0,
      quote_count: p.quotes ?? 0,
      hashtags: p.hashtags ?? [],
      mentions: p.mentions ?? [],
      urls: (p.domains ?? []).map((d) => `https://${d}/x`),
      url_domains: p.domains ?? [],
      received_at: iso(now - p.ageMs + 1000),
      ingested_at: iso(now - p.ageMs + p.lagMs),
      message_id: `m${p.id}`,
      load_run_id: 'run-a',
      schema_version: 1,
    })),
  );
  await ds.table(gcp.tables.deadLetter).insert([
    { message_id: 'd1', error_stage: 'validate', error_message: 'no id', first_seen: iso(now - 7 * MIN) },
    { message_id: 'd2', error_stage: 'validate', error_message: 'no id', first_seen: iso(now - 7 * MIN) },
    { message_id: 'd3', error_stage: 'decode', error_message: 'not JSON', first_seen: iso(now - 2 * MIN) },
    {
      message_id: 'd4',
      error_stage: 'decode',
      error_message: 'not JSON',
      first_seen: iso(now - 5 * 60 * MIN),
    },
  ]);
  const run = (
    id: string,
    ageMs: number,
    messages: number,
    loaded: number,
    dead: number,
    outcome: string,
  ) => ({
    run_id: id,
    batch_id: `b-${id}`,
    workflow_id: 'x-ingest-default-load',
    attempt: 1,
    started_at: iso(now - ageMs),
    finished_at: iso(now - ageMs + 1500),
    duration_ms: 1500,
    message_count: messages,
    valid_count: messages - dead,
    rows_loaded: loaded,
    duplicates_skipped: messages - dead - loaded,
    dead_letters: dead,
    columns_added: [],
    outcome,
  });
  await ds
    .table(gcp.tables.loadRuns)
    .insert([
      run('run-a', 9 * MIN, 4, 2, 2, 'partial'),
      run('run-b', 4 * MIN, 5, 1, 1, 'partial'),
      run('run-old', 8 * 24 * 60 * MIN, 9, 9, 0, 'loaded'),
      run('run-day', 3 * 60 * MIN, 2, 2, 0, 'loaded'),
    ]);
  const dq = (run: string, check: string, ageMs: number, status: string, observed: number) => ({
    run_id: run,
    check,
    window_start: iso(now - ageMs - 5 * MIN),
    window_end: iso(now - ageMs),
    observed,
    threshold: 1,
    status,
    severity: status === 'warn' ? 'warn' : 'fail',
    details: `${check} observed ${observed}`,
    checked_at: iso(now - ageMs),
  });
  await ds
    .table(gcp.tables.dqResults)
    .insert([
      dq('dq1', 'freshness', 20 * MIN, 'ok', 0.5),
      dq('dq2', 'freshness', 1 * MIN, 'fail', 7),
      dq('dq2', 'volume', 1 * MIN, 'ok', 0),
      dq('dq0', 'schema', 2 * 24 * 60 * MIN, 'warn', 2),
    ]);
}

/**
 * What a running supervisor answers to its `status` query (the logic under test is the dashboard's),
 * with its read budget and gap ledger ({@link readsOf}, {@link gapsOf}).
 */
export function runningStatus(now: number): PipelineStatus {
  return { ...legacyStatus(now), budget: readsOf(now), gaps: gapsOf(now) };
}

/** The read budget: 1,234 posts read today, 45,678 this month (321 by search) of 50,000: over 80 %. */
export function readsOf(now: number, hold?: BudgetStatus['hold']): BudgetStatus {
  return budgetStatus(
    {
      day: dayOf(now),
      dayPosts: 1234,
      month: monthOf(now),
      monthPosts: 45_678,
      monthSearchPosts: 321,
      warnedPercent: 80,
    },
    { monthlyPosts: 50_000, costPerPostUsd: 0.005 },
    hold,
  );
}

/**
 * The gap ledger: four gaps (filled, unrecoverable with a rule search cannot run, skipped, pending),
 * oldest first as the supervisor keeps them, and a gap open since a minute ago.
 */
export function gapsOf(now: number): GapsStatus {
  return {
    counts: { found: 4, open: 1, pending: 1, filled: 1, unrecoverable: 1, skipped: 1, postsFilled: 40 },
    open: { start: iso(now - MIN), reason: 'disconnect:http_503' },
    ledger: [
      {
        id: 'gap-filled',
        start: iso(now - 50 * MIN),
        end: iso(now - 49 * MIN),
        reason: 'worker-restart',
        state: 'filled',
        recordedAt: iso(now - 49 * MIN),
        postsFound: 42,
        postsPublished: 40,
        unsearchable: [],
        endpoint: 'recent',
        finishedAt: iso(now - 48 * MIN),
      },
      {
        id: 'gap-unrecoverable',
        start: iso(now - 30 * MIN),
        end: iso(now - 30 * MIN + 30_000),
        reason: 'disconnect:stall',
        state: 'unrecoverable',
        recordedAt: iso(now - 29 * MIN),
        postsFound: 7,
        postsPublished: 7,
        unsearchable: [{ rule: 'sample:10 tesla', reason: 'sample: is not available on search' }],
        detail: '1 rule could not be searched',
        endpoint: 'recent',
        finishedAt: iso(now - 28 * MIN),
      },
      {
        id: 'gap-skipped',
        start: iso(now - 20 * MIN),
        end: iso(now - 15 * MIN),
        reason: 'paused',
        state: 'skipped',
        recordedAt: iso(now - 15 * MIN),
      },
      {
        id: 'gap-pending',
        start: iso(now - 3 * MIN),
        end: iso(now - 2 * MIN),
        reason: 'continue-as-new',
        state: 'pending',
        recordedAt: iso(now - 2 * MIN),
      },
    ],
  };
}

/** What a supervisor that predates the read budget and the gap ledger answers: neither field. */
export function legacyStatus(now: number): PipelineStatus {
  return {
    streamName: 'default',
    state: 'running',
    rules: [{ value: 'tesla', tag: 'tesla' }],
    progress: {
      connected: true,
      postsReceived: 120,
      postsPublished: 118,
      malformedPublished: 2,
      duplicatesSuppressed: 0,
      reconnects: 3,
      reconnectsByReason: { stall: 2, http_429: 1 },
      backpressurePauses: 0,
      lastPostId: '1003',
      lastPostAt: iso(now - 5 * MIN),
      lastError: 'stream stalled for 20 s; reconnected',
      updatedAt: iso(now - 2000),
    },
    publishedByMinute: [],
    children: {
      load: { workflowId: 'x-ingest-default-load', state: 'running', restarts: 0 },
      quality: { workflowId: 'x-ingest-default-quality', state: 'running', restarts: 1 },
    },
    generation: 0,
    startedAt: iso(now - 60 * MIN),
  };
}
