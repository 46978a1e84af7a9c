/**
 * What the supervisor workflow reports (its `status` query) and what its children report to it.
 * Sandbox-safe: shared by workflows, activities, the dashboard and the CLI helpers.
 */
import type { StreamRule } from './rules';
import type { BudgetStatus } from './budget';
import type { Gap, GapCounts, GapReason, GapReport } from './gaps';

/**
 * `budget-exhausted`: the stream is held because the monthly read budget is spent or X answered
 * that the app's usage cap is reached; it resumes when the month turns or an operator raises the
 * budget (`setBudget`) or resumes.
 */
export type PipelineState = 'starting' | 'running' | 'paused' | 'budget-exhausted' | 'stopping' | 'stopped';
export type QualityStatus = 'ok' | 'warn' | 'fail';

/** Cumulative progress of the stream activity (summed across activity attempts and runs). */
export interface StreamProgress {
  connected: boolean;
  /**
   * ISO time since which the current stream activity attempt has held the stream (its first
   * connect; reconnects within the attempt do not move it). Unset while no attempt is streaming.
   */
  connectedSince?: string;
  postsReceived: number;
  /** Posts acknowledged by Pub/Sub (a post counts as handed over only then). */
  postsPublished: number;
  /** Malformed lines published with `malformed=true` (they land in the dead-letter table). */
  malformedPublished: number;
  /** Exact repeats of a recently published post id that were not published again. */
  duplicatesSuppressed: number;
  reconnects: number;
  reconnectsByReason: Record<string, number>;
  backpressurePauses: number;
  lastPostId?: string;
  /** ISO time the last post was received. */
  lastPostAt?: string;
  /** X's `created_at` of the newest post received (where a gap starts if the stream stops now). */
  lastPostCreatedAt?: string;
  lastError?: string;
  /** ISO time of the last progress report. */
  updatedAt?: string;
}

/** Counters of a stream that has not received anything yet. */
export function emptyProgress(): StreamProgress {
  return {
    connected: false,
    postsReceived: 0,
    postsPublished: 0,
    malformedPublished: 0,
    duplicatesSuppressed: 0,
    reconnects: 0,
    reconnectsByReason: {},
    backpressurePauses: 0,
  };
}

/**
 * Messages (posts + malformed) acknowledged by Pub/Sub, bucketed by the UTC minute of their
 * `received_at` (the same value stored in BigQuery), for reconciliation. Kept for a bounded window.
 */
export interface MinuteCount {
  /** ISO-8601 start of the minute, e.g. `2026-11-25T18:04:00.000Z`. */
  minute: string;
  published: number;
}

/** Sent by the stream activity every few seconds with its progress since its previous report. */
export interface ProgressReport {
  /** Activity attempt id, so a retried report is not double counted. */
  reporter: string;
  sequence: number;
  progress: StreamProgress;
  /** Deltas since the previous report of this reporter. */
  publishedByMinute: MinuteCount[];
  /**
   * Gaps this attempt closed (a reconnect within the attempt, or the gap it was started across),
   * repeated until a report carrying them was delivered; the supervisor records each id once.
   */
  gaps?: GapReport[];
}

export interface CheckOutcome {
  check: string;
  status: QualityStatus;
  details: string;
}

/** The verdict of one data-quality run, sent by the quality child to the supervisor. */
export interface DataQualityVerdict {
  runId: string;
  status: QualityStatus;
  finishedAt: string;
  /** Checks whose status is not ok. */
  problems: CheckOutcome[];
}

export interface ChildStatus {
  workflowId: string;
  state: 'running' | 'restarting' | 'stopped' | 'not started';
  restarts: number;
  lastError?: string;
}

export interface PipelineStatus {
  streamName: string;
  state: PipelineState;
  rules: StreamRule[];
  progress: StreamProgress;
  publishedByMinute: MinuteCount[];
  /**
   * `load` is lane 0's load child, `loadLanes` the others' (lanes 1…N-1; absent with one lane).
   * `gapFill` is absent in supervisors started before gap fill existed.
   */
  children: {
    load: ChildStatus;
    loadLanes?: ChildStatus[];
    quality: ChildStatus;
    gapFill?: ChildStatus;
    /** Absent in supervisors started before compliance existed, or with `COMPLIANCE_ENABLED=false`. */
    compliance?: ChildStatus;
  };
  lastDataQuality?: DataQualityVerdict;
  lastError?: string;
  /** How many times this supervisor has continued-as-new. */
  generation: number;
  startedAt: string;
  /** The gap ledger: counts, the gap open now (the stream is not delivering), recent gaps. */
  gaps?: GapsStatus;
  /** Posts read from X this UTC day and month, the estimated cost, the budget and any hold. */
  budget?: BudgetStatus;
  /** The compliance child's watermark, totals and last run (after its first run). */
  compliance?: ComplianceStatus;
}

/** One X batch compliance job of a compliance run. */
export interface ComplianceJobSummary {
  jobId: string;
  /** Post ids uploaded. */
  ids: number;
  /** X's last status of the job. */
  status: string;
  /** Compliance events in X's result, journaled by this run, posts rows deleted or redacted. */
  events?: number;
  journaled?: number;
  rowsAffected?: number;
}

/** What one run of the compliance child did. */
export interface ComplianceRunSummary {
  /** `<n>` of the child's runs. */
  run: number;
  startedAt: string;
  finishedAt: string;
  /** The window of `posts.ingested_at` checked: (since, until]; since null = from the beginning. */
  since: string | null;
  until: string;
  mode: 'delete' | 'redact';
  ok: boolean;
  error?: string;
  jobs: ComplianceJobSummary[];
  idsChecked: number;
  events: number;
  rowsAffected: number;
}

/** The compliance child's state: carried across its continue-as-new and by the supervisor across restarts. */
export interface ComplianceStatus {
  /** Posts ingested up to this time are checked; the next run checks those ingested after it. */
  watermark: string | null;
  runs: number;
  idsChecked: number;
  events: number;
  rowsAffected: number;
  lastRun?: ComplianceRunSummary;
}

export interface GapsStatus {
  counts: GapCounts;
  /** Set while the stream is not delivering: where the next gap starts and why. */
  open?: { start: string; reason: GapReason };
  /** Unfinished gaps and the newest finished ones, oldest first. */
  ledger: Gap[];
}

export function gapFillWorkflowId(streamName: string): string {
  return `x-ingest-${streamName}-gapfill`;
}
export function complianceWorkflowId(streamName: string): string {
  return `x-ingest-${streamName}-compliance`;
}
export function supervisorWorkflowId(streamName: string): string {
  return `x-ingest-${streamName}`;
}
/**
 * The load child of lane `lane` of `lanes`: `x-ingest-<name>-load-<k>` with several lanes. With one
 * lane (the default) it keeps the id it had before lanes existed, `x-ingest-<name>-load`, so running
 * pipelines, CLI lines and dashboards need no change.
 */
export function loadWorkflowId(streamName: string, lane = 0, lanes = 1): string {
  return lanes <= 1 ? `x-ingest-${streamName}-load` : `x-ingest-${streamName}-load-${lane}`;
}
export function qualityWorkflowId(streamName: string): string {
  return `x-ingest-${streamName}-quality`;
}
