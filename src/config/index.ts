/**
 * The one configuration module. `loadConfig()` is called once by each entry point (never at import
 * time); a bad value throws a {@link ConfigError} that names every offending variable and the form it
 * expects, and `exitOnConfigError` turns it into a one-line-per-problem exit.
 */
import type { TableIdSettings } from '../domain/views';
import { readFileSync } from 'node:fs';
import type { QualityChecksOverrides } from '../domain/quality';
import type { BudgetSettings } from '../domain/budget';
import type { GapFillSettings } from '../domain/gaps';
import { parseRules, type StreamRule } from '../domain/rules';
import { settings, type SettingKey, type SettingValue } from './settings';

export { settings } from './settings';

export type Env = Readonly<Record<string, string | undefined>>;

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

export type RawSettings = { [K in SettingKey]: SettingValue<K> | undefined };

/** Parses every setting of {@link settings} from `env`, applying defaults; collects all problems. */
export function readSettings(env: Env): RawSettings {
  const problems: string[] = [];
  const out: Partial<Record<SettingKey, unknown>> = {};
  for (const key of Object.keys(settings) as SettingKey[]) {
    const def = settings[key];
    const given = env[def.env];
    const raw = given !== undefined && given.trim() !== '' ? given : def.default;
    if (raw === undefined) continue;
    const parsed = def.schema.safeParse(raw);
    if (parsed.success) out[key] = parsed.data;
    else {
      const shown = def.secret ? '<redacted>' : JSON.stringify(raw);
      // A setting that checks structure (DQ_CHECKS) says where; the generic forms say enough.
      const details = parsed.error.issues
        .filter((i) => i.code === 'custom' && !i.message.startsWith('expected'))
        .map((i) => i.message);
      const why = details.length > 0 ? ` (${details.join('; ')})` : '';
      problems.push(`${def.env}: expected ${def.form}, got ${shown}${why}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return out as RawSettings;
}

export interface TemporalConfig {
  address: string;
  namespace: string;
  uiUrl: string;
  streamTaskQueue: string;
  batchTaskQueue: string;
  tls?: { clientCertPath?: string; clientKeyPath?: string; caPath?: string };
  /** Secret: never logged, never passed to workflows. */
  apiKey?: string;
  shutdownGraceMs: number;
}

export interface GcpConfig {
  projectId: string;
  pubsubEmulatorHost?: string;
  bigqueryEmulatorHost?: string;
  topic: string;
  subscription: string;
  deadLetterTopic: string;
  dataset: string;
  location: string;
  tables: TableIdSettings;
}

export interface XConfig {
  /** Secret: never logged, never passed to workflows. Undefined = no real X access configured. */
  bearerToken?: string;
  baseUrl: string;
  streamName: string;
  rules: StreamRule[];
  tweetFields: string[];
  expansions: string[];
  userFields: string[];
  stallTimeoutMs: number;
  /** On abort (pause/stop), read what X already sent for up to this long before closing. */
  closeDrainMs: number;
  backfillMinutes: number;
  gapFill: GapFillSettings;
  budget: BudgetSettings;
}

export interface PublishConfig {
  maxMessages: number;
  maxBytes: number;
  maxDelayMs: number;
  maxOutstandingMessages: number;
  maxOutstandingBytes: number;
  heartbeatIntervalMs: number;
  progressReportIntervalMs: number;
}

export interface ComplianceConfig {
  enabled: boolean;
  intervalMs: number;
  mode: 'delete' | 'redact';
  maxIdsPerJob: number;
}

export interface AppConfig {
  logLevel: string;
  logFormat: 'auto' | 'json' | 'pretty';
  temporal: TemporalConfig;
  gcp: GcpConfig;
  x: XConfig;
  publish: PublishConfig;
  load: {
    intervalMs: number;
    batchSize: number;
    backlogThreshold: number;
    /** LOAD_LANES: lanes (subscriptions and load children) the posts are spread over by id. */
    lanes: number;
  };
  /** `checks`: overrides of the quality checks' defaults (`DQ_CHECKS`). */
  dq: { intervalMs: number; webhookUrl?: string; checks: QualityChecksOverrides };
  /** The compliance child (README, Compliance). */
  compliance: ComplianceConfig;
  ports: {
    healthHost: string;
    streamWorkerHealth: number;
    batchWorkerHealth: number;
    dashboard: number;
    xStandin: number;
    temporalUi: number;
    bigqueryEmulatorGrpc: number;
  };
}

function readSecret(
  value: string | undefined,
  file: string | undefined,
  fileVar: string,
  read: (path: string) => string,
  problems: string[],
): string | undefined {
  if (value !== undefined) return value;
  if (file === undefined) return undefined;
  try {
    const content = read(file).trim();
    if (content === '') problems.push(`${fileVar}: the file ${file} is empty`);
    return content || undefined;
  } catch (err) {
    problems.push(`${fileVar}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    return undefined;
  }
}

/**
 * Parses the whole configuration from `env` (default `process.env`). Throws {@link ConfigError}.
 * `readFile` is injectable so tests can exercise the `*_FILE` secrets without touching disk.
 */
export function loadConfig(
  env: Env = process.env,
  readFile: (path: string) => string = (p) => readFileSync(p, 'utf8'),
): AppConfig {
  const v = readSettings(env);
  const problems: string[] = [];
  let rules: StreamRule[] = [];
  try {
    rules = parseRules(v.xRules!);
  } catch (err) {
    problems.push(`X_RULES: ${(err as Error).message}`);
  }
  const bearerToken = readSecret(
    v.xBearerToken,
    v.xBearerTokenFile,
    'X_BEARER_TOKEN_FILE',
    readFile,
    problems,
  );
  const apiKey = readSecret(
    v.temporalApiKey,
    v.temporalApiKeyFile,
    'TEMPORAL_API_KEY_FILE',
    readFile,
    problems,
  );
  if ((v.temporalTlsCertPath === undefined) !== (v.temporalTlsKeyPath === undefined)) {
    problems.push('TEMPORAL_TLS_CERT_PATH and TEMPORAL_TLS_KEY_PATH: expected both or neither');
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const useTls = v.temporalTls! || v.temporalTlsCertPath !== undefined || apiKey !== undefined;
  return {
    logLevel: v.logLevel!,
    logFormat: v.logFormat!,
    temporal: {
      address: v.temporalAddress!,
      namespace: v.temporalNamespace!,
      uiUrl: v.temporalUiUrl!,
      streamTaskQueue: v.temporalStreamTaskQueue!,
      batchTaskQueue: v.temporalBatchTaskQueue!,
      tls: useTls
        ? {
            clientCertPath: v.temporalTlsCertPath,
            clientKeyPath: v.temporalTlsKeyPath,
            caPath: v.temporalTlsCaPath,
          }
        : undefined,
      apiKey,
      shutdownGraceMs: v.workerShutdownGraceMs!,
    },
    gcp: {
      projectId: v.gcpProjectId!,
      pubsubEmulatorHost: v.pubsubEmulatorHost,
      bigqueryEmulatorHost: v.bigqueryEmulatorHost,
      topic: v.pubsubTopic!,
      subscription: v.pubsubSubscription!,
      deadLetterTopic: v.pubsubDeadLetterTopic!,
      dataset: v.bigqueryDataset!,
      location: v.bigqueryLocation!,
      tables: {
        posts: v.bigqueryPostsTable!,
        deadLetter: v.bigqueryDeadLetterTable!,
        loadRuns: v.bigqueryLoadRunsTable!,
        dqResults: v.bigqueryDqResultsTable!,
        loadFences: v.bigqueryLoadFencesTable!,
        loadRepairs: v.bigqueryLoadRepairsTable!,
        deadLetterReplays: v.bigqueryDeadLetterReplaysTable!,
        complianceActions: v.bigqueryComplianceActionsTable!,
      },
    },
    x: {
      bearerToken,
      baseUrl: v.xApiBaseUrl!,
      streamName: v.xStreamName!,
      rules,
      tweetFields: v.xTweetFields!,
      expansions: v.xExpansions!,
      userFields: v.xUserFields!,
      stallTimeoutMs: v.xStallTimeoutMs!,
      closeDrainMs: v.xCloseDrainMs!,
      backfillMinutes: v.xBackfillMinutes!,
      gapFill: {
        enabled: v.xGapFill!,
        onResume: v.xGapFillOnResume!,
        marginMs: v.xGapMarginSeconds! * 1000,
        fullArchive: v.xFullArchiveSearch!,
      },
      budget: {
        ...(v.xMonthlyPostBudget !== undefined ? { monthlyPosts: v.xMonthlyPostBudget } : {}),
        costPerPostUsd: v.xCostPerPostUsd!,
      },
    },
    publish: {
      maxMessages: v.publishMaxMessages!,
      maxBytes: v.publishMaxBytes!,
      maxDelayMs: v.publishMaxDelayMs!,
      maxOutstandingMessages: v.publishMaxOutstandingMessages!,
      maxOutstandingBytes: v.publishMaxOutstandingBytes!,
      heartbeatIntervalMs: v.heartbeatIntervalMs!,
      progressReportIntervalMs: v.progressReportIntervalMs!,
    },
    load: {
      intervalMs: v.loadIntervalMs!,
      batchSize: v.loadBatchSize!,
      backlogThreshold: v.loadBacklogThreshold!,
      lanes: v.loadLanes!,
    },
    dq: { intervalMs: v.dqIntervalMs!, webhookUrl: v.dqWebhookUrl, checks: v.dqChecks! },
    compliance: {
      enabled: v.complianceEnabled!,
      intervalMs: v.complianceIntervalMs!,
      mode: v.complianceMode!,
      maxIdsPerJob: v.complianceMaxIdsPerJob!,
    },
    ports: {
      healthHost: v.healthHost!,
      streamWorkerHealth: v.streamWorkerHealthPort!,
      batchWorkerHealth: v.batchWorkerHealthPort!,
      dashboard: v.dashboardPort!,
      xStandin: v.xStandinPort!,
      temporalUi: v.temporalUiPort!,
      bigqueryEmulatorGrpc: v.bigqueryEmulatorGrpcPort!,
    },
  };
}

/** For entry points: parse the configuration or print the problems (no stack) and exit 78 (EX_CONFIG). */
export function loadConfigOrExit(env: Env = process.env): AppConfig {
  try {
    return loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(78);
    }
    throw err;
  }
}
