/**
 * One loader per dashboard panel: the rows of its query (`adapters/bigquery/dashboard-queries.ts`,
 * over the views of `src/domain/views.ts`) shaped into the JSON the page draws. Every panel answers
 * either data, or an explanatory empty state (no rows yet, a view not created yet), or an error;
 * never a bare exception.
 */
import {
  ViewMissingError,
  type DashboardQueries,
  type SqlRow,
  type TopList as TopListName,
} from '../adapters/bigquery/dashboard-queries';
import { SupervisorUnavailableError } from '../adapters/temporal/supervisor-status';
import type { AppConfig } from '../config';
import { budgetLevel, dayOf, monthOf, type BudgetLevel, type BudgetStatus } from '../domain/budget';
import type { GapCounts, GapState, SearchEndpoint, UnsearchableRule } from '../domain/gaps';
import {
  loadWorkflowId,
  qualityWorkflowId,
  supervisorWorkflowId,
  type GapsStatus,
  type PipelineState,
  type PipelineStatus,
} from '../domain/pipeline-status';

export type Range = 'hour' | 'day';
export const RANGES: Record<Range, number> = { hour: 3_600_000, day: 86_400_000 };

export type DashboardConfig = Pick<AppConfig, 'gcp' | 'temporal' | 'x' | 'load' | 'ports'>;

/** What every panel endpoint returns. `message` explains an empty panel (or an error). */
export type Panel<T> =
  | { state: 'ok'; data: T }
  | { state: 'empty'; data?: T; message: string }
  | { state: 'error'; message: string };

export interface PanelContext {
  /** The panels' queries (they read the views by name or inline, as the dashboard was started). */
  queries: DashboardQueries;
  config: DashboardConfig;
  range: Range;
  /** Start of the window. */
  since: Date;
  now: Date;
}

const TOP_N = 10;

/** BigQuery TIMESTAMP values arrive as `{ value }` (BigQueryTimestamp); give the page ISO strings. */
export function iso(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  const raw = typeof v === 'object' && 'value' in (v as object) ? (v as { value: unknown }).value : v;
  const d = raw instanceof Date ? raw : new Date(String(raw));
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

const num = (v: unknown): number => {
  if (v === null || v === undefined) return 0;
  const n =
    typeof v === 'object' && 'value' in (v as object) ? Number((v as { value: unknown }).value) : Number(v);
  return Number.isFinite(n) ? n : 0;
};
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : num(v));
const str = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

/** Runs a loader, turning a missing view into an empty state and any other failure into an error. */
export async function settle<T>(
  load: () => Promise<Panel<T>>,
  onError: (err: unknown) => void,
): Promise<Panel<T>> {
  try {
    return await load();
  } catch (err) {
    if (err instanceof ViewMissingError) return { state: 'empty', message: err.message };
    onError(err);
    return { state: 'error', message: `Query failed: ${(err as Error)?.message ?? String(err)}` };
  }
}

const windowLabel = (r: Range) => (r === 'hour' ? 'the last hour' : 'the last 24 hours');
const panel = <T>(data: T, isEmpty: boolean, message: string): Panel<T> =>
  isEmpty ? { state: 'empty', data, message } : { state: 'ok', data };

// -------------------------------------------------------------------------------------------------
// Volume
// -------------------------------------------------------------------------------------------------

export interface PostsPerMinute {
  bucketSeconds: 60;
  loadIntervalMs: number;
  totalCreated: number;
  totalLoaded: number;
  /** Minutes with any post created or loaded, ascending. */
  points: { minute: string; created: number; loaded: number }[];
}

export async function postsPerMinute(ctx: PanelContext): Promise<Panel<PostsPerMinute>> {
  const [created, loaded] = await Promise.all([
    ctx.queries.createdPerMinute(ctx.since),
    ctx.queries.loadedPerMinute(ctx.since),
  ]);
  const byMinute = new Map<string, { minute: string; created: number; loaded: number }>();
  const at = (m: unknown) => {
    const minute = iso(m)!;
    let p = byMinute.get(minute);
    if (!p) byMinute.set(minute, (p = { minute, created: 0, loaded: 0 }));
    return p;
  };
  for (const r of created) at(r.minute).created += num(r.posts);
  for (const r of loaded) at(r.minute).loaded += num(r.posts);
  const points = [...byMinute.values()].sort((a, b) => a.minute.localeCompare(b.minute));
  const data: PostsPerMinute = {
    bucketSeconds: 60,
    loadIntervalMs: ctx.config.load.intervalMs,
    totalCreated: points.reduce((s, p) => s + p.created, 0),
    totalLoaded: points.reduce((s, p) => s + p.loaded, 0),
    points,
  };
  return panel(
    data,
    points.length === 0,
    `No posts in ${windowLabel(ctx.range)}. Posts appear here after the load workflow's next batch ` +
      `(every ${Math.round(ctx.config.load.intervalMs / 1000)} s) once the stream is running.`,
  );
}

// -------------------------------------------------------------------------------------------------
// Top lists
// -------------------------------------------------------------------------------------------------

export interface TopList {
  items: { key: string; posts: number }[];
}

function topOf(list: TopListName, what: string) {
  return async (ctx: PanelContext): Promise<Panel<TopList>> => {
    const rows = await ctx.queries.top(list, ctx.since, TOP_N);
    const items = rows.map((r) => ({ key: String(r.key), posts: num(r.posts) }));
    return panel({ items }, items.length === 0, `No ${what} in posts of ${windowLabel(ctx.range)}.`);
  };
}

export const topHashtags = topOf('hashtags', 'hashtags');
export const topMentions = topOf('mentions', 'mentions');
export const topDomains = topOf('domains', 'links');
export const languages = topOf('languages', 'posts');

export interface TopPosts {
  items: {
    id: string;
    url: string;
    author: string | null;
    text: string | null;
    lang: string | null;
    createdAt: string | null;
    likes: number;
    reposts: number;
    replies: number;
    quotes: number;
    engagement: number;
  }[];
}

export async function topPosts(ctx: PanelContext): Promise<Panel<TopPosts>> {
  const rows = await ctx.queries.topPosts(ctx.since, TOP_N);
  const items = rows.map((r) => ({
    id: String(r.id),
    url: String(r.url),
    author: str(r.author_username),
    text: str(r.text),
    lang: str(r.lang),
    createdAt: iso(r.created_at),
    likes: num(r.like_count),
    reposts: num(r.retweet_count),
    replies: num(r.reply_count),
    quotes: num(r.quote_count),
    engagement: num(r.engagement),
  }));
  return panel({ items }, items.length === 0, `No posts in ${windowLabel(ctx.range)}.`);
}

// -------------------------------------------------------------------------------------------------
// Pipeline: lag, dead letters, load runs (and the backlog they reveal)
// -------------------------------------------------------------------------------------------------

export interface IngestionLag {
  /** Posts loaded in the window. */
  posts: number;
  avgSeconds: number | null;
  minSeconds: number | null;
  maxSeconds: number | null;
  /** The latest loaded minute's average. */
  latest: { minute: string; avgSeconds: number } | null;
  points: { minute: string; posts: number; avgSeconds: number; maxSeconds: number }[];
}

export async function ingestionLag(ctx: PanelContext): Promise<Panel<IngestionLag>> {
  const rows = await ctx.queries.ingestionLag(ctx.since);
  const points = rows.map((r) => ({
    minute: iso(r.minute)!,
    posts: num(r.posts),
    avgSeconds: num(r.posts) > 0 ? num(r.lag_seconds_sum) / num(r.posts) : 0,
    maxSeconds: num(r.lag_seconds_max),
    minSeconds: num(r.lag_seconds_min),
  }));
  const posts = points.reduce((s, p) => s + p.posts, 0);
  const sum = rows.reduce((s, r) => s + num(r.lag_seconds_sum), 0);
  const last = points.at(-1);
  const data: IngestionLag = {
    posts,
    avgSeconds: posts > 0 ? sum / posts : null,
    minSeconds: points.length > 0 ? Math.min(...points.map((p) => p.minSeconds)) : null,
    maxSeconds: points.length > 0 ? Math.max(...points.map((p) => p.maxSeconds)) : null,
    latest: last ? { minute: last.minute, avgSeconds: last.avgSeconds } : null,
    points: points.map(({ minute, posts: n, avgSeconds, maxSeconds }) => ({
      minute,
      posts: n,
      avgSeconds,
      maxSeconds,
    })),
  };
  return panel(data, posts === 0, `No posts loaded in ${windowLabel(ctx.range)}, so no lag to measure.`);
}

export interface DeadLetters {
  total: number;
  byStage: { stage: string; count: number }[];
  points: { minute: string; count: number }[];
}

export async function deadLetters(ctx: PanelContext): Promise<Panel<DeadLetters>> {
  const rows = await ctx.queries.deadLetters(ctx.since);
  const stages = new Map<string, number>();
  const minutes = new Map<string, number>();
  for (const r of rows) {
    const n = num(r.dead_letters);
    const stage = String(r.error_stage);
    stages.set(stage, (stages.get(stage) ?? 0) + n);
    const m = iso(r.minute)!;
    minutes.set(m, (minutes.get(m) ?? 0) + n);
  }
  const data: DeadLetters = {
    total: [...stages.values()].reduce((s, n) => s + n, 0),
    byStage: [...stages]
      .map(([stage, count]) => ({ stage, count }))
      .sort((a, b) => b.count - a.count || a.stage.localeCompare(b.stage)),
    points: [...minutes].map(([minute, count]) => ({ minute, count })),
  };
  return panel(data, data.total === 0, `No dead letters in ${windowLabel(ctx.range)}: every message loaded.`);
}

export interface LoadRun {
  runId: string;
  startedAt: string | null;
  finishedAt: string | null;
  durationMs: number | null;
  messages: number;
  rowsLoaded: number;
  duplicatesSkipped: number;
  deadLetters: number;
  outcome: string | null;
  attempt: number | null;
}

export interface LoadRuns {
  /** Newest first. */
  items: LoadRun[];
  window: {
    runs: number;
    messages: number;
    rowsLoaded: number;
    duplicatesSkipped: number;
    deadLetters: number;
  };
  /**
   * The backlog as the last batch reveals it: a batch at least LOAD_BACKLOG_THRESHOLD messages full
   * means more were waiting in the subscription.
   */
  backlog: {
    lastBatchMessages: number | null;
    threshold: number;
    batchFull: boolean;
    lastRunAgeSeconds: number | null;
  };
}

export async function loadRuns(ctx: PanelContext): Promise<Panel<LoadRuns>> {
  const [recent, totals] = await Promise.all([
    ctx.queries.recentLoadRuns(TOP_N),
    ctx.queries.loadRunTotals(ctx.since),
  ]);
  const items: LoadRun[] = recent.map((r) => ({
    runId: String(r.run_id),
    startedAt: iso(r.started_at),
    finishedAt: iso(r.finished_at),
    durationMs: numOrNull(r.duration_ms),
    messages: num(r.message_count),
    rowsLoaded: num(r.rows_loaded),
    duplicatesSkipped: num(r.duplicates_skipped),
    deadLetters: num(r.dead_letters),
    outcome: str(r.outcome),
    attempt: numOrNull(r.attempt),
  }));
  const t = totals[0] ?? {};
  const last = items[0];
  const lastAt = last ? (last.finishedAt ?? last.startedAt) : null;
  const threshold = ctx.config.load.backlogThreshold;
  const data: LoadRuns = {
    items,
    window: {
      runs: num(t.runs),
      messages: num(t.messages),
      rowsLoaded: num(t.rows_loaded),
      duplicatesSkipped: num(t.duplicates_skipped),
      deadLetters: num(t.dead_letters),
    },
    backlog: {
      lastBatchMessages: last ? last.messages : null,
      threshold,
      batchFull: last ? last.messages >= threshold : false,
      lastRunAgeSeconds: lastAt ? Math.max(0, (ctx.now.getTime() - Date.parse(lastAt)) / 1000) : null,
    },
  };
  return panel(
    data,
    items.length === 0,
    'No load runs in the last 7 days. The load workflow writes one row per batch once it runs.',
  );
}

// -------------------------------------------------------------------------------------------------
// Data quality
// -------------------------------------------------------------------------------------------------

export interface DqResult {
  runId: string | null;
  check: string;
  status: string;
  severity: string | null;
  observed: number | null;
  threshold: number | null;
  details: string | null;
  windowStart: string | null;
  windowEnd: string | null;
  checkedAt: string | null;
}

export interface Quality {
  /** Latest result of each check, failing first. */
  latest: DqResult[];
  /** The last 24 hours, oldest first. */
  history: DqResult[];
  overall: 'ok' | 'warn' | 'fail' | null;
}

const dqRow = (r: SqlRow): DqResult => ({
  runId: str(r.run_id),
  check: String(r.check),
  status: String(r.status),
  severity: str(r.severity),
  observed: numOrNull(r.observed),
  threshold: numOrNull(r.threshold),
  details: str(r.details),
  windowStart: iso(r.window_start),
  windowEnd: iso(r.window_end),
  checkedAt: iso(r.checked_at),
});

const STATUS_RANK: Record<string, number> = { fail: 0, warn: 1, ok: 2 };

export async function quality(ctx: PanelContext): Promise<Panel<Quality>> {
  const dayAgo = new Date(ctx.now.getTime() - RANGES.day);
  let latestRows: SqlRow[];
  let historyRows: SqlRow[];
  try {
    [latestRows, historyRows] = await Promise.all([
      ctx.queries.latestQualityResults(),
      ctx.queries.qualityHistory(dayAgo),
    ]);
  } catch (err) {
    if (!(err instanceof ViewMissingError)) throw err;
    return {
      state: 'empty',
      data: { latest: [], history: [], overall: null },
      message:
        `No data-quality results yet: the ${ctx.config.gcp.tables.dqResults} table or its views do not ` +
        'exist. The quality workflow writes them on its first run; `npm run setup` then creates the views.',
    };
  }
  const latest = latestRows
    .map(dqRow)
    .sort(
      (a, b) => (STATUS_RANK[a.status] ?? 3) - (STATUS_RANK[b.status] ?? 3) || a.check.localeCompare(b.check),
    );
  const history = historyRows.map(dqRow);
  const overall =
    latest.length === 0
      ? null
      : latest.some((r) => r.status === 'fail')
        ? 'fail'
        : latest.some((r) => r.status === 'warn')
          ? 'warn'
          : 'ok';
  return panel(
    { latest, history, overall },
    latest.length === 0,
    'No data-quality results yet: the quality workflow has not run a check.',
  );
}

// -------------------------------------------------------------------------------------------------
// Supervisor status (Temporal) and links
// -------------------------------------------------------------------------------------------------

export { SupervisorUnavailableError };

export interface WorkflowLink {
  role: 'supervisor' | 'load' | 'quality';
  workflowId: string;
  url: string;
}

export interface PipelineHealth {
  links: WorkflowLink[];
  running: boolean;
  /** Why the supervisor's status is not shown (when `running` is false). */
  reason?: string;
  status?: PipelineStatus;
}

export function workflowLinks(config: DashboardConfig): WorkflowLink[] {
  const ns = encodeURIComponent(config.temporal.namespace);
  const link = (role: WorkflowLink['role'], workflowId: string): WorkflowLink => ({
    role,
    workflowId,
    url: `${config.temporal.uiUrl}/namespaces/${ns}/workflows/${encodeURIComponent(workflowId)}`,
  });
  const name = config.x.streamName;
  return [
    link('supervisor', supervisorWorkflowId(name)),
    // One load child per lane (LOAD_LANES; `x-ingest-<name>-load` with one lane).
    ...Array.from({ length: config.load.lanes }, (_, k) =>
      link('load', loadWorkflowId(name, k, config.load.lanes)),
    ),
    link('quality', qualityWorkflowId(name)),
  ];
}

export async function pipelineHealth(
  config: DashboardConfig,
  status: () => Promise<PipelineStatus>,
): Promise<Panel<PipelineHealth>> {
  const links = workflowLinks(config);
  try {
    const s = await status();
    return { state: 'ok', data: { links, running: true, status: s } };
  } catch (err) {
    const reason =
      err instanceof SupervisorUnavailableError
        ? err.message
        : `The supervisor's status query failed: ${(err as Error)?.message ?? String(err)}`;
    return { state: 'empty', data: { links, running: false, reason }, message: reason };
  }
}

// -------------------------------------------------------------------------------------------------
// X reads and gaps (the supervisor's read budget and gap ledger)
// -------------------------------------------------------------------------------------------------

/** Said in place of the budget or the gap ledger when the supervisor's `status` has no such field. */
export const NOT_REPORTED =
  'Not reported by this supervisor: it runs a version without the read budget and the gap ledger.';

/** Rows of the gap table. */
export const LATEST_GAPS_SHOWN = 8;

export interface ReadsView {
  /** UTC day and month the counts below belong to (the dashboard's, when the supervisor's are older). */
  day: string;
  month: string;
  dayPosts: number;
  monthPosts: number;
  /** Of `monthPosts`, read by search (gap fill). */
  monthSearchPosts: number;
  /** Posts per month; null = no limit. */
  monthlyPosts: number | null;
  /** `monthPosts` as a percentage of `monthlyPosts` (may pass 100); null = no limit. */
  usedPercent: number | null;
  costPerPostUsd: number;
  estimatedCostTodayUsd: number;
  estimatedCostMonthUsd: number;
  level: BudgetLevel;
  /** The supervisor's last counted day, when it is older than today (nothing read since). */
  lastCountedDay: string | null;
  /** Set while the stream is held by the budget or X's usage cap. */
  hold: { by: 'budget' | 'x-usage-cap'; label: string; detail: string; until: string | null } | null;
}

export interface GapRow {
  id: string;
  start: string;
  end: string;
  durationSeconds: number | null;
  reason: string;
  state: GapState;
  postsFound: number | null;
  postsPublished: number | null;
  unsearchable: UnsearchableRule[];
  detail: string | null;
  endpoint: SearchEndpoint | null;
  finishedAt: string | null;
}

export interface GapsView {
  counts: GapCounts;
  /** The stream is not delivering right now: since when (X's clock) and why. */
  open: { start: string; reason: string } | null;
  /** The newest gaps of the ledger, newest first (at most {@link LATEST_GAPS_SHOWN}). */
  latest: GapRow[];
  /** Gaps the supervisor keeps in its ledger (every unfinished one and the newest finished ones). */
  inLedger: number;
}

export interface ReadsAndGaps {
  state: PipelineState;
  /** Null: not reported by this supervisor ({@link NOT_REPORTED}). */
  reads: ReadsView | null;
  gaps: GapsView | null;
  notReported: string;
}

const HOLD_LABEL = { budget: 'budget exhausted', 'x-usage-cap': 'X usage cap' } as const;

/**
 * The reads, with counters of an earlier UTC day or month shown as today's and this month's zero: the
 * supervisor rolls its counters over only when it next counts a read, so a quiet stream would
 * otherwise show yesterday's reads as today's.
 */
export function readsView(b: BudgetStatus, state: PipelineState, now: Date): ReadsView {
  const today = dayOf(now.getTime());
  const thisMonth = monthOf(now.getTime());
  const dayStale = typeof b.day === 'string' && b.day < today;
  const monthStale = typeof b.month === 'string' && b.month < thisMonth;
  const monthlyPosts = typeof b.monthlyPosts === 'number' ? b.monthlyPosts : null;
  const monthPosts = monthStale ? 0 : num(b.monthPosts);
  const usage = {
    day: dayStale ? today : String(b.day ?? today),
    dayPosts: dayStale ? 0 : num(b.dayPosts),
    month: monthStale ? thisMonth : String(b.month ?? thisMonth),
    monthPosts,
    monthSearchPosts: monthStale ? 0 : num(b.monthSearchPosts),
  };
  const by = b.hold?.by === 'x-usage-cap' ? 'x-usage-cap' : 'budget';
  const hold: ReadsView['hold'] = b.hold
    ? { by, label: HOLD_LABEL[by], detail: String(b.hold.detail ?? ''), until: iso(b.hold.until) }
    : state === 'budget-exhausted'
      ? { by: 'budget', label: HOLD_LABEL.budget, detail: 'The supervisor gave no detail.', until: null }
      : null;
  return {
    ...usage,
    monthlyPosts,
    // A budget of 0 is spent before the first read.
    usedPercent: monthlyPosts === null ? null : monthlyPosts > 0 ? (100 * monthPosts) / monthlyPosts : 100,
    costPerPostUsd: num(b.costPerPostUsd),
    estimatedCostTodayUsd: dayStale ? 0 : num(b.estimatedCostTodayUsd),
    estimatedCostMonthUsd: monthStale ? 0 : num(b.estimatedCostMonthUsd),
    level: monthStale
      ? budgetLevel(
          { ...usage, warnedPercent: 0 },
          { monthlyPosts: monthlyPosts ?? undefined, costPerPostUsd: 0 },
        )
      : (b.level ?? 'ok'),
    lastCountedDay: dayStale ? b.day : null,
    hold,
  };
}

export function gapsView(g: GapsStatus): GapsView {
  const c: Partial<GapCounts> = g.counts ?? {};
  const ledger = Array.isArray(g.ledger) ? g.ledger : [];
  const latest = [...ledger]
    .sort((a, b) => String(b.start).localeCompare(String(a.start)))
    .slice(0, LATEST_GAPS_SHOWN)
    .map((x): GapRow => ({
      id: String(x.id),
      start: x.start,
      end: x.end,
      durationSeconds:
        Number.isFinite(Date.parse(x.start)) && Number.isFinite(Date.parse(x.end))
          ? (Date.parse(x.end) - Date.parse(x.start)) / 1000
          : null,
      reason: String(x.reason),
      state: x.state,
      postsFound: numOrNull(x.postsFound),
      postsPublished: numOrNull(x.postsPublished),
      unsearchable: x.unsearchable ?? [],
      detail: str(x.detail),
      endpoint: x.endpoint ?? null,
      finishedAt: str(x.finishedAt),
    }));
  return {
    counts: {
      found: num(c.found),
      open: num(c.open),
      pending: num(c.pending),
      filled: num(c.filled),
      unrecoverable: num(c.unrecoverable),
      skipped: num(c.skipped),
      postsFilled: num(c.postsFilled),
    },
    open: g.open ? { start: g.open.start, reason: String(g.open.reason) } : null,
    latest,
    inLedger: ledger.length,
  };
}

/**
 * The reads from X (today, this month, by search, the estimated cost, the budget and any hold) and
 * the gap ledger, from the same `status` answer as the pipeline panel. A supervisor that predates
 * them answers without these fields: each missing part is shown as {@link NOT_REPORTED}.
 */
export function readsAndGaps(health: Panel<PipelineHealth>, now: Date): Panel<ReadsAndGaps> {
  const status = health.state === 'error' ? undefined : health.data?.status;
  if (!status) {
    const why = health.state === 'ok' ? 'the supervisor sent no status.' : health.message;
    return { state: 'empty', message: `No reads from X or gaps to show. ${why}` };
  }
  const data: ReadsAndGaps = {
    state: status.state,
    reads: status.budget ? readsView(status.budget, status.state, now) : null,
    gaps: status.gaps ? gapsView(status.gaps) : null,
    notReported: NOT_REPORTED,
  };
  return data.reads || data.gaps
    ? { state: 'ok', data }
    : { state: 'empty', data, message: `X reads and gaps: ${NOT_REPORTED}` };
}
