/**
 * The dashboard's SQL: one parameterised query per panel over the views of `src/domain/views.ts`,
 * answering the rows as BigQuery returns them (the dashboard's panels shape them into JSON). A view
 * (or a table it reads) that does not exist yet is reported as a {@link ViewMissingError} naming it,
 * so the panel can explain what to do instead of failing.
 */
import { BigQuery } from '@google-cloud/bigquery';
import type { GcpConfig } from '../../config';
import { VIEWS, qualified, type ViewName } from '../../domain/views';

/**
 * `view`: `FROM project.dataset.v_x` (real BigQuery; the same views Looker Studio reads).
 * `inline`: `FROM (<the view's SQL>)`, the same SQL as a parameterised subquery. The emulator
 * (goccy/bigquery-emulator 0.8) creates and answers views, but every query over a view grows its
 * memory by megabytes until it crashes, so the dashboard inlines them there.
 */
export type ViewMode = 'view' | 'inline';

/** One result row, column name → BigQuery value (TIMESTAMPs as `{ value }`). */
export type SqlRow = Record<string, unknown>;

/** A view that does not exist yet (tables/views not provisioned, dq_results not written yet). */
export class ViewMissingError extends Error {
  override readonly name = 'ViewMissingError';
}

export interface DashboardQueriesOptions {
  bigquery: BigQuery;
  gcp: GcpConfig;
  viewMode: ViewMode;
}

/** The top lists the dashboard shows, and the view and column each reads. */
const TOP_LISTS = {
  hashtags: { view: 'v_top_hashtags', column: 'hashtag' },
  mentions: { view: 'v_top_mentions', column: 'mention' },
  domains: { view: 'v_top_domains', column: 'domain' },
  languages: { view: 'v_languages', column: 'lang' },
} as const satisfies Record<string, { view: ViewName; column: string }>;
export type TopList = keyof typeof TOP_LISTS;

const DQ_COLUMNS =
  'run_id, `check`, status, severity, observed, threshold, details, window_start, window_end, checked_at';

const isNotFound = (err: unknown): boolean => {
  const e = err as { code?: number; message?: string };
  return e?.code === 404 || /not found/i.test(e?.message ?? '');
};

const VIEW_BY_NAME = new Map(VIEWS.map((v) => [v.name, v]));

export function createDashboardQueries(opts: DashboardQueriesOptions) {
  const { bigquery, gcp, viewMode } = opts;

  async function query(view: ViewName, sql: string, params: Record<string, unknown> = {}): Promise<SqlRow[]> {
    const source =
      viewMode === 'view' ? qualified(gcp, view) : `(\n${VIEW_BY_NAME.get(view)!.sql(gcp)}\n) AS ${view}`;
    const text = sql.replace(/\{view\}/g, () => source);
    try {
      const [rows] = await bigquery.query({ query: text, params, location: gcp.location });
      return rows as SqlRow[];
    } catch (err) {
      if (isNotFound(err)) {
        const what =
          viewMode === 'view'
            ? `The view ${gcp.dataset}.${view}`
            : `A table that ${view} reads (${VIEW_BY_NAME.get(view)!
                .reads.map((k) => `${gcp.dataset}.${gcp.tables[k]}`)
                .join(', ')})`;
        throw new ViewMissingError(
          `${what} does not exist yet. Run \`npm run setup\` (it creates the tables and views), ` +
            'or wait for the first load.',
        );
      }
      throw err;
    }
  }

  const perMinute = 'SELECT minute, posts FROM {view} WHERE minute >= @since ORDER BY minute';

  return {
    /** Posts per minute of `created_at` (`minute`, `posts`). */
    createdPerMinute: (since: Date) => query('v_posts_per_minute', perMinute, { since }),
    /** Posts per minute of `ingested_at` (`minute`, `posts`). */
    loadedPerMinute: (since: Date) => query('v_loaded_per_minute', perMinute, { since }),

    /** The `limit` most frequent keys of a top list since `since` (`key`, `posts`). */
    top: (list: TopList, since: Date, limit: number) =>
      query(
        TOP_LISTS[list].view,
        `SELECT ${TOP_LISTS[list].column} AS key, SUM(posts) AS posts FROM {view} WHERE minute >= @since
       GROUP BY key ORDER BY posts DESC, key LIMIT @limit`,
        { since, limit: BigQuery.int(limit) },
      ),

    /** The `limit` posts created since `since` with the most engagement. */
    topPosts: (since: Date, limit: number) =>
      query(
        'v_top_posts',
        `SELECT id, url, author_username, text, lang, created_at, like_count, retweet_count, reply_count,
            quote_count, engagement
     FROM {view} WHERE created_at >= @since
     ORDER BY engagement DESC, created_at DESC, id LIMIT @limit`,
        { since, limit: BigQuery.int(limit) },
      ),

    /** Per loaded minute: `posts`, `lag_seconds_sum`, `lag_seconds_min`, `lag_seconds_max`. */
    ingestionLag: (since: Date) =>
      query(
        'v_ingestion_lag',
        `SELECT minute, posts, lag_seconds_sum, lag_seconds_min, lag_seconds_max FROM {view}
     WHERE minute >= @since ORDER BY minute`,
        { since },
      ),

    /** Per minute and error stage: `dead_letters`. */
    deadLetters: (since: Date) =>
      query(
        'v_dead_letters_per_minute',
        'SELECT minute, error_stage, dead_letters FROM {view} WHERE minute >= @since ORDER BY minute',
        { since },
      ),

    /** The newest `limit` load runs, newest first. */
    recentLoadRuns: (limit: number) =>
      query(
        'v_load_runs_recent',
        `SELECT run_id, attempt, started_at, finished_at, duration_ms, message_count, rows_loaded,
              duplicates_skipped, dead_letters, outcome
       FROM {view} ORDER BY started_at DESC, run_id DESC LIMIT @limit`,
        { limit: BigQuery.int(limit) },
      ),

    /** One row: `runs`, `messages`, `rows_loaded`, `duplicates_skipped`, `dead_letters` since `since`. */
    loadRunTotals: (since: Date) =>
      query(
        'v_load_runs_recent',
        `SELECT COUNT(*) AS runs, SUM(message_count) AS messages, SUM(rows_loaded) AS rows_loaded,
              SUM(duplicates_skipped) AS duplicates_skipped, SUM(dead_letters) AS dead_letters
       FROM {view} WHERE started_at >= @since`,
        { since },
      ),

    /** The latest result of each data-quality check. */
    latestQualityResults: () => query('v_dq_latest', `SELECT ${DQ_COLUMNS} FROM {view}`),

    /** Data-quality results checked since `since`, oldest first. */
    qualityHistory: (since: Date) =>
      query(
        'v_dq_history',
        `SELECT ${DQ_COLUMNS} FROM {view} WHERE checked_at >= @since ORDER BY checked_at, \`check\``,
        { since },
      ),
  };
}

export type DashboardQueries = ReturnType<typeof createDashboardQueries>;
