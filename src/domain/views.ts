/**
 * The SQL views over the pipeline's tables, as code. The dashboard queries them with parameters and
 * Looker Studio reads the same views through its BigQuery connector, so both show the same numbers.
 * Sandbox-safe: pure functions from table names to SQL.
 *
 * Aggregating views are keyed by the UTC minute (`minute`), so any time window is a `WHERE minute >=`
 * plus a `SUM`, and Looker Studio can use `minute` as its date-range dimension. Every view works on
 * BigQuery and on the local emulator (checked by `test/integration/dashboard/views.test.ts`).
 */

/** Physical names of what the views read. `dqResults` may be absent until the quality workflow runs. */
export interface ViewSources {
  projectId: string;
  dataset: string;
  tables: TableIdSettings;
}

/** The physical table ids (the `BIGQUERY_*_TABLE` settings), by logical name. */
export interface TableIdSettings {
  posts: string;
  deadLetter: string;
  loadRuns: string;
  dqResults: string;
  loadFences: string;
  loadRepairs: string;
  deadLetterReplays: string;
  complianceActions: string;
}

export type ViewName =
  | 'v_posts_per_minute'
  | 'v_loaded_per_minute'
  | 'v_top_hashtags'
  | 'v_top_mentions'
  | 'v_top_domains'
  | 'v_languages'
  | 'v_top_posts'
  | 'v_ingestion_lag'
  | 'v_dead_letters_per_minute'
  | 'v_load_runs_recent'
  | 'v_dq_latest'
  | 'v_dq_history';

export interface ViewSpec {
  name: ViewName;
  description: string;
  /** The table keys (of {@link ViewSources.tables}) the view reads; a missing one skips the view. */
  reads: (keyof ViewSources['tables'])[];
  sql: (src: ViewSources) => string;
}

/** `project.dataset.name`, back-quoted. */
export const qualified = (src: Pick<ViewSources, 'projectId' | 'dataset'>, name: string): string =>
  `\`${src.projectId}.${src.dataset}.${name}\``;

const t = (src: ViewSources, key: keyof ViewSources['tables']) => qualified(src, src.tables[key]);

/** Posts are counted once per post id; tag-like values are lower-cased so #Tesla and #tesla merge. */
const perMinuteOf = (column: string, alias: string, key: string) => (src: ViewSources) =>
  `SELECT TIMESTAMP_TRUNC(p.created_at, MINUTE) AS minute, LOWER(v) AS ${alias}, COUNT(DISTINCT p.id) AS posts
FROM ${t(src, 'posts')} AS p, UNNEST(p.${column}) AS v
WHERE v IS NOT NULL AND v != ''
GROUP BY minute, ${key}`;

export const VIEWS: readonly ViewSpec[] = [
  {
    name: 'v_posts_per_minute',
    description: 'Posts per UTC minute of creation (created_at).',
    reads: ['posts'],
    sql: (src) => `SELECT TIMESTAMP_TRUNC(created_at, MINUTE) AS minute, COUNT(*) AS posts
FROM ${t(src, 'posts')}
GROUP BY minute`,
  },
  {
    name: 'v_loaded_per_minute',
    description: 'Posts per UTC minute of loading (ingested_at): the load interval shows as steps.',
    reads: ['posts'],
    sql: (src) => `SELECT TIMESTAMP_TRUNC(ingested_at, MINUTE) AS minute, COUNT(*) AS posts
FROM ${t(src, 'posts')}
WHERE ingested_at IS NOT NULL
GROUP BY minute`,
  },
  {
    name: 'v_top_hashtags',
    description: 'Posts per hashtag (lower-case, without #) per UTC minute of creation.',
    reads: ['posts'],
    sql: perMinuteOf('hashtags', 'hashtag', 'hashtag'),
  },
  {
    name: 'v_top_mentions',
    description: 'Posts per mentioned username (lower-case, without @) per UTC minute of creation.',
    reads: ['posts'],
    sql: perMinuteOf('mentions', 'mention', 'mention'),
  },
  {
    name: 'v_top_domains',
    description: 'Posts per linked domain per UTC minute of creation.',
    reads: ['posts'],
    sql: perMinuteOf('url_domains', 'domain', 'domain'),
  },
  {
    name: 'v_languages',
    description: 'Posts per language (X BCP-47 code; und = undetermined) per UTC minute of creation.',
    reads: ['posts'],
    sql: (
      src,
    ) => `SELECT TIMESTAMP_TRUNC(created_at, MINUTE) AS minute, IFNULL(lang, 'und') AS lang, COUNT(*) AS posts
FROM ${t(src, 'posts')}
GROUP BY minute, lang`,
  },
  {
    name: 'v_top_posts',
    description: 'Every post with its engagement (likes + reposts + replies + quotes) and its x.com link.',
    reads: ['posts'],
    sql: (src) => `SELECT
  id,
  created_at,
  author_username,
  text,
  lang,
  IFNULL(like_count, 0) AS like_count,
  IFNULL(retweet_count, 0) AS retweet_count,
  IFNULL(reply_count, 0) AS reply_count,
  IFNULL(quote_count, 0) AS quote_count,
  IFNULL(like_count, 0) + IFNULL(retweet_count, 0) + IFNULL(reply_count, 0) + IFNULL(quote_count, 0) AS engagement,
  CONCAT('https://x.com/i/web/status/', id) AS url
FROM ${t(src, 'posts')}`,
  },
  {
    name: 'v_ingestion_lag',
    description: 'Per UTC minute of loading: posts loaded and their created → loaded lag in seconds.',
    reads: ['posts'],
    sql: (src) => `SELECT
  TIMESTAMP_TRUNC(ingested_at, MINUTE) AS minute,
  COUNT(*) AS posts,
  SUM(TIMESTAMP_DIFF(ingested_at, created_at, MILLISECOND)) / 1000 AS lag_seconds_sum,
  MIN(TIMESTAMP_DIFF(ingested_at, created_at, MILLISECOND)) / 1000 AS lag_seconds_min,
  MAX(TIMESTAMP_DIFF(ingested_at, created_at, MILLISECOND)) / 1000 AS lag_seconds_max
FROM ${t(src, 'posts')}
WHERE ingested_at IS NOT NULL
GROUP BY minute`,
  },
  {
    name: 'v_dead_letters_per_minute',
    description: 'Dead-lettered messages per UTC minute (first_seen) and failure stage.',
    reads: ['deadLetter'],
    sql: (src) => `SELECT TIMESTAMP_TRUNC(first_seen, MINUTE) AS minute, error_stage, COUNT(*) AS dead_letters
FROM ${t(src, 'deadLetter')}
GROUP BY minute, error_stage`,
  },
  {
    name: 'v_load_runs_recent',
    description: 'Load batches of the last 7 days, newest first in the dashboard.',
    reads: ['loadRuns'],
    sql: (src) => `SELECT
  run_id, workflow_id, attempt, started_at, finished_at, duration_ms, message_count, valid_count,
  rows_loaded, duplicates_skipped, dead_letters, first_publish_time, last_publish_time, outcome
FROM ${t(src, 'loadRuns')}
WHERE started_at >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 7 DAY)`,
  },
  {
    name: 'v_dq_history',
    description: 'Data-quality results (one row per check per run).',
    reads: ['dqResults'],
    sql: (src) => `SELECT
  run_id, \`check\`, window_start, window_end, observed, threshold, status, severity, details, checked_at
FROM ${t(src, 'dqResults')}`,
  },
  {
    name: 'v_dq_latest',
    description: 'The latest data-quality result of each check.',
    reads: ['dqResults'],
    sql: (src) => `SELECT * EXCEPT (rn) FROM (
  SELECT
    run_id, \`check\`, window_start, window_end, observed, threshold, status, severity, details, checked_at,
    ROW_NUMBER() OVER (PARTITION BY \`check\` ORDER BY checked_at DESC, run_id DESC) AS rn
  FROM ${t(src, 'dqResults')}
)
WHERE rn = 1`,
  },
];

/** The DDL that creates or replaces one view (idempotent). */
export function createViewDdl(src: ViewSources, view: ViewSpec): string {
  const description = view.description.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
  return `CREATE OR REPLACE VIEW ${qualified(src, view.name)}
OPTIONS (description = "${description}")
AS
${view.sql(src)}`;
}
