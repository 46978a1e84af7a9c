/**
 * The data-quality suite as code: the checks, their configurable thresholds (with the defaults
 * documented on each field), the `dq_results` table, the windows each check looks at, and the pure
 * verdict logic that turns observations (what the queries measured) into check results.
 * Sandbox-safe (no Node APIs): the quality workflow imports the types and defaults.
 *
 * Every check has a `severity` (`warn` | `fail`): the status it reports when its threshold is
 * breached. The run's verdict is the worst status of its checks.
 */
import {
  POSTS_TABLE,
  col,
  normaliseMode,
  normaliseType,
  type ActualColumn,
  type Column,
  type TableSpec,
} from './bigquery-schema';
import type { CheckOutcome, DataQualityVerdict, MinuteCount, QualityStatus } from './pipeline-status';

export type CheckName =
  | 'freshness'
  | 'volume'
  | 'uniqueness'
  | 'completeness'
  | 'validity'
  | 'schema_drift'
  | 'dead_letter_rate'
  | 'reconciliation';

/** The order checks run and are reported in. */
export const CHECK_NAMES: readonly CheckName[] = [
  'freshness',
  'volume',
  'uniqueness',
  'completeness',
  'validity',
  'schema_drift',
  'dead_letter_rate',
  'reconciliation',
];

/** The status a check reports when its threshold is breached. */
export type Severity = 'warn' | 'fail';

interface CheckBase {
  /** @default true */
  enabled: boolean;
  /** Status when the threshold is breached. @default 'fail' (see each check) */
  severity: Severity;
}

/** Freshness: `asOf − max(ingested_at)` (staleness) and `max(ingested_at) − max(created_at)` (latency). */
export interface FreshnessConfig extends CheckBase {
  /** Rows considered: `created_at` within this many minutes before `asOf` (partition pruning). @default 1440 */
  lookbackMinutes: number;
  /**
   * Newest load older than this = stale. 30× the 30 s load interval: a stream that keeps sending
   * keep-alives but no posts for 15 minutes, or a loader that stopped, is noticed. @default 15
   */
  maxStalenessMinutes: number;
  /** Newest load later than the newest post by more than this = the pipeline lags. @default 10 */
  maxLatencyMinutes: number;
}

/** Volume: posts in the latest closed window against the mean of the previous windows. */
export interface VolumeConfig extends CheckBase {
  /** Window length (by `created_at`). @default 15 */
  windowMinutes: number;
  /** Previous windows forming the rolling baseline. @default 4 (one hour) */
  baselineWindows: number;
  /** The latest window ends this long before `asOf`, so in-flight loads are not counted as a drop. @default 2 */
  settleMinutes: number;
  /** Fewer than `minRatio × baseline mean` posts = a volume drop. @default 0.25 */
  minRatio: number;
  /** A baseline mean below this is too thin to judge a drop (reported ok). @default 20 */
  minBaseline: number;
  /** Zero posts in the window while the stream reports connected is a breach. @default true */
  zeroWhileConnected: boolean;
}

/** Uniqueness: duplicate `id`s in `posts` (the loader's insert-if-absent promises exactly one row per id). */
export interface UniquenessConfig extends CheckBase {
  /** @default 1440 (posts created in the last day) */
  lookbackMinutes: number;
  /** @default 0 */
  maxDuplicates: number;
}

/** A required field of `posts` whose null or empty rate is measured. */
export type RequiredField = 'id' | 'text' | 'created_at' | 'author_id';

/** Completeness: null or empty (after trimming) rate of the required fields. */
export interface CompletenessConfig extends CheckBase {
  /** @default 60 */
  lookbackMinutes: number;
  /** @default ['id', 'text', 'created_at', 'author_id'] */
  fields: RequiredField[];
  /** Highest tolerated rate per field; the loader validates these fields, so any gap is a bypass. @default 0 */
  maxMissingRate: number;
}

/** Validity: id is a decimal string, created_at not in the future, lang known, metrics non-negative. */
export interface ValidityConfig extends CheckBase {
  /** @default 60 */
  lookbackMinutes: number;
  /** created_at later than `asOf` + this is a future timestamp. @default 300 */
  futureSkewSeconds: number;
  /** Highest tolerated rate of rows breaking any rule. @default 0 */
  maxInvalidRate: number;
  /** Accepted `lang` values (NULL is accepted: X did not classify). @default {@link X_LANGUAGE_CODES} */
  languages: string[];
}

/** Schema drift: the live `posts` schema against {@link POSTS_TABLE} in code. */
export interface SchemaDriftConfig extends CheckBase {
  /**
   * Status of columns the loader's additive schema evolution added (NULLABLE, described
   * `Post field <name>`): expected drift, but the code should learn them. @default 'warn'
   */
  evolvedColumnSeverity: QualityStatus;
}

/** Dead-letter rate: dead letters written in the window against all messages loaded in it. */
export interface DeadLetterRateConfig extends CheckBase {
  /** @default 15 */
  windowMinutes: number;
  /** Rate = dead letters / (dead letters + posts ingested). @default 0.05 */
  maxRate: number;
  /** Fewer dead letters than this never breach (one malformed line is not an incident). @default 5 */
  minCount: number;
}

/** Reconciliation: for a closed window, messages published vs distinct ids loaded + dead letters. */
export interface ReconciliationConfig extends CheckBase {
  /** @default 10 */
  windowMinutes: number;
  /** The window closes this long before `asOf`, leaving time for the load interval and redelivery. @default 5 */
  settleMinutes: number;
  /** Highest tolerated shortfall (messages lost). @default 0 */
  maxMissing: number;
  /** Posts are found by `received_at`; `created_at` (the partition) is at most this much older. @default 1440 */
  createdSlackMinutes: number;
}

export interface QualityChecksConfig {
  freshness: FreshnessConfig;
  volume: VolumeConfig;
  uniqueness: UniquenessConfig;
  completeness: CompletenessConfig;
  validity: ValidityConfig;
  schema_drift: SchemaDriftConfig;
  dead_letter_rate: DeadLetterRateConfig;
  reconciliation: ReconciliationConfig;
}

/** Per-check overrides, e.g. `{ volume: { minBaseline: 5 } }`; what is not given keeps its default. */
export type QualityChecksOverrides = { [K in CheckName]?: Partial<QualityChecksConfig[K]> };

/**
 * Language codes X assigns (`lang`), including its special codes: `qme` media only, `qst` very
 * short, `qht` hashtags only, `qam` mentions only, `qct` cashtags only, `zxx` no text, `art`, `und`.
 */
export const X_LANGUAGE_CODES: readonly string[] = [
  'am', 'ar', 'bg', 'bn', 'bo', 'ca', 'ckb', 'cs', 'cy', 'da', 'de', 'dv', 'el', 'en', 'es', 'et',
  'eu', 'fa', 'fi', 'fil', 'fr', 'ga', 'gu', 'he', 'hi', 'hi-Latn', 'hr', 'ht', 'hu', 'hy', 'id',
  'in', 'is', 'it', 'iw', 'ja', 'ka', 'km', 'kn', 'ko', 'lo', 'lt', 'lv', 'ml', 'mr', 'ms', 'my',
  'ne', 'nl', 'no', 'or', 'pa', 'pl', 'ps', 'pt', 'ro', 'ru', 'sd', 'si', 'sk', 'sl', 'sr', 'sv',
  'ta', 'te', 'th', 'tl', 'tr', 'ug', 'uk', 'ur', 'vi', 'zh', 'zh-CN', 'zh-TW', 'zh-Hans', 'zh-Hant',
  'qme', 'qst', 'qht', 'qam', 'qct', 'zxx', 'art', 'und',
]; // prettier-ignore

/** `posts` metric columns that must never be negative. */
export const METRIC_COLUMNS = [
  'author_followers_count',
  'retweet_count',
  'reply_count',
  'like_count',
  'quote_count',
  'bookmark_count',
  'impression_count',
] as const;

export const DEFAULT_QUALITY_CHECKS: QualityChecksConfig = {
  freshness: {
    enabled: true,
    severity: 'fail',
    lookbackMinutes: 1440,
    maxStalenessMinutes: 15,
    maxLatencyMinutes: 10,
  },
  volume: {
    enabled: true,
    severity: 'fail',
    windowMinutes: 15,
    baselineWindows: 4,
    settleMinutes: 2,
    minRatio: 0.25,
    minBaseline: 20,
    zeroWhileConnected: true,
  },
  uniqueness: { enabled: true, severity: 'fail', lookbackMinutes: 1440, maxDuplicates: 0 },
  completeness: {
    enabled: true,
    severity: 'fail',
    lookbackMinutes: 60,
    fields: ['id', 'text', 'created_at', 'author_id'],
    maxMissingRate: 0,
  },
  validity: {
    enabled: true,
    severity: 'fail',
    lookbackMinutes: 60,
    futureSkewSeconds: 300,
    maxInvalidRate: 0,
    languages: [...X_LANGUAGE_CODES],
  },
  schema_drift: { enabled: true, severity: 'fail', evolvedColumnSeverity: 'warn' },
  dead_letter_rate: { enabled: true, severity: 'fail', windowMinutes: 15, maxRate: 0.05, minCount: 5 },
  reconciliation: {
    enabled: true,
    severity: 'fail',
    windowMinutes: 10,
    settleMinutes: 5,
    maxMissing: 0,
    createdSlackMinutes: 1440,
  },
};

/**
 * Checks a parsed `DQ_CHECKS` value against the defaults: known check names, known settings, each of
 * the default's type (severity `warn`/`fail`; arrays of strings). Returns the problems, one line each.
 */
export function qualityOverrideProblems(value: unknown): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return ['expected a JSON object keyed by check name, e.g. {"freshness":{"maxStalenessMinutes":60}}'];
  }
  const problems: string[] = [];
  for (const [check, settings] of Object.entries(value)) {
    if (!(CHECK_NAMES as readonly string[]).includes(check)) {
      problems.push(`unknown check "${check}" (known: ${CHECK_NAMES.join(', ')})`);
      continue;
    }
    const defaults = DEFAULT_QUALITY_CHECKS[check as CheckName] as unknown as Record<string, unknown>;
    if (typeof settings !== 'object' || settings === null || Array.isArray(settings)) {
      problems.push(`${check}: expected an object of settings`);
      continue;
    }
    for (const [key, v] of Object.entries(settings)) {
      const d = defaults[key];
      const where = `${check}.${key}`;
      if (d === undefined)
        problems.push(`${where}: unknown setting (known: ${Object.keys(defaults).join(', ')})`);
      else if (key === 'severity' || key === 'evolvedColumnSeverity') {
        if (v !== 'warn' && v !== 'fail') problems.push(`${where}: expected "warn" or "fail"`);
      } else if (Array.isArray(d)) {
        if (!Array.isArray(v) || !v.every((x) => typeof x === 'string'))
          problems.push(`${where}: expected an array of strings`);
      } else if (typeof d === 'number') {
        if (typeof v !== 'number' || !Number.isFinite(v) || v < 0)
          problems.push(`${where}: expected a non-negative number`);
      } else if (typeof v !== typeof d) problems.push(`${where}: expected a ${typeof d}`);
    }
  }
  return problems;
}

/** The defaults with `overrides` applied, check by check. */
export function resolveQualityChecks(overrides: QualityChecksOverrides = {}): QualityChecksConfig {
  const out = {} as Record<CheckName, unknown>;
  for (const name of CHECK_NAMES) out[name] = { ...DEFAULT_QUALITY_CHECKS[name], ...overrides[name] };
  return out as unknown as QualityChecksConfig;
}

// ---------------------------------------------------------------------------------------------------
// Results and the dq_results table
// ---------------------------------------------------------------------------------------------------

/** One check's outcome in one run: a `dq_results` row. Timestamps are ISO-8601. */
export interface CheckResult {
  check: CheckName;
  status: QualityStatus;
  severity: Severity;
  windowStart: string | null;
  windowEnd: string | null;
  observed: number | null;
  threshold: number | null;
  details: string;
}

/** A table spec shaped like {@link TableSpec}, for the table this module owns. */
export type QualityTableSpec = Omit<TableSpec, 'name'> & { name: 'dq_results' };

/** `dq_results`: one row per check per data-quality run. */
export const DQ_RESULTS_TABLE: QualityTableSpec = {
  name: 'dq_results',
  description: 'One row per data-quality check per run of the quality workflow.',
  partitionField: 'checked_at',
  clustering: ['check', 'status'],
  key: ['run_id', 'check'],
  columns: [
    col('run_id', 'STRING', 'REQUIRED', 'Deterministic run id: <workflow id>:<first run id>:<sequence>.'),
    col('check', 'STRING', 'REQUIRED', 'Check name (freshness, volume, ...).'),
    col('window_start', 'TIMESTAMP', 'NULLABLE', 'Start of the data window the check looked at.'),
    col('window_end', 'TIMESTAMP', 'NULLABLE', 'End (exclusive) of the window; NULL = open.'),
    col('observed', 'FLOAT64', 'NULLABLE', 'The measured value.'),
    col('threshold', 'FLOAT64', 'NULLABLE', 'The limit it was compared with.'),
    col('status', 'STRING', 'REQUIRED', 'ok | warn | fail'),
    col('severity', 'STRING', 'REQUIRED', 'Configured severity: warn | fail'),
    col('details', 'STRING', 'NULLABLE', 'What was measured, in words; names the defect.'),
    col('checked_at', 'TIMESTAMP', 'REQUIRED', 'The run time (asOf); partitioning column.'),
  ],
};

export interface DqResultRow {
  run_id: string;
  check: string;
  window_start: string | null;
  window_end: string | null;
  observed: number | null;
  threshold: number | null;
  status: QualityStatus;
  severity: Severity;
  details: string;
  checked_at: string;
}

export function toDqResultRow(runId: string, checkedAt: string, r: CheckResult): DqResultRow {
  return {
    run_id: runId,
    check: r.check,
    window_start: r.windowStart,
    window_end: r.windowEnd,
    observed: r.observed === null || !Number.isFinite(r.observed) ? null : r.observed,
    threshold: r.threshold === null || !Number.isFinite(r.threshold) ? null : r.threshold,
    status: r.status,
    severity: r.severity,
    details: r.details,
    checked_at: checkedAt,
  };
}

const RANK: Record<QualityStatus, number> = { ok: 0, warn: 1, fail: 2 };

export function worstStatus(statuses: Iterable<QualityStatus>): QualityStatus {
  let worst: QualityStatus = 'ok';
  for (const s of statuses) if (RANK[s] > RANK[worst]) worst = s;
  return worst;
}

/** The verdict the workflow reports: worst status, and every check that is not ok. */
export function verdictOf(runId: string, results: CheckResult[], finishedAt: string): DataQualityVerdict {
  const problems: CheckOutcome[] = results
    .filter((r) => r.status !== 'ok')
    .map((r) => ({ check: r.check, status: r.status, details: r.details }));
  return { runId, status: worstStatus(results.map((r) => r.status)), finishedAt, problems };
}

/** The deterministic run id of the `sequence`-th run of a quality workflow chain. */
export function qualityRunId(workflowId: string, firstExecutionRunId: string, sequence: number): string {
  return `${workflowId}:${firstExecutionRunId}:${sequence}`;
}

// ---------------------------------------------------------------------------------------------------
// Windows
// ---------------------------------------------------------------------------------------------------

const MINUTE = 60_000;
const iso = (ms: number) => new Date(ms).toISOString();
const floorMinute = (ms: number) => Math.floor(ms / MINUTE) * MINUTE;

export interface TimeWindow {
  start: string;
  /** Exclusive; null = open-ended (row checks include future timestamps). */
  end: string | null;
}

/** A lookback window `[asOf − minutes, open)`. */
export function lookbackWindow(asOf: string, minutes: number): TimeWindow {
  return { start: iso(Date.parse(asOf) - minutes * MINUTE), end: null };
}

/** A closed window of `minutes` ending at the minute boundary `settleMinutes` before `asOf`. */
export function closedWindow(
  asOf: string,
  minutes: number,
  settleMinutes: number,
): TimeWindow & {
  end: string;
} {
  const end = floorMinute(Date.parse(asOf) - settleMinutes * MINUTE);
  return { start: iso(end - minutes * MINUTE), end: iso(end) };
}

/** The volume windows: `baselineWindows` previous windows then the current one, oldest first. */
export function volumeWindows(asOf: string, cfg: VolumeConfig): { from: string; to: string; count: number } {
  const current = closedWindow(asOf, cfg.windowMinutes, cfg.settleMinutes);
  const from = Date.parse(current.end) - (cfg.baselineWindows + 1) * cfg.windowMinutes * MINUTE;
  return { from: iso(from), to: current.end, count: cfg.baselineWindows + 1 };
}

// ---------------------------------------------------------------------------------------------------
// Verdict logic: observations → results
// ---------------------------------------------------------------------------------------------------

const pct = (r: number) => `${(r * 100).toFixed(r < 0.01 && r > 0 ? 2 : 1)}%`;
const mins = (ms: number) => `${(ms / MINUTE).toFixed(1)} min`;
const breach = (cfg: CheckBase): QualityStatus => cfg.severity;

export interface FreshnessObservation {
  rows: number;
  maxIngestedAt: string | null;
  maxCreatedAt: string | null;
}

/**
 * Freshness of the newest load. `pipelineStartedAt` (the supervisor's first start) lets a pipeline
 * that started less than `maxStalenessMinutes` ago, and has loaded nothing of its own yet, report
 * ok with "pending" details instead of failing on a window it has not had the time to fill.
 */
export function evaluateFreshness(
  o: FreshnessObservation,
  asOf: string,
  cfg: FreshnessConfig,
  pipelineStartedAt?: string,
): CheckResult {
  const w = lookbackWindow(asOf, cfg.lookbackMinutes);
  const base = { check: 'freshness' as const, severity: cfg.severity, windowStart: w.start, windowEnd: asOf };
  const maxStaleMs = cfg.maxStalenessMinutes * MINUTE;
  const startedMs = pipelineStartedAt ? Date.parse(pipelineStartedAt) : NaN;
  const runningMs = Date.parse(asOf) - startedMs;
  const nothingOfItsOwn = o.rows === 0 || o.maxIngestedAt === null || Date.parse(o.maxIngestedAt) < startedMs;
  if (Number.isFinite(runningMs) && runningMs >= 0 && runningMs < maxStaleMs && nothingOfItsOwn) {
    return {
      ...base,
      status: 'ok',
      observed: null,
      threshold: maxStaleMs / 1000,
      details:
        `pending: the pipeline started ${mins(runningMs)} ago and has loaded no posts yet ` +
        `(stale after ${cfg.maxStalenessMinutes} min)`,
    };
  }
  if (o.rows === 0 || o.maxIngestedAt === null) {
    return {
      ...base,
      status: breach(cfg),
      observed: null,
      threshold: maxStaleMs / 1000,
      details: `stale: no posts ingested in the last ${cfg.lookbackMinutes} min`,
    };
  }
  const staleMs = Date.parse(asOf) - Date.parse(o.maxIngestedAt);
  const latencyMs = o.maxCreatedAt ? Date.parse(o.maxIngestedAt) - Date.parse(o.maxCreatedAt) : 0;
  const problems: string[] = [];
  if (staleMs > maxStaleMs) {
    problems.push(
      `stale: newest row ingested ${mins(staleMs)} ago at ${o.maxIngestedAt} (max ${cfg.maxStalenessMinutes} min)`,
    );
  }
  if (latencyMs > cfg.maxLatencyMinutes * MINUTE) {
    problems.push(
      `lagging: newest load is ${mins(latencyMs)} after the newest post's created_at (max ${cfg.maxLatencyMinutes} min)`,
    );
  }
  return {
    ...base,
    status: problems.length > 0 ? breach(cfg) : 'ok',
    observed: staleMs / 1000,
    threshold: maxStaleMs / 1000,
    details:
      problems.join('; ') ||
      `fresh: newest row ingested ${mins(staleMs)} ago, ${mins(latencyMs)} after the newest created_at`,
  };
}

export function evaluateVolume(
  /** Counts per window, oldest first; the last one is the current window. */
  counts: number[],
  asOf: string,
  cfg: VolumeConfig,
  streamConnected: boolean | undefined,
): CheckResult {
  const current = closedWindow(asOf, cfg.windowMinutes, cfg.settleMinutes);
  const n = counts.at(-1) ?? 0;
  const baseline = counts.slice(0, -1);
  const mean = baseline.length > 0 ? baseline.reduce((a, b) => a + b, 0) / baseline.length : 0;
  const minExpected = mean * cfg.minRatio;
  const base = {
    check: 'volume' as const,
    severity: cfg.severity,
    windowStart: current.start,
    windowEnd: current.end,
    observed: n,
    threshold: minExpected,
  };
  const where = `${n} posts in [${current.start}, ${current.end})`;
  if (n === 0 && cfg.zeroWhileConnected && streamConnected === true) {
    return {
      ...base,
      status: breach(cfg),
      details: `zero volume: ${where} while the stream reports connected (baseline mean ${mean.toFixed(1)})`,
    };
  }
  if (mean < cfg.minBaseline) {
    return {
      ...base,
      status: 'ok',
      details: `${where}; baseline mean ${mean.toFixed(1)} is below ${cfg.minBaseline}, too thin to judge a drop`,
    };
  }
  if (n < minExpected) {
    return {
      ...base,
      status: breach(cfg),
      details: `volume drop: ${where} vs baseline mean ${mean.toFixed(1)} of the previous ${baseline.length} windows (minimum ${minExpected.toFixed(1)} = ${cfg.minRatio}×)`,
    };
  }
  return { ...base, status: 'ok', details: `${where} vs baseline mean ${mean.toFixed(1)}` };
}

export interface UniquenessObservation {
  rows: number;
  distinctIds: number;
  /** A few duplicated ids with their row counts. */
  examples: { id: string; count: number }[];
}

export function evaluateUniqueness(
  o: UniquenessObservation,
  asOf: string,
  cfg: UniquenessConfig,
): CheckResult {
  const w = lookbackWindow(asOf, cfg.lookbackMinutes);
  const dup = o.rows - o.distinctIds;
  const ex = o.examples.map((e) => `${e.id} ×${e.count}`).join(', ');
  return {
    check: 'uniqueness',
    severity: cfg.severity,
    windowStart: w.start,
    windowEnd: null,
    observed: dup,
    threshold: cfg.maxDuplicates,
    status: dup > cfg.maxDuplicates ? breach(cfg) : 'ok',
    details:
      dup > 0
        ? `duplicate ids: ${dup} extra row(s) over ${o.distinctIds} ids${ex ? ` (e.g. ${ex})` : ''}`
        : `${o.rows} rows, all ids unique`,
  };
}

export interface CompletenessObservation {
  rows: number;
  missing: Partial<Record<RequiredField, number>>;
}

export function evaluateCompleteness(
  o: CompletenessObservation,
  asOf: string,
  cfg: CompletenessConfig,
): CheckResult {
  const w = lookbackWindow(asOf, cfg.lookbackMinutes);
  let worst = 0;
  const problems: string[] = [];
  for (const f of cfg.fields) {
    const m = o.missing[f] ?? 0;
    const rate = o.rows > 0 ? m / o.rows : 0;
    worst = Math.max(worst, rate);
    if (m > 0 && rate > cfg.maxMissingRate)
      problems.push(`null or empty ${f}: ${m} of ${o.rows} rows (${pct(rate)})`);
  }
  return {
    check: 'completeness',
    severity: cfg.severity,
    windowStart: w.start,
    windowEnd: null,
    observed: worst,
    threshold: cfg.maxMissingRate,
    status: problems.length > 0 ? breach(cfg) : 'ok',
    details: problems.join('; ') || `${o.rows} rows, ${cfg.fields.join(', ')} all present`,
  };
}

export interface ValidityObservation {
  rows: number;
  /** Rows breaking at least one rule. */
  invalidRows: number;
  badId: number;
  futureCreatedAt: number;
  unknownLang: number;
  negativeMetric: number;
  /** A few offending ids. */
  examples: string[];
}

export function evaluateValidity(o: ValidityObservation, asOf: string, cfg: ValidityConfig): CheckResult {
  const w = lookbackWindow(asOf, cfg.lookbackMinutes);
  const rate = o.rows > 0 ? o.invalidRows / o.rows : 0;
  const parts: string[] = [];
  if (o.badId > 0) parts.push(`non-decimal id: ${o.badId} row(s)`);
  if (o.futureCreatedAt > 0) {
    parts.push(`future created_at (beyond ${cfg.futureSkewSeconds} s skew): ${o.futureCreatedAt} row(s)`);
  }
  if (o.unknownLang > 0) parts.push(`unknown lang code: ${o.unknownLang} row(s)`);
  if (o.negativeMetric > 0) parts.push(`negative metric: ${o.negativeMetric} row(s)`);
  const breached = o.invalidRows > 0 && rate > cfg.maxInvalidRate;
  return {
    check: 'validity',
    severity: cfg.severity,
    windowStart: w.start,
    windowEnd: null,
    observed: rate,
    threshold: cfg.maxInvalidRate,
    status: breached ? breach(cfg) : 'ok',
    details:
      parts.length > 0
        ? `${parts.join('; ')} of ${o.rows} rows (${pct(rate)})${o.examples.length ? `, e.g. ids ${o.examples.join(', ')}` : ''}`
        : `${o.rows} rows, all valid`,
  };
}

/** Loader-added columns carry this description (see `validatePost` in bigquery-schema.ts). */
const EVOLVED_COLUMN_RE = /^Post field /;

export interface LiveColumn extends ActualColumn {
  description?: string;
}

export function evaluateSchemaDrift(
  live: LiveColumn[],
  asOf: string,
  cfg: SchemaDriftConfig,
  expected: Column[] = POSTS_TABLE.columns,
): CheckResult {
  const byName = new Map(live.map((c) => [c.name.toLowerCase(), c]));
  const known = new Set(expected.map((c) => c.name.toLowerCase()));
  const breaking: string[] = [];
  const evolved: string[] = [];
  for (const w of expected) {
    const a = byName.get(w.name.toLowerCase());
    if (!a) {
      breaking.push(`missing column: ${w.name} ${w.type}`);
      continue;
    }
    const at = normaliseType(a.type);
    const am = normaliseMode(a.mode);
    if (at !== w.type) breaking.push(`type change: ${w.name} is ${at}, the code says ${w.type}`);
    else if ((am === 'REPEATED') !== (w.mode === 'REPEATED')) {
      breaking.push(`mode change: ${w.name} is ${am}, the code says ${w.mode}`);
    }
  }
  for (const a of live) {
    if (known.has(a.name.toLowerCase())) continue;
    const desc = `${a.name} ${normaliseType(a.type)}`;
    if (normaliseMode(a.mode) === 'NULLABLE' && EVOLVED_COLUMN_RE.test(a.description ?? '')) {
      evolved.push(`column added by schema evolution: ${desc} (add it to POSTS_TABLE)`);
    } else {
      breaking.push(`unexpected extra column: ${desc} ${normaliseMode(a.mode)} (not in POSTS_TABLE)`);
    }
  }
  const status: QualityStatus =
    breaking.length > 0 ? worstStatus([breach(cfg), evolved.length ? cfg.evolvedColumnSeverity : 'ok'])
    : evolved.length > 0 ? cfg.evolvedColumnSeverity
    : 'ok'; // prettier-ignore
  return {
    check: 'schema_drift',
    severity: cfg.severity,
    windowStart: null,
    windowEnd: null,
    observed: breaking.length + evolved.length,
    threshold: 0,
    status,
    details:
      [...breaking, ...evolved].join('; ') || `live schema matches the ${expected.length} columns in code`,
  };
}

export interface DeadLetterObservation {
  deadLetters: number;
  postsIngested: number;
  /** Dead letters per error_stage. */
  byStage: Record<string, number>;
}

export function evaluateDeadLetterRate(
  o: DeadLetterObservation,
  asOf: string,
  cfg: DeadLetterRateConfig,
): CheckResult {
  const start = new Date(Date.parse(asOf) - cfg.windowMinutes * MINUTE).toISOString();
  const total = o.deadLetters + o.postsIngested;
  const rate = total > 0 ? o.deadLetters / total : 0;
  const stages = Object.entries(o.byStage)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([s, n]) => `${s}: ${n}`)
    .join(', ');
  const breached = o.deadLetters >= cfg.minCount && rate > cfg.maxRate;
  const what = `${o.deadLetters} dead letters / ${total} messages (${pct(rate)}) in the last ${cfg.windowMinutes} min${stages ? ` [${stages}]` : ''}`;
  return {
    check: 'dead_letter_rate',
    severity: cfg.severity,
    windowStart: start,
    windowEnd: asOf,
    observed: rate,
    threshold: cfg.maxRate,
    status: breached ? breach(cfg) : 'ok',
    details: breached ? `dead-letter burst: ${what}, above ${pct(cfg.maxRate)} (min ${cfg.minCount})` : what,
  };
}

export interface ReconciliationObservation {
  /** Distinct post ids in `posts` whose received_at is in the window. */
  loaded: number;
  /** Distinct dead-letter messages whose received_at (or publish_time) is in the window. */
  deadLetters: number;
}

/** Sum of the stream's counters over minutes in `[start, end)`. */
export function publishedIn(counts: MinuteCount[], start: string, end: string): number {
  const s = Date.parse(start);
  const e = Date.parse(end);
  let n = 0;
  for (const c of counts) {
    const t = Date.parse(c.minute);
    if (t >= s && t < e) n += c.published;
  }
  return n;
}

export function evaluateReconciliation(
  o: ReconciliationObservation | undefined,
  published: MinuteCount[] | undefined,
  asOf: string,
  cfg: ReconciliationConfig,
): CheckResult {
  const w = closedWindow(asOf, cfg.windowMinutes, cfg.settleMinutes);
  const base = {
    check: 'reconciliation' as const,
    severity: cfg.severity,
    windowStart: w.start,
    windowEnd: w.end,
  };
  if (published === undefined || o === undefined) {
    return {
      ...base,
      status: 'ok',
      observed: null,
      threshold: cfg.maxMissing,
      details: 'no stream counters',
    };
  }
  const pub = publishedIn(published, w.start, w.end);
  const accounted = o.loaded + o.deadLetters;
  const missing = Math.max(0, pub - accounted);
  const what = `published ${pub}, loaded ${o.loaded} distinct ids + ${o.deadLetters} dead letters in [${w.start}, ${w.end})`;
  if (missing > cfg.maxMissing) {
    return {
      ...base,
      status: breach(cfg),
      observed: missing,
      threshold: cfg.maxMissing,
      details: `loss: ${missing} message(s) published but neither loaded nor dead-lettered (${what})`,
    };
  }
  const surplus = accounted > pub ? ` (${accounted - pub} more than counted: counters incomplete)` : '';
  return {
    ...base,
    status: 'ok',
    observed: missing,
    threshold: cfg.maxMissing,
    details: `${what}${surplus}`,
  };
}

/** A check that could not run (its query failed for good): reported as fail with the reason. */
export function checkError(check: CheckName, cfg: CheckBase, message: string): CheckResult {
  return {
    check,
    severity: cfg.severity,
    status: 'fail',
    windowStart: null,
    windowEnd: null,
    observed: null,
    threshold: null,
    details: `check could not run: ${message}`,
  };
}
