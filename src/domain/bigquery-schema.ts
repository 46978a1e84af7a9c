/**
 * The BigQuery tables as code: `posts`, `posts_dead_letter` and `load_runs`, and the pure mapping from a
 * Pub/Sub message carrying a {@link Post} to a `posts` row (or a dead-letter row). Sandbox-safe: no Node
 * APIs, so workflows and tests can import it.
 *
 * Column types are restricted to what both BigQuery and the local emulator handle in NDJSON load jobs
 * and the insert-if-absent statements: scalars and REPEATED scalars only (no RECORD columns). Nested parts of a post are
 * flattened (`author.username` → `author_username`, `matching_rules[].tag` → `matching_rule_tags`).
 *
 * Schema evolution:
 * - A new optional field in `Post` (or in `post.author` / `post.metrics`) that this code does not know
 *   yet becomes a NULLABLE column named by {@link extraColumnName}: the loader adds it with a table
 *   patch, without a restart or a manual step, and fills it.
 * - Anything else (a column removed, renamed, retyped, or made REQUIRED) is a breaking change: the
 *   provisioner refuses to run and says what to do (see {@link diffSchema}).
 */
import { POST_SCHEMA_VERSION, type Post } from './post';

export type ColumnType = 'STRING' | 'INT64' | 'FLOAT64' | 'BOOL' | 'TIMESTAMP';
export type ColumnMode = 'NULLABLE' | 'REQUIRED' | 'REPEATED';

/** One column, in the shape of BigQuery's `TableFieldSchema` (scalars only). */
export interface Column {
  name: string;
  type: ColumnType;
  mode: ColumnMode;
  description?: string;
}

/** A table as code: its columns, its time partitioning and its clustering. */
export interface TableSpec {
  /** Logical name; the physical table id comes from the configuration. */
  name:
    | 'posts'
    | 'posts_dead_letter'
    | 'load_runs'
    | 'load_fences'
    | 'load_repairs'
    | 'dead_letter_replays'
    | 'compliance_actions';
  description: string;
  columns: Column[];
  /** Day-partitioned on this TIMESTAMP column. */
  partitionField: string;
  /** Up to four clustering columns. */
  clustering: string[];
  /** Columns that identify a row; the insert-if-absent keys (a row is inserted only when its key is absent). */
  key: string[];
}

/** A column, in the shape of BigQuery's `TableFieldSchema` (shared by every table spec). */
export const col = (name: string, type: ColumnType, mode: ColumnMode, description: string): Column => ({
  name,
  type,
  mode,
  description,
});

/** `posts`: one row per post id. */
export const POSTS_TABLE: TableSpec = {
  name: 'posts',
  description: 'One row per X post id (exactly once), flattened from the normalised Post record.',
  partitionField: 'created_at',
  clustering: ['lang', 'author_id'],
  key: ['id'],
  columns: [
    col('id', 'STRING', 'REQUIRED', 'Post id (64-bit, as a string).'),
    col('text', 'STRING', 'NULLABLE', 'Full text (note_tweet.text for long posts).'),
    col('created_at', 'TIMESTAMP', 'REQUIRED', 'When the post was created (partitioning column).'),
    col('author_id', 'STRING', 'NULLABLE', 'Author user id.'),
    col('author_username', 'STRING', 'NULLABLE', 'Author handle, without @.'),
    col('author_name', 'STRING', 'NULLABLE', 'Author display name.'),
    col('author_verified', 'BOOL', 'NULLABLE', 'Author verified flag.'),
    col('author_followers_count', 'INT64', 'NULLABLE', 'Author followers at the time of the post.'),
    col('lang', 'STRING', 'NULLABLE', 'BCP-47 language detected by X.'),
    col('retweet_count', 'INT64', 'NULLABLE', 'public_metrics.retweet_count when received.'),
    col('reply_count', 'INT64', 'NULLABLE', 'public_metrics.reply_count when received.'),
    col('like_count', 'INT64', 'NULLABLE', 'public_metrics.like_count when received.'),
    col('quote_count', 'INT64', 'NULLABLE', 'public_metrics.quote_count when received.'),
    col('bookmark_count', 'INT64', 'NULLABLE', 'public_metrics.bookmark_count when received.'),
    col('impression_count', 'INT64', 'NULLABLE', 'public_metrics.impression_count when received.'),
    col('hashtags', 'STRING', 'REPEATED', 'Hashtags without #.'),
    col('mentions', 'STRING', 'REPEATED', 'Mentioned usernames without @.'),
    col('urls', 'STRING', 'REPEATED', 'Expanded URLs (t.co URL when no expansion).'),
    col('url_domains', 'STRING', 'REPEATED', 'Host names of the URLs, same order as urls.'),
    col('replied_to_id', 'STRING', 'NULLABLE', 'Id of the post this one replies to.'),
    col('quoted_id', 'STRING', 'NULLABLE', 'Id of the post this one quotes.'),
    col('retweeted_id', 'STRING', 'NULLABLE', 'Id of the post this one reposts.'),
    col('referenced_post_ids', 'STRING', 'REPEATED', 'All referenced post ids.'),
    col('referenced_post_types', 'STRING', 'REPEATED', 'replied_to|quoted|retweeted, same order.'),
    col('conversation_id', 'STRING', 'NULLABLE', 'Conversation (thread root) id.'),
    col('edit_history_ids', 'STRING', 'REPEATED', 'Ids of every version of the post.'),
    col('possibly_sensitive', 'BOOL', 'NULLABLE', 'X sensitive-media flag.'),
    col('matching_rule_ids', 'STRING', 'REPEATED', 'Filtered-stream rule ids that matched.'),
    col('matching_rule_tags', 'STRING', 'REPEATED', 'Tags of the matching rules, same order.'),
    col('received_at', 'TIMESTAMP', 'NULLABLE', 'When the stream reader received the line.'),
    col('raw', 'STRING', 'NULLABLE', 'The original JSON line from X.'),
    col(
      'source',
      'STRING',
      'NULLABLE',
      'How the post was read: NULL = the filtered stream, search = the gap fill (X search).',
    ),
    col('message_id', 'STRING', 'NULLABLE', 'Pub/Sub message id of the first delivery loaded.'),
    col(
      'attributes',
      'STRING',
      'NULLABLE',
      'Pub/Sub message attributes of that delivery, as a JSON object (lane, rule_tags, source…).',
    ),
    col('publish_time', 'TIMESTAMP', 'NULLABLE', 'Pub/Sub publish time.'),
    col('ingested_at', 'TIMESTAMP', 'NULLABLE', 'When the load batch wrote the row.'),
    col('load_run_id', 'STRING', 'NULLABLE', 'load_runs.run_id of the batch that inserted the row.'),
    col('schema_version', 'INT64', 'NULLABLE', 'Post.schema_version of the message.'),
  ],
};

/** `posts_dead_letter`: every message that could not become a `posts` row, with the reason. */
export const DEAD_LETTER_TABLE: TableSpec = {
  name: 'posts_dead_letter',
  description: 'Messages that could not be loaded into posts, with the reason. Nothing is dropped.',
  partitionField: 'first_seen',
  clustering: ['error_stage'],
  // One row per distinct payload: the same malformed line published twice (a re-sent batch, a gap
  // fill reading it again) is one dead letter, under the message id that delivered it first.
  key: ['payload_hash'],
  columns: [
    col('message_id', 'STRING', 'REQUIRED', 'Pub/Sub message id of the first delivery dead-lettered.'),
    col('post_id', 'STRING', 'NULLABLE', 'post_id attribute or id found in the payload, if any.'),
    col('payload', 'STRING', 'NULLABLE', 'Message data, as UTF-8 text (base64 when not UTF-8).'),
    col('attributes', 'STRING', 'NULLABLE', 'Message attributes as a JSON object.'),
    col('error_stage', 'STRING', 'REQUIRED', 'Where it failed: see DeadLetterStage.'),
    col('error_message', 'STRING', 'REQUIRED', 'Why it failed.'),
    col('stack', 'STRING', 'NULLABLE', 'Stack trace when an exception caused it.'),
    col('publish_time', 'TIMESTAMP', 'NULLABLE', 'Pub/Sub publish time.'),
    col('first_seen', 'TIMESTAMP', 'REQUIRED', 'When the loader first wrote this message here.'),
    col('load_run_id', 'STRING', 'NULLABLE', 'load_runs.run_id of the batch.'),
    col(
      'payload_hash',
      'STRING',
      'NULLABLE',
      'SHA-256 (hex) of the message data: the key, one row per distinct payload (NULL on rows from before it).',
    ),
  ],
};

/** `load_runs`: one audit row per load batch. */
export const LOAD_RUNS_TABLE: TableSpec = {
  name: 'load_runs',
  description: 'One audit row per load batch: what was pulled, loaded, skipped and dead-lettered.',
  partitionField: 'started_at',
  clustering: ['outcome'],
  key: ['run_id'],
  columns: [
    col('run_id', 'STRING', 'REQUIRED', 'Deterministic id of this batch attempt.'),
    col('batch_id', 'STRING', 'REQUIRED', 'Hash of the sorted message ids of the batch.'),
    col('workflow_id', 'STRING', 'NULLABLE', 'Load workflow id.'),
    col('activity_id', 'STRING', 'NULLABLE', 'Temporal activity id.'),
    col('attempt', 'INT64', 'NULLABLE', 'Temporal activity attempt.'),
    col('started_at', 'TIMESTAMP', 'REQUIRED', 'When the batch was pulled.'),
    col('finished_at', 'TIMESTAMP', 'NULLABLE', 'When the writes finished (before the ack).'),
    col('duration_ms', 'INT64', 'NULLABLE', 'finished_at - started_at.'),
    col('message_count', 'INT64', 'REQUIRED', 'Messages pulled.'),
    col('valid_count', 'INT64', 'NULLABLE', 'Messages that validated as posts.'),
    col(
      'rows_loaded',
      'INT64',
      'REQUIRED',
      'Rows this batch inserted into posts (ids that were not there yet).',
    ),
    col('duplicates_skipped', 'INT64', 'REQUIRED', 'Valid messages whose post id was already loaded.'),
    col('dead_letters', 'INT64', 'REQUIRED', 'Messages written to posts_dead_letter.'),
    col('first_publish_time', 'TIMESTAMP', 'NULLABLE', 'Earliest publish time in the batch.'),
    col('last_publish_time', 'TIMESTAMP', 'NULLABLE', 'Latest publish time in the batch.'),
    col('columns_added', 'STRING', 'REPEATED', 'Columns added to posts by this batch.'),
    col('outcome', 'STRING', 'REQUIRED', 'loaded | dead_letters_only | partial'),
  ],
};

/**
 * `load_fences`: the fencing tokens of the load lanes. Every load attempt claims its lane with a
 * token larger than any before it (see `adapters/bigquery/writer.ts`); the insert into `posts` only
 * goes in while that token is still the lane's largest, so an attempt that was superseded never writes.
 */
export const LOAD_FENCES_TABLE: TableSpec = {
  name: 'load_fences',
  description: 'One row per load attempt: the fencing token it claimed for its lane.',
  partitionField: 'claimed_at',
  clustering: ['lane'],
  key: ['lane', 'token'],
  columns: [
    col('lane', 'STRING', 'REQUIRED', 'The fenced lane: its load workflow id (x-ingest-<name>-load-<k>).'),
    col('token', 'INT64', 'REQUIRED', 'Fencing token: larger for every newer attempt of the lane.'),
    col('run_id', 'STRING', 'NULLABLE', 'load_runs.run_id of the attempt.'),
    col('workflow_id', 'STRING', 'NULLABLE', 'Load workflow id.'),
    col('claimed_at', 'TIMESTAMP', 'REQUIRED', 'When the attempt claimed the lane.'),
  ],
};

/** `load_repairs`: every duplicate `posts` row the repair removed, and the row it kept. */
export const LOAD_REPAIRS_TABLE: TableSpec = {
  name: 'load_repairs',
  description: 'Duplicate posts rows removed by the repair (the last line of exactly once), one row each.',
  partitionField: 'repaired_at',
  clustering: ['post_id'],
  key: ['post_id', 'removed_load_run_id'],
  columns: [
    col('post_id', 'STRING', 'REQUIRED', 'The duplicated post id.'),
    col('removed_load_run_id', 'STRING', 'REQUIRED', 'load_run_id of the row removed.'),
    col('removed_message_id', 'STRING', 'NULLABLE', 'message_id of the row removed.'),
    col('removed_ingested_at', 'TIMESTAMP', 'NULLABLE', 'ingested_at of the row removed.'),
    col('kept_load_run_id', 'STRING', 'NULLABLE', 'load_run_id of the row kept (the earliest ingested).'),
    col('repair_id', 'STRING', 'NULLABLE', 'Id of the repair run (the workflow that ran it).'),
    col('repaired_at', 'TIMESTAMP', 'REQUIRED', 'When the row was removed.'),
  ],
};

/**
 * `dead_letter_replays`: what each replay of `posts_dead_letter` decided for each dead letter. The
 * dead-letter table itself is never changed or deleted from; this table is its replay journal.
 */
export const DEAD_LETTER_REPLAYS_TABLE: TableSpec = {
  name: 'dead_letter_replays',
  description:
    'One row per dead letter per replay: loaded into posts, already there, or still failing (why).',
  partitionField: 'replayed_at',
  clustering: ['outcome'],
  key: ['payload_hash', 'replay_id'],
  columns: [
    col('payload_hash', 'STRING', 'REQUIRED', 'posts_dead_letter.payload_hash of the row replayed.'),
    col('message_id', 'STRING', 'NULLABLE', 'posts_dead_letter.message_id of the row replayed.'),
    col('replay_id', 'STRING', 'REQUIRED', 'Id of the replay (its workflow id).'),
    col('outcome', 'STRING', 'REQUIRED', 'replayed | already_loaded | still_failing'),
    col('post_id', 'STRING', 'NULLABLE', 'The post id, when the payload has one.'),
    col('error_stage', 'STRING', 'NULLABLE', 'still_failing: where it fails now.'),
    col('error_message', 'STRING', 'NULLABLE', 'still_failing: why it fails now.'),
    col('load_run_id', 'STRING', 'NULLABLE', 'replayed: the load_run_id its posts row carries.'),
    col('replayed_at', 'TIMESTAMP', 'REQUIRED', 'When the replay decided.'),
  ],
};

/** `compliance_actions`: every post deleted or redacted because X's compliance data said so. */
export const COMPLIANCE_ACTIONS_TABLE: TableSpec = {
  name: 'compliance_actions',
  description: 'One row per post acted on for X compliance (deleted or redacted), with the job it came from.',
  partitionField: 'applied_at',
  clustering: ['action'],
  key: ['job_id', 'post_id'],
  columns: [
    col('job_id', 'STRING', 'REQUIRED', 'X batch compliance job id.'),
    col('post_id', 'STRING', 'REQUIRED', 'The post acted on.'),
    col('action', 'STRING', 'REQUIRED', 'deleted | redacted'),
    col('x_action', 'STRING', 'NULLABLE', "X's compliance action (e.g. delete, deactivate, suspend)."),
    col('x_reason', 'STRING', 'NULLABLE', "X's reason, when given."),
    col('x_created_at', 'TIMESTAMP', 'NULLABLE', 'When X recorded the event.'),
    col('rows_affected', 'INT64', 'NULLABLE', 'posts rows deleted or redacted (0 when none were stored).'),
    col('applied_at', 'TIMESTAMP', 'REQUIRED', 'When the pipeline applied it.'),
  ],
};

export const TABLES = [
  POSTS_TABLE,
  DEAD_LETTER_TABLE,
  LOAD_RUNS_TABLE,
  LOAD_FENCES_TABLE,
  LOAD_REPAIRS_TABLE,
  DEAD_LETTER_REPLAYS_TABLE,
  COMPLIANCE_ACTIONS_TABLE,
] as const;

// ---------------------------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------------------------

/** A value as written to a load job (NDJSON) row. Timestamps are ISO-8601 strings. */
export type CellValue = string | number | boolean | null | string[];
export type Row = Record<string, CellValue>;

/** Pub/Sub envelope data that the loader adds to each row. */
export interface MessageMeta {
  messageId: string;
  /** ISO-8601. */
  publishTime: string | null;
  /** ISO-8601 time of the load. */
  ingestedAt: string;
  loadRunId: string;
  /** The delivery's Pub/Sub attributes (kept as a JSON object in `posts.attributes`). */
  attributes?: Record<string, string>;
}

/** Where a message failed on its way to `posts`. */
export type DeadLetterStage =
  | 'malformed' // the stream could not normalise the line (attribute malformed=true)
  | 'decode' // data is not UTF-8 JSON
  | 'validate' // JSON but not a valid Post
  | 'schema_version' // a Post schema version newer than this loader understands
  | 'schema_conflict' // a new field whose type conflicts with the existing column
  | 'bigquery_insert'; // BigQuery rejected the row (PartialFailureError / load error)

export interface DeadLetterRow extends Row {
  message_id: string;
  post_id: string | null;
  payload: string | null;
  attributes: string | null;
  error_stage: DeadLetterStage;
  error_message: string;
  stack: string | null;
  publish_time: string | null;
  first_seen: string;
  load_run_id: string | null;
  payload_hash: string;
}

export interface LoadRunRow extends Row {
  run_id: string;
  batch_id: string;
  workflow_id: string | null;
  activity_id: string | null;
  attempt: number | null;
  started_at: string;
  finished_at: string | null;
  duration_ms: number | null;
  message_count: number;
  valid_count: number | null;
  rows_loaded: number;
  duplicates_skipped: number;
  dead_letters: number;
  first_publish_time: string | null;
  last_publish_time: string | null;
  columns_added: string[];
  outcome: 'loaded' | 'dead_letters_only' | 'partial';
}

// ---------------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------------

export type ValidationResult =
  | { ok: true; post: Post; extras: Column[]; extraValues: Row }
  | { ok: false; stage: DeadLetterStage; reason: string };

const KNOWN_TOP = new Set([
  'schema_version',
  'id',
  'text',
  'created_at',
  'author',
  'lang',
  'metrics',
  'hashtags',
  'mentions',
  'urls',
  'referenced_posts',
  'conversation_id',
  'edit_history_ids',
  'possibly_sensitive',
  'matching_rules',
  'received_at',
  'raw',
  'source',
]);
const KNOWN_AUTHOR = new Set(['id', 'username', 'name', 'verified', 'followers_count']);
const KNOWN_METRICS = new Set([
  'retweet_count',
  'reply_count',
  'like_count',
  'quote_count',
  'bookmark_count',
  'impression_count',
]);

const ID_RE = /^\d{1,20}$/;
const COLUMN_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]{0,299}$/;

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isStrOrNull = (v: unknown) => v === null || v === undefined || typeof v === 'string';
const isIntOrNull = (v: unknown) => v === null || v === undefined || Number.isSafeInteger(v);
const isBoolOrNull = (v: unknown) => v === null || v === undefined || typeof v === 'boolean';
const isStrArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

/** A timestamp BigQuery accepts (years 0001-9999), given as ISO-8601. */
export function isValidTimestamp(v: unknown): v is string {
  if (typeof v !== 'string' || !/^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}/.test(v)) return false;
  const t = Date.parse(v);
  return Number.isFinite(t) && t >= Date.UTC(1, 0, 1) && t < Date.UTC(10000, 0, 1);
}

/** The column an unknown field becomes: top-level `x` → `x`, `author.x` → `author_x`, `metrics.x` → `metrics_x`. */
export function extraColumnName(path: 'top' | 'author' | 'metrics', key: string): string {
  return path === 'top' ? key : `${path}_${key}`;
}

/** Column type inferred for a value of an unknown field (objects and arrays are kept as JSON text). */
export function inferColumnType(value: unknown): ColumnType {
  if (typeof value === 'boolean') return 'BOOL';
  if (typeof value === 'number') return 'FLOAT64';
  if (typeof value === 'string' && isValidTimestamp(value) && /(Z|[+-]\d{2}:?\d{2})$/.test(value)) {
    return 'TIMESTAMP';
  }
  return 'STRING';
}

function extraCell(value: unknown): CellValue {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return value;
  return JSON.stringify(value);
}

/**
 * Validates a decoded message payload against the `Post` contract and the `posts` columns. Unknown
 * fields are not errors: they are returned as `extras` (columns to add) with their values.
 */
export function validatePost(value: unknown): ValidationResult {
  const fail = (reason: string): ValidationResult => ({ ok: false, stage: 'validate', reason });
  if (!isObj(value)) return fail('payload is not a JSON object');
  const v = value;
  if (typeof v.schema_version !== 'number' || !Number.isSafeInteger(v.schema_version)) {
    return fail('schema_version: expected an integer');
  }
  if (v.schema_version > POST_SCHEMA_VERSION) {
    return {
      ok: false,
      stage: 'schema_version',
      reason: `schema_version ${v.schema_version} is newer than this loader (${POST_SCHEMA_VERSION}): deploy the loader for version ${v.schema_version}, then replay these dead letters (npm run dead-letters:replay -- --stage schema_version)`,
    };
  }
  if (typeof v.id !== 'string' || !ID_RE.test(v.id)) return fail('id: expected a numeric string');
  if (typeof v.text !== 'string') return fail('text: expected a string');
  if (!isValidTimestamp(v.created_at)) return fail('created_at: expected an ISO-8601 timestamp');
  if (!isObj(v.author)) return fail('author: expected an object');
  const a = v.author;
  if (typeof a.id !== 'string' || !ID_RE.test(a.id)) return fail('author.id: expected a numeric string');
  if (!isStrOrNull(a.username)) return fail('author.username: expected a string or null');
  if (!isStrOrNull(a.name)) return fail('author.name: expected a string or null');
  if (!isBoolOrNull(a.verified)) return fail('author.verified: expected a boolean or null');
  if (!isIntOrNull(a.followers_count)) return fail('author.followers_count: expected an integer or null');
  if (!isStrOrNull(v.lang)) return fail('lang: expected a string or null');
  if (!isObj(v.metrics)) return fail('metrics: expected an object');
  for (const k of KNOWN_METRICS) {
    if (!isIntOrNull(v.metrics[k])) return fail(`metrics.${k}: expected an integer or null`);
  }
  if (!isStrArray(v.hashtags)) return fail('hashtags: expected an array of strings');
  if (!isStrArray(v.mentions)) return fail('mentions: expected an array of strings');
  if (
    !Array.isArray(v.urls) ||
    !v.urls.every(
      (u) => isObj(u) && typeof u.url === 'string' && isStrOrNull(u.expanded_url) && isStrOrNull(u.domain),
    )
  ) {
    return fail('urls: expected an array of {url, expanded_url, domain}');
  }
  if (
    !Array.isArray(v.referenced_posts) ||
    !v.referenced_posts.every((r) => isObj(r) && typeof r.type === 'string' && typeof r.id === 'string')
  ) {
    return fail('referenced_posts: expected an array of {type, id}');
  }
  if (!isStrOrNull(v.conversation_id)) return fail('conversation_id: expected a string or null');
  if (!isStrArray(v.edit_history_ids)) return fail('edit_history_ids: expected an array of strings');
  if (!isBoolOrNull(v.possibly_sensitive)) return fail('possibly_sensitive: expected a boolean or null');
  if (
    !Array.isArray(v.matching_rules) ||
    !v.matching_rules.every((r) => isObj(r) && typeof r.id === 'string' && isStrOrNull(r.tag))
  ) {
    return fail('matching_rules: expected an array of {id, tag}');
  }
  if (v.received_at !== undefined && v.received_at !== null && !isValidTimestamp(v.received_at)) {
    return fail('received_at: expected an ISO-8601 timestamp');
  }
  if (!isStrOrNull(v.raw)) return fail('raw: expected a string');

  const extras: Column[] = [];
  const extraValues: Row = {};
  const addExtras = (
    path: 'top' | 'author' | 'metrics',
    obj: Record<string, unknown>,
    known: Set<string>,
  ) => {
    for (const [key, val] of Object.entries(obj)) {
      if (known.has(key) || val === undefined) continue;
      const name = extraColumnName(path, key);
      if (!COLUMN_NAME_RE.test(name) || name.startsWith('_')) continue; // not representable: stays in raw
      if (val !== null) {
        extras.push({
          name,
          type: inferColumnType(val),
          mode: 'NULLABLE',
          description: `Post field ${name}`,
        });
      }
      extraValues[name] = extraCell(val);
    }
  };
  addExtras('top', v, KNOWN_TOP);
  addExtras('author', a, KNOWN_AUTHOR);
  addExtras('metrics', v.metrics, KNOWN_METRICS);
  return { ok: true, post: v as unknown as Post, extras, extraValues };
}

/** Host name of a URL without `URL` (sandbox-safe and tolerant of odd input). */
function hostOf(url: string): string | null {
  const m = /^[a-z][a-z0-9+.-]*:\/\/([^/?#:@]+@)?([^/?#:]+)/i.exec(url);
  return m ? m[2]!.toLowerCase() : null;
}

/** The `posts` row of a validated post. `extraValues` are columns for fields this code does not know. */
export function toPostRow(post: Post, meta: MessageMeta, extraValues: Row = {}): Row {
  const ref = (type: string) => post.referenced_posts.find((r) => r.type === type)?.id ?? null;
  const m = post.metrics;
  const row: Row = {
    ...extraValues,
    id: post.id,
    text: post.text,
    created_at: post.created_at,
    author_id: post.author.id,
    author_username: post.author.username ?? null,
    author_name: post.author.name ?? null,
    author_verified: post.author.verified ?? null,
    author_followers_count: post.author.followers_count ?? null,
    lang: post.lang ?? null,
    retweet_count: m.retweet_count ?? null,
    reply_count: m.reply_count ?? null,
    like_count: m.like_count ?? null,
    quote_count: m.quote_count ?? null,
    bookmark_count: m.bookmark_count ?? null,
    impression_count: m.impression_count ?? null,
    hashtags: post.hashtags,
    mentions: post.mentions,
    urls: post.urls.map((u) => u.expanded_url ?? u.url),
    url_domains: post.urls.map((u) => u.domain ?? hostOf(u.expanded_url ?? u.url) ?? ''),
    replied_to_id: ref('replied_to'),
    quoted_id: ref('quoted'),
    retweeted_id: ref('retweeted'),
    referenced_post_ids: post.referenced_posts.map((r) => r.id),
    referenced_post_types: post.referenced_posts.map((r) => r.type),
    conversation_id: post.conversation_id ?? null,
    edit_history_ids: post.edit_history_ids,
    possibly_sensitive: post.possibly_sensitive ?? null,
    matching_rule_ids: post.matching_rules.map((r) => r.id),
    matching_rule_tags: post.matching_rules.map((r) => r.tag ?? ''),
    received_at: post.received_at ?? null,
    raw: post.raw ?? null,
    source: post.source ?? null,
    message_id: meta.messageId,
    attributes: meta.attributes ? JSON.stringify(meta.attributes) : null,
    publish_time: meta.publishTime,
    ingested_at: meta.ingestedAt,
    load_run_id: meta.loadRunId,
    schema_version: post.schema_version,
  };
  return row;
}

// ---------------------------------------------------------------------------------------------------
// Schema comparison
// ---------------------------------------------------------------------------------------------------

/** A column as BigQuery returns it (legacy type names such as INTEGER/BOOLEAN/FLOAT may appear). */
export interface ActualColumn {
  name: string;
  type?: string;
  mode?: string;
}

const TYPE_ALIASES: Record<string, ColumnType> = {
  STRING: 'STRING',
  INTEGER: 'INT64',
  INT64: 'INT64',
  FLOAT: 'FLOAT64',
  FLOAT64: 'FLOAT64',
  BOOLEAN: 'BOOL',
  BOOL: 'BOOL',
  TIMESTAMP: 'TIMESTAMP',
};

export function normaliseType(type: string | undefined): string {
  const t = (type ?? 'STRING').toUpperCase();
  return TYPE_ALIASES[t] ?? t;
}

export function normaliseMode(mode: string | undefined): ColumnMode {
  const m = (mode ?? 'NULLABLE').toUpperCase();
  return m === 'REQUIRED' || m === 'REPEATED' ? m : 'NULLABLE';
}

export interface SchemaDiff {
  /** Columns to add (always NULLABLE or REPEATED: additive and safe). */
  add: Column[];
  /** Human-readable breaking differences; non-empty = refuse to load. */
  breaking: string[];
}

/**
 * Compares the columns the code wants with the table's columns. Extra columns in the table are fine
 * (older rows, manual additions). A wanted REQUIRED column that is missing is added as NULLABLE,
 * since BigQuery cannot add a REQUIRED column to a table with rows.
 */
export function diffSchema(table: string, wanted: Column[], actual: ActualColumn[]): SchemaDiff {
  const byName = new Map(actual.map((c) => [c.name.toLowerCase(), c]));
  const add: Column[] = [];
  const breaking: string[] = [];
  for (const w of wanted) {
    const a = byName.get(w.name.toLowerCase());
    if (!a) {
      add.push({ ...w, mode: w.mode === 'REQUIRED' ? 'NULLABLE' : w.mode });
      continue;
    }
    const at = normaliseType(a.type);
    const am = normaliseMode(a.mode);
    if (at !== w.type) {
      breaking.push(`${table}.${w.name}: the table has ${at}, the code wants ${w.type}`);
    } else if ((am === 'REPEATED') !== (w.mode === 'REPEATED')) {
      breaking.push(`${table}.${w.name}: the table has mode ${am}, the code wants ${w.mode}`);
    }
  }
  return { add, breaking };
}

/** What to do about a breaking difference: written into the failure an operator sees. */
export function breakingChangeAdvice(table: string): string {
  return (
    `Breaking schema change on ${table}: BigQuery cannot change a column's type or mode in place. ` +
    `Either revert the change, or bump POST_SCHEMA_VERSION and migrate: create the new table ` +
    `(e.g. ${table}_v${POST_SCHEMA_VERSION + 1}) with CREATE TABLE ... AS SELECT casting the column, ` +
    `point BIGQUERY_POSTS_TABLE at it, restart the batch worker, and replay posts_dead_letter (npm run dead-letters:replay).`
  );
}

/**
 * Fits a value of a new Post field to the type of the column that already holds that field. STRING
 * columns take anything (as text); otherwise the value must already have the column's type.
 */
export function coerceToColumn(
  value: CellValue,
  type: string,
): { ok: true; value: CellValue } | { ok: false; reason: string } {
  if (value === null) return { ok: true, value };
  const t = normaliseType(type);
  const bad = { ok: false as const, reason: `expected ${t}, got ${JSON.stringify(value).slice(0, 80)}` };
  switch (t) {
    case 'STRING':
      return { ok: true, value: typeof value === 'string' ? value : JSON.stringify(value) };
    case 'FLOAT64':
      return typeof value === 'number' ? { ok: true, value } : bad;
    case 'INT64':
      return Number.isSafeInteger(value) ? { ok: true, value } : bad;
    case 'BOOL':
      return typeof value === 'boolean' ? { ok: true, value } : bad;
    case 'TIMESTAMP':
      return isValidTimestamp(value) ? { ok: true, value } : bad;
    default:
      return bad;
  }
}

/** What the schema-evolution decision needs of a validated post: its new fields and their values. */
export interface EvolvingPost {
  /** Columns inferred for the fields this code does not know. */
  extras: Column[];
  /** The values of those fields (and of fields whose type nobody has inferred yet: null). */
  extraValues: Row;
}

/** The outcome of {@link decideSchemaEvolution} for one batch. */
export interface SchemaEvolution<P extends EvolvingPost> {
  /** The posts that fit, in batch order, each with only the extra values that have a column to go to. */
  fitting: P[];
  /** The posts with a value that does not fit its column's type, in batch order, with why. */
  conflicts: { post: P; reason: string }[];
  /** Columns to add to `posts`, in the order they were first met; empty when nothing is new. */
  newColumns: Column[];
}

/**
 * Additive schema evolution, decided without touching BigQuery: every field of a post that `known`
 * does not list goes to the column that already holds it (`existing`, matched case-insensitively),
 * else to a column added in this batch, typed by the first post that had a value for it. A value
 * that does not fit its column's type (see {@link coerceToColumn}) makes the post a conflict (it is
 * dead-lettered as `schema_conflict`); a field with only nulls so far gets no column yet.
 */
export function decideSchemaEvolution<P extends EvolvingPost>(
  posts: P[],
  existing: ActualColumn[],
  known: Column[] = POSTS_TABLE.columns,
): SchemaEvolution<P> {
  const existingByName = new Map(existing.map((c) => [c.name.toLowerCase(), c]));
  const knownNames = new Set(known.map((c) => c.name));
  const added = new Map<string, Column>();
  const fitting: P[] = [];
  const conflicts: { post: P; reason: string }[] = [];
  for (const p of posts) {
    const values: Row = {};
    let conflict: string | null = null;
    for (const [name, value] of Object.entries(p.extraValues)) {
      if (knownNames.has(name)) continue;
      const inferred = p.extras.find((x) => x.name === name);
      const col = existingByName.get(name.toLowerCase()) ?? added.get(name) ?? inferred;
      if (!col) {
        values[name] = value; // null for a column nobody has typed yet: leave it out
        continue;
      }
      const fit = coerceToColumn(value, col.type ?? 'STRING');
      if (!fit.ok) {
        conflict = `field ${name}: ${fit.reason} (column type ${col.type})`;
        break;
      }
      values[col.name] = fit.value;
      if (!existingByName.has(name.toLowerCase()) && !added.has(name) && inferred) {
        added.set(name, inferred);
      }
    }
    if (conflict) {
      conflicts.push({ post: p, reason: conflict });
    } else {
      for (const k of Object.keys(values))
        if (!existingByName.has(k.toLowerCase()) && !added.has(k)) delete values[k];
      fitting.push({ ...p, extraValues: values });
    }
  }
  return { fitting, conflicts, newColumns: [...added.values()] };
}
