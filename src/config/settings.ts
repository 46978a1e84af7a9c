/**
 * Every setting of the pipeline, defined once: its environment variable, its type (a parser that
 * names the expected form), its default and a one-line description. `.env.example` and the README's
 * configuration table are checked against this list by `test/unit/config/docs.test.ts`, so a new
 * setting cannot be added without documenting it.
 */
import { MAX_LOAD_LANES } from '../domain/lanes';
import { z } from 'zod';
import { qualityOverrideProblems, type QualityChecksOverrides } from '../domain/quality';

/** A parser for one environment variable: `form` is what the error message says is expected. */
export interface Setting<T> {
  readonly env: string;
  readonly group: string;
  readonly form: string;
  readonly description: string;
  /** Default as it is written in `.env.example` (undefined = unset/optional). */
  readonly default?: string;
  /** Secrets never appear in logs, errors or workflow inputs. */
  readonly secret?: boolean;
  readonly schema: z.ZodType<T>;
}

const hostPortRe = /^[A-Za-z0-9.\-[\]:]+:\d{1,5}$/;

export const parsers = {
  string: () => z.string().min(1),
  hostPort: () => z.string().regex(hostPortRe, 'expected host:port'),
  url: () =>
    z
      .string()
      .refine((s) => /^https?:\/\//.test(s) && URL.canParse(s), 'expected an http(s):// URL')
      .transform((s) => s.replace(/\/+$/, '')),
  port: () => z.coerce.number().int().min(0).max(65535),
  positiveInt: () => z.coerce.number().int().positive(),
  nonNegativeInt: () => z.coerce.number().int().min(0),
  positiveNumber: () => z.coerce.number().positive(),
  /** Booleans are parsed explicitly: `Boolean('false')` is true. */
  boolean: () =>
    z
      .string()
      .transform((s) => s.trim().toLowerCase())
      .refine((s) => ['true', 'false', '1', '0', 'yes', 'no'].includes(s), 'expected true or false')
      .transform((s) => s === 'true' || s === '1' || s === 'yes'),
  csv: () =>
    z.string().transform((s) =>
      s
        .split(',')
        .map((p) => p.trim())
        .filter((p) => p.length > 0),
    ),
  bqName: () => z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,1023}$/, 'expected letters, digits and _'),
  pubsubName: () =>
    z
      .string()
      .regex(
        /^[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$/,
        'expected 3-255 characters starting with a letter (letters, digits, - _ . ~ + %)',
      ),
  enumOf: <const T extends string>(values: readonly [T, ...T[]]) => z.enum(values),
};

const s = <T>(def: Setting<T>): Setting<T> => def;

export const settings = {
  // --- runtime ---
  logLevel: s({
    env: 'LOG_LEVEL',
    group: 'Runtime',
    form: 'one of fatal, error, warn, info, debug, trace, silent',
    description: 'Minimum log level.',
    default: 'info',
    schema: parsers.enumOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
  }),
  logFormat: s({
    env: 'LOG_FORMAT',
    group: 'Runtime',
    form: 'one of auto, json, pretty',
    description: 'Log format: `auto` = pretty in a terminal, JSON otherwise.',
    default: 'auto',
    schema: parsers.enumOf(['auto', 'json', 'pretty']),
  }),

  // --- Temporal ---
  temporalAddress: s({
    env: 'TEMPORAL_ADDRESS',
    group: 'Temporal',
    form: 'host:port',
    description: 'Temporal frontend gRPC address (Temporal Cloud: `<ns>.<acct>.tmprl.cloud:7233`).',
    default: '127.0.0.1:7233',
    schema: parsers.hostPort(),
  }),
  temporalNamespace: s({
    env: 'TEMPORAL_NAMESPACE',
    group: 'Temporal',
    form: 'a namespace name',
    description: 'Temporal namespace.',
    default: 'default',
    schema: parsers.string(),
  }),
  temporalUiUrl: s({
    env: 'TEMPORAL_UI_URL',
    group: 'Temporal',
    form: 'an http(s):// URL',
    description: 'Temporal Web UI base URL, used for links from the dashboard and the demo.',
    default: 'http://127.0.0.1:8233',
    schema: parsers.url(),
  }),
  temporalStreamTaskQueue: s({
    env: 'TEMPORAL_STREAM_TASK_QUEUE',
    group: 'Temporal',
    form: 'a task queue name',
    description: 'Task queue of the stream worker (supervisor workflow + stream activity).',
    default: 'x-stream',
    schema: parsers.string(),
  }),
  temporalBatchTaskQueue: s({
    env: 'TEMPORAL_BATCH_TASK_QUEUE',
    group: 'Temporal',
    form: 'a task queue name',
    description: 'Task queue of the batch worker (load and data-quality workflows and activities).',
    default: 'x-batch',
    schema: parsers.string(),
  }),
  temporalTls: s({
    env: 'TEMPORAL_TLS',
    group: 'Temporal',
    form: 'true or false',
    description: 'Use TLS to reach Temporal (implied by a client certificate or an API key).',
    default: 'false',
    schema: parsers.boolean(),
  }),
  temporalTlsCertPath: s({
    env: 'TEMPORAL_TLS_CERT_PATH',
    group: 'Temporal',
    form: 'a file path',
    description: 'mTLS client certificate (PEM) for Temporal Cloud or a secured server.',
    schema: parsers.string(),
  }),
  temporalTlsKeyPath: s({
    env: 'TEMPORAL_TLS_KEY_PATH',
    group: 'Temporal',
    form: 'a file path',
    description: 'mTLS client private key (PEM).',
    secret: true,
    schema: parsers.string(),
  }),
  temporalTlsCaPath: s({
    env: 'TEMPORAL_TLS_CA_PATH',
    group: 'Temporal',
    form: 'a file path',
    description: 'CA bundle (PEM) for a server with a private CA.',
    schema: parsers.string(),
  }),
  temporalApiKey: s({
    env: 'TEMPORAL_API_KEY',
    group: 'Temporal',
    form: 'an API key',
    description: 'Temporal Cloud API key (or `TEMPORAL_API_KEY_FILE`, a mounted file holding it).',
    secret: true,
    schema: parsers.string(),
  }),
  temporalApiKeyFile: s({
    env: 'TEMPORAL_API_KEY_FILE',
    group: 'Temporal',
    form: 'a file path',
    description: 'File holding the Temporal Cloud API key.',
    schema: parsers.string(),
  }),
  workerShutdownGraceMs: s({
    env: 'WORKER_SHUTDOWN_GRACE_MS',
    group: 'Temporal',
    form: 'a positive integer (milliseconds)',
    description: 'How long a worker lets running activities finish after SIGTERM.',
    default: '20000',
    schema: parsers.positiveInt(),
  }),

  // --- Google Cloud ---
  gcpProjectId: s({
    env: 'GCP_PROJECT_ID',
    group: 'Google Cloud',
    form: 'a GCP project id',
    description: 'Project of the topic, subscription and dataset.',
    default: 'local-project',
    schema: z.string().regex(/^[a-z][a-z0-9-]{4,61}[a-z0-9]$/, 'expected a GCP project id (6-30 chars)'),
  }),
  pubsubEmulatorHost: s({
    env: 'PUBSUB_EMULATOR_HOST',
    group: 'Google Cloud',
    form: 'host:port',
    description: 'Pub/Sub emulator address; unset = real Pub/Sub with Application Default Credentials.',
    schema: parsers.hostPort(),
  }),
  bigqueryEmulatorHost: s({
    env: 'BIGQUERY_EMULATOR_HOST',
    group: 'Google Cloud',
    form: 'an http(s):// URL',
    description:
      'BigQuery emulator REST endpoint; unset = real BigQuery with Application Default Credentials.',
    schema: parsers.url(),
  }),
  pubsubTopic: s({
    env: 'PUBSUB_TOPIC',
    group: 'Google Cloud',
    form: 'a Pub/Sub topic id',
    description: 'Topic the stream worker publishes posts to.',
    default: 'x-posts',
    schema: parsers.pubsubName(),
  }),
  pubsubSubscription: s({
    env: 'PUBSUB_SUBSCRIPTION',
    group: 'Google Cloud',
    form: 'a Pub/Sub subscription id',
    description: 'Pull subscription the load workflow drains into BigQuery.',
    default: 'x-posts-bigquery',
    schema: parsers.pubsubName(),
  }),
  pubsubDeadLetterTopic: s({
    env: 'PUBSUB_DEAD_LETTER_TOPIC',
    group: 'Google Cloud',
    form: 'a Pub/Sub topic id',
    description: 'Dead-letter topic for messages Pub/Sub could not deliver after the maximum attempts.',
    default: 'x-posts-dead-letter',
    schema: parsers.pubsubName(),
  }),
  bigqueryDataset: s({
    env: 'BIGQUERY_DATASET',
    group: 'Google Cloud',
    form: 'a BigQuery dataset id (letters, digits, _)',
    description: 'Dataset holding the tables and views.',
    default: 'x_stream',
    schema: parsers.bqName(),
  }),
  bigqueryLocation: s({
    env: 'BIGQUERY_LOCATION',
    group: 'Google Cloud',
    form: 'a BigQuery location',
    description: 'Location of the dataset and of query/load jobs.',
    default: 'US',
    schema: parsers.string(),
  }),
  bigqueryPostsTable: s({
    env: 'BIGQUERY_POSTS_TABLE',
    group: 'Google Cloud',
    form: 'a BigQuery table id',
    description: 'One row per post id.',
    default: 'posts',
    schema: parsers.bqName(),
  }),
  bigqueryDeadLetterTable: s({
    env: 'BIGQUERY_DEAD_LETTER_TABLE',
    group: 'Google Cloud',
    form: 'a BigQuery table id',
    description: 'Messages that could not be loaded, with the reason.',
    default: 'posts_dead_letter',
    schema: parsers.bqName(),
  }),
  bigqueryLoadRunsTable: s({
    env: 'BIGQUERY_LOAD_RUNS_TABLE',
    group: 'Google Cloud',
    form: 'a BigQuery table id',
    description: 'One audit row per load batch.',
    default: 'load_runs',
    schema: parsers.bqName(),
  }),
  bigqueryLoadFencesTable: s({
    env: 'BIGQUERY_LOAD_FENCES_TABLE',
    group: 'Google Cloud',
    form: 'a BigQuery table id',
    description: 'Fencing tokens of the load lanes: one row per load attempt.',
    default: 'load_fences',
    schema: parsers.bqName(),
  }),
  bigqueryLoadRepairsTable: s({
    env: 'BIGQUERY_LOAD_REPAIRS_TABLE',
    group: 'Google Cloud',
    form: 'a BigQuery table id',
    description: 'Duplicate posts rows the repair removed, one row each.',
    default: 'load_repairs',
    schema: parsers.bqName(),
  }),
  bigqueryDeadLetterReplaysTable: s({
    env: 'BIGQUERY_DEAD_LETTER_REPLAYS_TABLE',
    group: 'Google Cloud',
    form: 'a BigQuery table id',
    description: 'What each dead-letter replay decided for each dead letter.',
    default: 'dead_letter_replays',
    schema: parsers.bqName(),
  }),
  bigqueryComplianceActionsTable: s({
    env: 'BIGQUERY_COMPLIANCE_ACTIONS_TABLE',
    group: 'Google Cloud',
    form: 'a BigQuery table id',
    description: 'Posts deleted or redacted for X compliance, one row each.',
    default: 'compliance_actions',
    schema: parsers.bqName(),
  }),
  bigqueryDqResultsTable: s({
    env: 'BIGQUERY_DQ_RESULTS_TABLE',
    group: 'Google Cloud',
    form: 'a BigQuery table id',
    description: 'One row per data-quality check per run.',
    default: 'dq_results',
    schema: parsers.bqName(),
  }),

  // --- X API ---
  xBearerToken: s({
    env: 'X_BEARER_TOKEN',
    group: 'X API',
    form: 'an X app bearer token',
    description: 'X app-only bearer token (or `X_BEARER_TOKEN_FILE`). Unset locally = the stand-in is used.',
    secret: true,
    schema: parsers.string(),
  }),
  xBearerTokenFile: s({
    env: 'X_BEARER_TOKEN_FILE',
    group: 'X API',
    form: 'a file path',
    description: 'File (e.g. a mounted Secret) holding the X bearer token.',
    schema: parsers.string(),
  }),
  xApiBaseUrl: s({
    env: 'X_API_BASE_URL',
    group: 'X API',
    form: 'an http(s):// URL',
    description: 'Base URL of every X call (rules and stream); point it at the stand-in or a proxy.',
    default: 'https://api.x.com',
    schema: parsers.url(),
  }),
  xStreamName: s({
    env: 'X_STREAM_NAME',
    group: 'X API',
    form: 'letters, digits, - and _',
    description: 'Name of the X app stream; the supervisor workflow id is `x-ingest-<name>`.',
    default: 'default',
    schema: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'expected 1-64 letters, digits, - or _'),
  }),
  xRules: s({
    env: 'X_RULES',
    group: 'X API',
    form: 'JSON array of {"value","tag"} or `value#tag;value#tag`',
    description: 'Desired filtered-stream rules, synced on start.',
    default: 'tesla#tesla',
    schema: z.string().min(1),
  }),
  xTweetFields: s({
    env: 'X_TWEET_FIELDS',
    group: 'X API',
    form: 'comma-separated field names',
    description: '`tweet.fields` requested on the stream.',
    default:
      'created_at,author_id,lang,public_metrics,entities,referenced_tweets,conversation_id,possibly_sensitive,edit_history_tweet_ids,note_tweet',
    schema: parsers.csv(),
  }),
  xExpansions: s({
    env: 'X_EXPANSIONS',
    group: 'X API',
    form: 'comma-separated expansion names',
    description: '`expansions` requested on the stream.',
    default: 'author_id',
    schema: parsers.csv(),
  }),
  xUserFields: s({
    env: 'X_USER_FIELDS',
    group: 'X API',
    form: 'comma-separated field names',
    description: '`user.fields` requested on the stream.',
    default: 'username,name,verified,public_metrics',
    schema: parsers.csv(),
  }),
  xStallTimeoutMs: s({
    env: 'X_STALL_TIMEOUT_MS',
    group: 'X API',
    form: 'a positive integer (milliseconds)',
    description: 'No bytes for this long = stalled connection: drop and reconnect (X: 20 s).',
    default: '20000',
    schema: parsers.positiveInt(),
  }),
  xCloseDrainMs: s({
    env: 'X_CLOSE_DRAIN_MS',
    group: 'X API',
    form: 'a non-negative integer (milliseconds)',
    description:
      'On pause/stop: half-close the connection and keep reading what X already sent for up to this long, so posts in flight are published, not lost (0 = close at once).',
    default: '2000',
    schema: parsers.nonNegativeInt(),
  }),
  xBackfillMinutes: s({
    env: 'X_BACKFILL_MINUTES',
    group: 'X API',
    form: 'an integer 0-5',
    description: 'Ask X to replay up to this many missed minutes on reconnect (Enterprise only; 0 = off).',
    default: '0',
    schema: z.coerce.number().int().min(0).max(5),
  }),
  xGapFill: s({
    env: 'X_GAP_FILL',
    group: 'Gap fill and read budget',
    form: 'true or false',
    description:
      'Search every interval the stream was not delivering (disconnect, stall, crash, pause, continue-as-new) with recent search and publish what it finds (false: gaps are only recorded).',
    default: 'true',
    schema: parsers.boolean(),
  }),
  xGapFillOnResume: s({
    env: 'X_GAP_FILL_ON_RESUME',
    group: 'Gap fill and read budget',
    form: 'true or false',
    description:
      'Fill the gap an intentional pause left when the stream resumes (false: record it as skipped).',
    default: 'true',
    schema: parsers.boolean(),
  }),
  xGapMarginSeconds: s({
    env: 'X_GAP_MARGIN_SECONDS',
    group: 'Gap fill and read budget',
    form: 'an integer 0-3600 (seconds)',
    description:
      'Each gap is searched widened by this either side (posts at the edges are read twice; the loader keeps one row).',
    default: '30',
    schema: z.coerce.number().int().min(0).max(3600),
  }),
  xFullArchiveSearch: s({
    env: 'X_FULL_ARCHIVE_SEARCH',
    group: 'Gap fill and read budget',
    form: 'true or false',
    description:
      'The app may call full-archive search (/2/tweets/search/all): gaps older than 7 days are filled instead of reported unrecoverable.',
    default: 'false',
    schema: parsers.boolean(),
  }),
  xMonthlyPostBudget: s({
    env: 'X_MONTHLY_POST_BUDGET',
    group: 'Gap fill and read budget',
    form: 'a positive integer (posts)',
    description:
      'Posts read from X (stream and search) per UTC calendar month: a warning at 80 %, the stream held as budget-exhausted at 100 % until the month turns or setBudget raises it. Unset = no limit.',
    schema: parsers.positiveInt(),
  }),
  xCostPerPostUsd: s({
    env: 'X_COST_PER_POST_USD',
    group: 'Gap fill and read budget',
    form: 'a non-negative number (US dollars)',
    description: 'Price of one post read, for the estimated cost shown in status and on the dashboard.',
    default: '0.005',
    schema: z.coerce.number().min(0),
  }),

  // --- stream → Pub/Sub ---
  publishMaxMessages: s({
    env: 'PUBLISH_MAX_MESSAGES',
    group: 'Stream and publish',
    form: 'an integer 1-1000',
    description: 'Pub/Sub publish batch: maximum messages.',
    default: '500',
    schema: z.coerce.number().int().min(1).max(1000),
  }),
  publishMaxBytes: s({
    env: 'PUBLISH_MAX_BYTES',
    group: 'Stream and publish',
    form: 'a positive integer (bytes, at most 9000000)',
    description: 'Pub/Sub publish batch: maximum bytes.',
    default: '1048576',
    schema: z.coerce.number().int().positive().max(9_000_000),
  }),
  publishMaxDelayMs: s({
    env: 'PUBLISH_MAX_DELAY_MS',
    group: 'Stream and publish',
    form: 'a non-negative integer (milliseconds)',
    description: 'Pub/Sub publish batch: maximum wait before a partial batch is sent.',
    default: '50',
    schema: parsers.nonNegativeInt(),
  }),
  publishMaxOutstandingMessages: s({
    env: 'PUBLISH_MAX_OUTSTANDING_MESSAGES',
    group: 'Stream and publish',
    form: 'a positive integer',
    description: 'Back-pressure: unacknowledged publishes held in memory before the reader pauses.',
    default: '20000',
    schema: parsers.positiveInt(),
  }),
  publishMaxOutstandingBytes: s({
    env: 'PUBLISH_MAX_OUTSTANDING_BYTES',
    group: 'Stream and publish',
    form: 'a positive integer (bytes)',
    description: 'Back-pressure: unacknowledged publish bytes held in memory before the reader pauses.',
    default: '67108864',
    schema: parsers.positiveInt(),
  }),
  heartbeatIntervalMs: s({
    env: 'HEARTBEAT_INTERVAL_MS',
    group: 'Stream and publish',
    form: 'a positive integer (milliseconds)',
    description: 'How often the stream activity heartbeats its progress (heartbeat timeout is 30 s).',
    default: '5000',
    schema: parsers.positiveInt(),
  }),
  progressReportIntervalMs: s({
    env: 'PROGRESS_REPORT_INTERVAL_MS',
    group: 'Stream and publish',
    form: 'a positive integer (milliseconds)',
    description:
      'How often the stream activity reports its counters to the supervisor (one signal each: history grows with time, not posts).',
    default: '10000',
    schema: parsers.positiveInt(),
  }),

  // --- load ---
  loadIntervalMs: s({
    env: 'LOAD_INTERVAL_MS',
    group: 'Load',
    form: 'a positive integer (milliseconds)',
    description: 'How often the load workflow drains the subscription into BigQuery.',
    default: '30000',
    schema: parsers.positiveInt(),
  }),
  loadBatchSize: s({
    env: 'LOAD_BATCH_SIZE',
    group: 'Load',
    form: 'a positive integer',
    description: 'Messages per load batch (one load job + one insert-if-absent statement per batch).',
    default: '10000',
    schema: parsers.positiveInt(),
  }),
  loadLanes: s({
    env: 'LOAD_LANES',
    group: 'Load',
    form: 'an integer from 1 to 64',
    description:
      'Load lanes: a post id always hashes to the same lane, each lane has its own subscription and load child, so lanes scale out without racing (README, Load lanes).',
    default: '1',
    schema: z.coerce.number().int().min(1).max(MAX_LOAD_LANES),
  }),
  loadBacklogThreshold: s({
    env: 'LOAD_BACKLOG_THRESHOLD',
    group: 'Load',
    form: 'a positive integer',
    description: 'A batch this full means a backlog: the next batch runs at once instead of waiting.',
    default: '10000',
    schema: parsers.positiveInt(),
  }),

  // --- data quality ---
  dqIntervalMs: s({
    env: 'DQ_INTERVAL_MS',
    group: 'Data quality',
    form: 'a positive integer (milliseconds)',
    description: 'How often the data-quality workflow runs its checks.',
    default: '300000',
    schema: parsers.positiveInt(),
  }),
  dqChecks: s({
    env: 'DQ_CHECKS',
    group: 'Data quality',
    form: 'a JSON object of per-check overrides, e.g. {"freshness":{"maxStalenessMinutes":60},"volume":{"severity":"warn"}}',
    description:
      "Overrides of the data-quality checks' windows, thresholds and severities (README, Data quality); unset checks keep their defaults.",
    default: '{}',
    schema: z.string().transform((raw, ctx): QualityChecksOverrides => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(raw);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: `not JSON: ${(err as Error).message}` });
        return z.NEVER;
      }
      const problems = qualityOverrideProblems(parsed);
      if (problems.length > 0) {
        ctx.addIssue({ code: 'custom', message: problems.join('; ') });
        return z.NEVER;
      }
      return parsed as QualityChecksOverrides;
    }),
  }),
  dqWebhookUrl: s({
    env: 'DQ_WEBHOOK_URL',
    group: 'Data quality',
    form: 'an http(s):// URL',
    description: 'Optional: failing checks are POSTed here as JSON.',
    schema: parsers.url(),
  }),

  // --- compliance ---
  complianceEnabled: s({
    env: 'COMPLIANCE_ENABLED',
    group: 'Compliance',
    form: 'true or false',
    description:
      "Run the compliance child: X batch compliance jobs for the posts ingested since its last run, and the deletions (or redactions) X's answer asks for (README, Compliance).",
    default: 'true',
    schema: parsers.boolean(),
  }),
  complianceIntervalMs: s({
    env: 'COMPLIANCE_INTERVAL_MS',
    group: 'Compliance',
    form: 'a positive integer (milliseconds)',
    description: 'How often the compliance child checks the posts ingested since its last run with X.',
    default: '86400000',
    schema: parsers.positiveInt(),
  }),
  complianceMode: s({
    env: 'COMPLIANCE_MODE',
    group: 'Compliance',
    form: 'one of delete, redact',
    description:
      '`delete`: remove the posts X reports from `posts`; `redact`: keep the rows but set text, raw and the author columns to NULL.',
    default: 'delete',
    schema: parsers.enumOf(['delete', 'redact']),
  }),
  complianceMaxIdsPerJob: s({
    env: 'COMPLIANCE_MAX_IDS_PER_JOB',
    group: 'Compliance',
    form: 'an integer 1-100000',
    description:
      'Post ids uploaded per X compliance job; more ids since the last run are split over several jobs, run one after another (X allows one running job per type).',
    default: '100000',
    schema: z.coerce.number().int().min(1).max(100_000),
  }),

  // --- ports ---
  streamWorkerHealthPort: s({
    env: 'STREAM_WORKER_HEALTH_PORT',
    group: 'Ports',
    form: 'a port number (0 = any free port)',
    description: 'Stream worker health (`/healthz`) and Prometheus metrics (`/metrics`).',
    default: '9464',
    schema: parsers.port(),
  }),
  batchWorkerHealthPort: s({
    env: 'BATCH_WORKER_HEALTH_PORT',
    group: 'Ports',
    form: 'a port number (0 = any free port)',
    description: 'Batch worker health (`/healthz`) and Prometheus metrics (`/metrics`).',
    default: '9465',
    schema: parsers.port(),
  }),
  healthHost: s({
    env: 'HEALTH_HOST',
    group: 'Ports',
    form: 'an IP address',
    description: 'Address the health/metrics and dashboard servers bind to (0.0.0.0 in containers).',
    default: '127.0.0.1',
    schema: parsers.string(),
  }),
  dashboardPort: s({
    env: 'DASHBOARD_PORT',
    group: 'Ports',
    form: 'a port number (0 = any free port)',
    description: 'Live dashboard HTTP port.',
    default: '8080',
    schema: parsers.port(),
  }),
  xStandinPort: s({
    env: 'X_STANDIN_PORT',
    group: 'Ports',
    form: 'a port number',
    description: 'Port of the local X API stand-in (demo, tests).',
    default: '8787',
    schema: parsers.port(),
  }),
  temporalUiPort: s({
    env: 'TEMPORAL_UI_PORT',
    group: 'Ports',
    form: 'a port number',
    description: 'Local stack: Temporal Web UI port.',
    default: '8233',
    schema: parsers.port(),
  }),
  bigqueryEmulatorGrpcPort: s({
    env: 'BIGQUERY_EMULATOR_GRPC_PORT',
    group: 'Ports',
    form: 'a port number',
    description: 'Local stack: BigQuery emulator gRPC (Storage API) port.',
    default: '9060',
    schema: parsers.port(),
  }),
} as const;

export type Settings = typeof settings;
export type SettingKey = keyof Settings;
export type SettingValue<K extends SettingKey> = Settings[K] extends Setting<infer T> ? T : never;
